"""Shared test plumbing: the kernel-audit skip check and an auditctl runner.

Kernel audit state is global to the machine and other test runs share it: tests marked
`kernel` restore what they change and only touch rules carrying their own unique key.
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import pytest

from osquery_audit_ext.coalesce import Coalescer, Event

if TYPE_CHECKING:
    from osquery_audit_ext.bench.auditd import PrivateAuditd

NETLINK_AUDIT = 9


def auditctl_path() -> str | None:
    return shutil.which("auditctl") or (
        "/usr/sbin/auditctl" if os.access("/usr/sbin/auditctl", os.X_OK) else None
    )


@functools.lru_cache(maxsize=1)
def kernel_audit_available() -> str | None:
    """None when kernel audit tests can run here, else the reason they cannot."""
    if os.geteuid() != 0:
        return "kernel audit tests need root"
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_AUDIT)
    except OSError as exc:
        if exc.errno in (errno.EPROTONOSUPPORT, errno.EAFNOSUPPORT, errno.ECONNREFUSED):
            return f"no kernel audit netlink socket ({os.strerror(exc.errno)})"
        return f"cannot open the audit netlink socket: {exc}"
    try:
        sock.bind((0, 0))
    except OSError as exc:
        return f"cannot bind the audit netlink socket: {exc}"
    finally:
        sock.close()
    if auditctl_path() is None:
        return "auditctl is not installed (Debian package auditd)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = kernel_audit_available()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if "kernel" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def kernel() -> None:
    """Skip unless root with kernel audit netlink and auditctl."""
    reason = kernel_audit_available()
    if reason is not None:
        pytest.skip(reason)


def kernel_audit_locked() -> bool:
    """True when enabled=2: rules and settings cannot change until the machine reboots."""
    from osquery_audit_ext.control import AuditControl

    with AuditControl() as control:
        return control.get_status().enabled == 2


@pytest.fixture
def kernel_rw(kernel: None) -> None:
    """Skip unless kernel audit rules and settings can be changed (not locked)."""
    if kernel_audit_locked():
        pytest.skip(
            "kernel audit configuration is locked (enabled=2) until reboot: "
            "rules and settings cannot be changed on this machine"
        )


@pytest.fixture
def audit_enabled(kernel: None) -> Iterator[None]:
    """Kernel audit switched on for the test, and put back as it was after.

    With `enabled 0` (a fresh host, no audit daemon) the kernel makes no records at all: no
    user messages, no syscall records. Tests that wait for records take this fixture.
    A locked kernel (enabled 2) is already on, and one at 1 is left alone.
    """
    from osquery_audit_ext.control import AuditControl

    with AuditControl() as control:
        before = control.get_status().enabled
        if before == 0:
            control.set_status(enabled=1)
    try:
        yield
    finally:
        if before == 0:
            with AuditControl() as control:
                control.set_status(enabled=0)


def audit_pid() -> int:
    from osquery_audit_ext.control import AuditControl

    with AuditControl() as control:
        return control.get_status().pid


@pytest.fixture
def running_auditd(audit_enabled: None) -> Iterator[PrivateAuditd]:
    """Debian's auditd, private config and log, holding the audit pid for the test (skips
    where another daemon holds it already); the pid is free again after."""
    from osquery_audit_ext.bench.auditd import PrivateAuditd

    if shutil.which("auditd") is None:
        pytest.skip("Debian's auditd is not installed")
    if audit_pid() != 0:
        pytest.skip("another process holds the audit pid")
    auditd = PrivateAuditd()
    try:
        with auditd:
            yield auditd
    finally:
        auditd.cleanup()
    assert audit_pid() == 0


SETTING_LINES = ("enabled", "failure", "pid", "rate_limit", "backlog_limit", "backlog_wait_time")


def audit_state() -> tuple[dict[str, str], str]:
    """The kernel audit settings and rules as auditctl shows them."""
    status = {}
    for line in run_auditctl("-s").splitlines():
        name, _, value = line.partition(" ")
        if name in SETTING_LINES:
            status[name] = value
    return status, run_auditctl("-l")


@pytest.fixture(scope="session", autouse=True)
def kernel_state_restored() -> object:
    """Fail the run when the tests left `auditctl -s` settings or `auditctl -l` changed."""
    if kernel_audit_available() is not None:
        yield
        return
    before = audit_state()
    yield
    after = audit_state()
    assert after == before, f"tests changed kernel audit state: before {before}, after {after}"


def run_auditctl(*args: str) -> str:
    """Run auditctl with args; return stdout, raise RuntimeError with its stderr on failure."""
    path = auditctl_path()
    if path is None:
        raise RuntimeError("auditctl is not installed")
    proc = subprocess.run([path, *args], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(
            f"auditctl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}"
        )
    return proc.stdout


@pytest.fixture
def auditctl(kernel: None) -> Callable[..., str]:
    """A function running auditctl: auditctl("-s") -> stdout; raises with stderr on failure."""
    return run_auditctl


# -- golden records -> events (pure-layer tests) ----------------------------------------


GOLDEN_RECORDS = Path(__file__).parent / "golden" / "records"


def read_log(path: Path) -> list[tuple[int, bytes]]:
    """(type, payload) of each record line of a golden log (`TYPE audit(...): body`)."""
    out = []
    for line in path.read_bytes().splitlines():
        if line and not line.startswith(b"#"):
            msg_type, _, payload = line.partition(b" ")
            out.append((int(msg_type), payload))
    return out


def events_of(lines: list[tuple[int, bytes]]) -> list[Event]:
    """The events a coalescer makes of these records, then of what it holds at the end."""
    coalescer = Coalescer()
    events: list[Event] = []
    for msg_type, payload in lines:
        events.extend(coalescer.add(msg_type, payload, 0.0))
    return events + coalescer.flush()
