"""`python -m osquery_audit_ext.bench` (`make bench`): our audit pipeline against auditd.

Storms of audited calls (connect to a refused loopback port, fork+execve) run with no rules,
with auditd as the consumer, with our extension in unicast mode, and with our extension in
multicast mode beside auditd; then ring/query/memory figures over a full ring. When kernel
audit is locked (enabled=2) no rules can be added: the report says so at the top and runs
what needs none (the in-process ring figures, and a user-message storm in place of the
syscall storms for the reader comparison).

Kernel state is restored on every exit path and compared with `auditctl -s` / `-l` before
and after. Progress goes to stderr; the report to stdout; --json FILE writes the figures.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from ..accel import PURE_PYTHON_ENV
from ..app.managed_rules import desired_rule_texts, encode_rule_texts
from ..audit.control import AuditControl, owner_process
from ..core import sql
from ..errors import AuditExtError
from ..events import coalesce, rows
from ..sdk import answer as reply
from ..sdk import client
from . import BenchError
from .extension_run import BENCH_KEY, bench_settings
from .kernel_state import (
    KernelSnapshot,
    audit_enabled,
    audit_pid_holder,
    remove_rules_with_key,
    rules_locked,
    snapshot,
)
from .report import (
    Target,
    all_targets,
    cost_section,
    json_text,
    losses_section,
    ring_section,
    storms_section,
    summary_line,
    targets_section,
)
from .ringbench import TableFigures, ring_bench
from .runs import BenchPlan, RunResult, run_auditd, run_no_rules, run_ours, run_sink
from .storm import Storm, build_storm, exec_target, refused_port

QUICK = {"calls": 20_000, "execs": 500, "ring": 10_000, "repeat": 3}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m osquery_audit_ext.bench",
        description="Audit pipeline benchmark: storms of audited calls, auditd against ours.",
    )
    parser.add_argument("--calls", type=int, help="connect storm size (default 200000)")
    parser.add_argument("--execs", type=int, help="fork+execve storm size (default 5000)")
    parser.add_argument(
        "--usermsgs", type=int, help="user-message storm size, locked machines (default: --calls)"
    )
    parser.add_argument("--ring", type=int, help="ring capacity per table (default 100000)")
    parser.add_argument("--repeat", type=int, help="runs per timed query, best kept (default 7)")
    parser.add_argument("--quick", action="store_true", help="small sizes for a fast run")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    defaults = (
        QUICK if args.quick else {"calls": 200_000, "execs": 5_000, "ring": 100_000, "repeat": 7}
    )
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.usermsgs is None:
        args.usermsgs = args.calls
    for name in ("calls", "execs", "usermsgs", "ring", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def machine_line() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"Linux {platform.release()} {platform.machine()}, {os.cpu_count()} cores, "
        f"{memory:.1f} GiB RAM, Python {platform.python_version()}"
    )


def accelerators_line() -> str:
    return (
        f"events/_ingestfast {_on(coalesce.ACCELERATED)}, "
        f"events/_rowsfast {_on(rows.ACCELERATED)}, core/_sqlfast {_on(sql.ACCELERATED)}, "
        f"sdk/_answerfast {_on(reply.ACCELERATED)}, sdk/_thriftfast {_on(client.ACCELERATED)}"
        f" (scripts/build_accel.py; {PURE_PYTHON_ENV}=1 turns them off)"
    )


def _on(loaded: bool) -> str:
    return "on" if loaded else "off (the pure-Python loops run)"


def status_line() -> tuple[str, dict[str, Any] | None]:
    """The kernel's audit settings, who holds the audit pid, and how many rules are in."""
    with AuditControl() as control:
        s = control.get_status()
        rules = len(control.list_rules())
    fields = {
        "enabled": s.enabled,
        "failure": s.failure,
        "pid": s.pid,
        "rate_limit": s.rate_limit,
        "backlog_limit": s.backlog_limit,
        "backlog_wait_time": s.backlog_wait_time,
        "lost": s.lost,
        "rules": rules,
    }
    text = " ".join(f"{k}={v}" for k, v in fields.items())
    if s.pid:
        text += f" (audit pid held by {owner_process(s.pid) or 'an unknown process'})"
    return text, fields


LOCKED_NOTICE = """\
!! KERNEL AUDIT IS LOCKED (enabled=2) until reboot: no rules can be added, so the connect
!! and exec storms produce no audit records and cannot compare auditd with ours.
!! Measured instead: the storms' rate with no rules; ring, query and memory figures
!! in-process; and, as a SUBSTITUTE for the reader comparison, a storm of audit user
!! messages (type 1121) consumed by auditd, by ours in unicast, by ours in multicast
!! beside auditd. Those are not the connect/exec figures."""


def guarded(consumer: str, run: Any, *args: Any, **kwargs: Any) -> RunResult:
    """One consumer run; a failure is recorded and reported instead of ending the bench."""
    try:
        return run(*args, **kwargs)
    except AuditExtError as exc:
        progress(f"{consumer} run failed: {exc}")
        return RunResult(consumer, error=str(exc))


def run_storms(plan: BenchPlan, locked: bool) -> list[RunResult]:
    if locked:
        return [
            guarded("no rules", run_no_rules, plan, ("connect", "exec")),
            guarded("auditd", run_auditd, plan, ("usermsg",), add_rules=False),
            guarded(
                "ours unicast", run_ours, plan, ("usermsg",), multicast=False, time_queries=False
            ),
            guarded(
                "ours multicast", run_ours, plan, ("usermsg",), multicast=True, time_queries=False
            ),
        ]
    kinds = ("connect", "exec")
    with audit_enabled() as switched:
        if switched:
            progress("audit was off: enabled=1 for the run (set back to 0 at the end)")
        return [
            guarded("no rules", run_no_rules, plan, kinds),
            guarded("auditd", run_auditd, plan, kinds, add_rules=True),
            guarded("discarding consumer", run_sink, plan, kinds),
            guarded("ours unicast", run_ours, plan, kinds, multicast=False, time_queries=True),
            guarded("ours multicast", run_ours, plan, kinds, multicast=True, time_queries=False),
        ]


def restore_and_compare(before: KernelSnapshot | None) -> tuple[bool | None, list[str]]:
    """Remove any rule with our key, check the audit pid, compare with the first snapshot."""
    notes = []
    try:
        removed = remove_rules_with_key(BENCH_KEY)
        if removed:
            notes.append(f"removed {removed} leftover {BENCH_KEY} rule(s)")
        holder = audit_pid_holder()
        if holder and not os.path.exists(f"/proc/{holder}"):
            notes.append(f"audit pid still names exited process {holder} (the kernel clears it)")
        if before is None:
            return None, notes
        after = snapshot()
    except AuditExtError as exc:
        return False, [*notes, f"could not check kernel state: {exc}"]
    differences = before.differences(after)
    for line in differences:
        word = line.rsplit(" ", 1)[-1]
        if (
            line.startswith("auditctl -s: - pid ")
            and word != "0"
            and not os.path.exists(f"/proc/{word}")
        ):
            notes.append(f"pid {word} held the audit pid before the run and has since exited")
    return not differences, notes + differences


@dataclass
class KernelView:
    """Kernel audit as the benchmark found it."""

    status_text: str = "unavailable"
    status: dict[str, Any] | None = None
    before: KernelSnapshot | None = None
    locked: bool = False
    problem: str | None = None  # why kernel audit cannot be used at all (not root ...)


def inspect_kernel(probe_rule: bytes) -> KernelView:
    """Clear rules a killed earlier run left, then record the state to restore and compare."""
    try:
        leftover = remove_rules_with_key(BENCH_KEY)
        if leftover:
            progress(f"removed {leftover} {BENCH_KEY} rule(s) left by an earlier run")
        text, status = status_line()
        return KernelView(text, status, snapshot(), rules_locked(probe_rule))
    except AuditExtError as exc:
        return KernelView(problem=str(exc))


def print_header(kernel: KernelView, rule_texts: Sequence[str]) -> None:
    print(f"osquery-audit-ext bench: {machine_line()}")
    print(f"C accelerators: {accelerators_line()}")
    if kernel.locked:
        print(LOCKED_NOTICE)
    if kernel.problem:
        print(f"!! kernel audit unavailable ({kernel.problem}): in-process figures only")
    print(f"kernel audit: {kernel.status_text}")
    print(f"benchmark rules (key {BENCH_KEY}; the same for auditd and ours):")
    for text in rule_texts:
        print(f"  {text}")
    print(flush=True)


def measure(
    args: argparse.Namespace, kernel: KernelView, rules: Sequence[bytes], workdir: Path
) -> tuple[list[RunResult], list[TableFigures]]:
    """Every storm run, then the ring figures."""
    if kernel.locked:
        progress("kernel audit is LOCKED (enabled=2): running what needs no new rules")
    storm = Storm(build_storm(workdir))
    with refused_port() as port:
        plan = BenchPlan(
            calls=args.calls,
            execs=args.execs,
            usermsgs=args.usermsgs,
            ring=args.ring,
            repeat=args.repeat,
            workdir=workdir,
            storm=storm,
            port=port,
            exec_path=exec_target(),
            rules=rules,
            progress=progress,
        )
        if kernel.problem:
            runs = [guarded("no rules", run_no_rules, plan, ("connect", "exec"))]
        else:
            runs = run_storms(plan, kernel.locked)
    progress(f"ring: {args.ring} events per table")
    return runs, ring_bench(args.ring, workdir, args.repeat, progress)


def print_report(
    runs: Sequence[RunResult],
    ring_figures: Sequence[TableFigures],
    targets: Sequence[Target],
    args: argparse.Namespace,
    state: tuple[bool | None, list[str]],
    locked: bool,
) -> None:
    sections = [
        storms_section(runs),
        losses_section(runs, args.ring),
        cost_section(runs),
        ring_section(ring_figures, runs),
        targets_section(targets),
    ]
    print("\n\n".join(sections))
    errors = [f"{r.consumer}: {r.error}" for r in runs if r.error]
    if errors:
        print("\nRuns that failed:\n" + "\n".join(f"  {e}" for e in errors))
    print_state(state)
    print("\n" + summary_line(targets, locked, state[0]))


def print_state(state: tuple[bool | None, list[str]]) -> None:
    state_ok, notes = state
    verb = {True: "matches", False: "DIFFERS from", None: "not compared with"}[state_ok]
    print(f"\nKernel audit state (auditctl -s settings, auditctl -l): {verb} the state before")
    for note in notes:
        print(f"  {note}")
    sys.stdout.flush()


def clean_up(kernel: KernelView, workdir: Path) -> tuple[bool | None, list[str]]:
    """Restore kernel state (rules with our key) and compare; remove the work directory."""
    try:
        return restore_and_compare(kernel.before) if kernel.problem is None else (None, [])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run_bench(args: argparse.Namespace) -> int:
    rule_texts = desired_rule_texts(bench_settings("unicast", args.ring))
    rules = encode_rule_texts(rule_texts)
    kernel = inspect_kernel(rules[0])
    print_header(kernel, rule_texts)
    workdir = Path(tempfile.mkdtemp(prefix="oae-bench-"))
    try:
        runs, ring_figures = measure(args, kernel, rules, workdir)
    except BaseException:
        print_state(clean_up(kernel, workdir))  # interrupted or failed: still say it
        raise
    state = clean_up(kernel, workdir)
    targets = all_targets(runs, ring_figures, args.ring, kernel.locked)
    print_report(runs, ring_figures, targets, args, state, kernel.locked)
    if args.json:
        document = {
            "options": vars(args),
            "machine": machine_line(),
            "accelerators": accelerators_line(),
            "kernel": kernel,
            "runs": runs,
            "ring": ring_figures,
            "targets": targets,
            "kernel_state": {"restored": state[0], "notes": state[1]},
            "summary": summary_line(targets, kernel.locked, state[0]),
        }
        Path(args.json).write_text(json_text(document))
        progress(f"figures written to {args.json}")
    return 0


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwind through every `finally` that restores kernel state


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="bench: %(message)s")
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return run_bench(args)
    except (BenchError, AuditExtError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
