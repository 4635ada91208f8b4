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
from pathlib import Path
from types import FrameType
from typing import Any

from ..control import AuditControl
from ..errors import AuditExtError
from ..managed_rules import desired_rule_texts
from ..service import encode_rule_texts
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
    all_targets,
    cost_section,
    json_text,
    losses_section,
    ring_section,
    storms_section,
    summary_line,
    targets_section,
)
from .ringbench import ring_bench
from .runs import BenchPlan, RunResult, run_auditd, run_no_rules, run_ours
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


def status_line() -> tuple[str, dict[str, Any] | None]:
    with AuditControl() as control:
        s = control.get_status()
    fields = {
        "enabled": s.enabled,
        "failure": s.failure,
        "pid": s.pid,
        "rate_limit": s.rate_limit,
        "backlog_limit": s.backlog_limit,
        "backlog_wait_time": s.backlog_wait_time,
        "lost": s.lost,
    }
    text = " ".join(f"{k}={v}" for k, v in fields.items())
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


def run_bench(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="oae-bench-"))
    document: dict[str, Any] = {"options": vars(args).copy(), "machine": machine_line()}
    runs: list[RunResult] = []
    ring_figures = []
    before: KernelSnapshot | None = None
    locked = False
    kernel_problem = None
    print(f"osquery-audit-ext bench: {machine_line()}")
    try:
        settings = bench_settings("unicast", args.ring)
        rules = encode_rule_texts(desired_rule_texts(settings))
        try:
            leftover = remove_rules_with_key(BENCH_KEY)
            if leftover:
                progress(f"removed {leftover} {BENCH_KEY} rule(s) left by an earlier run")
            status_text, status = status_line()
            before = snapshot()
            locked = rules_locked(rules[0])
        except AuditExtError as exc:
            kernel_problem = str(exc)
            status_text, status = "unavailable", None
        document.update(kernel_status=status, locked=locked, kernel_problem=kernel_problem)
        print(f"kernel audit: {status_text}; {len(rules)} rules with key {BENCH_KEY}")
        if locked:
            print(LOCKED_NOTICE)
        if kernel_problem:
            print(f"!! kernel audit unavailable ({kernel_problem}): in-process figures only")
        print(flush=True)
        if locked:
            progress("kernel audit is LOCKED (enabled=2): running what needs no new rules")

        plan = None
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
            if kernel_problem:
                runs = [guarded("no rules", run_no_rules, plan, ("connect", "exec"))]
            else:
                runs = run_storms(plan, locked)
        progress(f"ring: {args.ring} events per table")
        ring_figures = ring_bench(args.ring, workdir, args.repeat, progress)
    finally:
        state_ok, state_notes = (
            restore_and_compare(before) if kernel_problem is None else (None, [])
        )
        shutil.rmtree(workdir, ignore_errors=True)
    targets = all_targets(runs, ring_figures, args.ring, locked)
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
    state = {True: "matches", False: "DIFFERS from", None: "not compared with"}[state_ok]
    print(f"\nKernel audit state (auditctl -s settings, auditctl -l): {state} the state before")
    for note in state_notes:
        print(f"  {note}")
    print("\n" + summary_line(targets, locked, state_ok))
    document.update(
        runs=runs,
        ring=ring_figures,
        targets=targets,
        kernel_state={"restored": state_ok, "notes": state_notes},
        failed_runs=errors,
    )
    if args.json:
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
