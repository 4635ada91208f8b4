"""Run the test suite once per kernel audit state a host can be in, on this one machine.

    python scripts/test_audit_states.py [--states off,on,auditd] [-- PYTEST ARGS...]

States: `off` (enabled 0, no daemon: a fresh host), `on` (enabled 1, no daemon) and `auditd`
(enabled 1, Debian's auditd registered as the audit daemon, from a private config and log
in a temporary folder). The fourth state, locked (enabled 2), cannot be entered without
locking the machine until reboot: `make test-vm` covers it.

The enabled flag is put back and the private auditd stopped on every exit path, so
`auditctl -s` and `auditctl -l` end as they were. Exit status: 0 when every state passed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from osquery_audit_ext.audit.control import LOCKED, AuditControl  # noqa: E402
from osquery_audit_ext.bench.auditd import PrivateAuditd  # noqa: E402
from osquery_audit_ext.errors import AuditExtError  # noqa: E402

STATES = ("off", "on", "auditd")


def set_enabled(value: int) -> None:
    with AuditControl() as control:
        if control.get_status().enabled != value:
            control.set_status(enabled=value)


@contextlib.contextmanager
def audit_state(state: str) -> Iterator[None]:
    """The kernel in `state` for the duration of the block."""
    set_enabled(0 if state == "off" else 1)
    if state != "auditd":
        yield
        return
    auditd = PrivateAuditd()
    try:
        with auditd:
            yield
    finally:
        auditd.cleanup()


def run_suite(state: str, pytest_args: list[str]) -> tuple[int, float]:
    print(f"\n=== audit state {state}: pytest {' '.join(pytest_args)}", flush=True)
    started = time.monotonic()
    with audit_state(state):
        code = subprocess.call(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args],
            cwd=REPO,
        )
    return code, time.monotonic() - started


def parse_states(text: str) -> list[str]:
    states = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in states if s not in STATES]
    if unknown or not states:
        raise SystemExit(
            f"test_audit_states: unknown state {unknown[0] if unknown else text!r} "
            f"(known: {', '.join(STATES)})"
        )
    return states


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--states", default=",".join(STATES), help="comma-separated states")
    parser.add_argument("pytest_args", nargs="*", help="arguments for pytest (after --)")
    args = parser.parse_args(argv)
    states = parse_states(args.states)
    if os.geteuid() != 0:
        print("test_audit_states: needs root to change kernel audit state", file=sys.stderr)
        return 2
    try:
        with AuditControl() as control:
            before = control.get_status().enabled
    except AuditExtError as exc:
        print(f"test_audit_states: {exc}", file=sys.stderr)
        return 2
    if before == LOCKED:
        print(
            "test_audit_states: kernel audit is locked (enabled 2) until reboot: the states "
            "cannot be entered here; use make test-vm",
            file=sys.stderr,
        )
        return 2
    results: list[tuple[str, int, float]] = []
    try:
        for state in states:
            code, seconds = run_suite(state, args.pytest_args)
            results.append((state, code, seconds))
    except KeyboardInterrupt:
        print("\ntest_audit_states: interrupted", file=sys.stderr)
        return 130
    finally:
        set_enabled(before)
    print("\n=== audit states")
    for state, code, seconds in results:
        verdict = "passed" if code == 0 else f"FAILED (pytest exit {code})"
        print(f"{state:<8} {verdict}  {seconds:.0f} s")
    return 0 if all(code == 0 for _, code, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
