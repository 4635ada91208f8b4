"""Kernel audit for tests: whether it can be used here, its state as auditctl shows it, and
an auditctl runner (the reference the tests compare against)."""

from __future__ import annotations

import errno
import functools
import os
import shutil
import socket
import subprocess

from osquery_audit_ext.audit.consts import NETLINK_AUDIT
from osquery_audit_ext.audit.control import AuditControl


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


def kernel_audit_locked() -> bool:
    """True when enabled=2: rules and settings cannot change until the machine reboots."""
    with AuditControl() as control:
        return control.get_status().enabled == 2


def audit_pid() -> int:
    with AuditControl() as control:
        return control.get_status().pid


SETTING_LINES = ("enabled", "failure", "pid", "rate_limit", "backlog_limit", "backlog_wait_time")


def audit_state() -> tuple[dict[str, str], str]:
    """The kernel audit settings and rules as auditctl shows them."""
    status = {}
    for line in run_auditctl("-s").splitlines():
        name, _, value = line.partition(" ")
        if name in SETTING_LINES:
            status[name] = value
    return status, run_auditctl("-l")


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
