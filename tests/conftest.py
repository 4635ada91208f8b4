"""Shared fixtures: the kernel-audit skip checks, audit switched on, a private auditd, and the
check that a run leaves kernel audit state as it found it (plumbing in tests/helpers/).

Kernel audit state is global to the machine and other test runs share it: tests marked
`kernel` restore what they change and only touch rules carrying their own unique key.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import pytest
from helpers.fake_kernel import KernelPeer
from helpers.kernel import (
    audit_pid,
    audit_state,
    kernel_audit_available,
    kernel_audit_locked,
    run_auditctl,
)

from osquery_audit_ext.app.state import DEFAULT_STATE_DIR, STATE_DIR_ENV
from osquery_audit_ext.audit.control import AuditControl

if TYPE_CHECKING:
    from osquery_audit_ext.bench.auditd import PrivateAuditd


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        default=False,
        help="rewrite the golden files (tests/events/golden/*.rows.json, "
        "tests/audit/rule/golden/suggest/*.rules) from the current code instead of comparing "
        "with them; review the diff before committing",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A test that takes the kernel fixture (directly or through kernel_rw, audit_enabled,
    # running_auditd, auditctl) is a kernel test, so -m "not kernel" leaves it out too.
    for item in items:
        if "kernel" in getattr(item, "fixturenames", ()) and "kernel" not in item.keywords:
            item.add_marker(pytest.mark.kernel)
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


def _default_state_snapshot() -> dict[str, float] | None:
    """Every path under the default state directory with its mtime; None if it is absent."""
    root = Path(DEFAULT_STATE_DIR)
    if not root.exists():
        return None
    return {str(p): p.stat().st_mtime for p in [root, *root.rglob("*")]}


@pytest.fixture(scope="session", autouse=True)
def session_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A temporary state directory for fixtures wider than one test (a module's running
    core is made before any test's own private_state_dir), and a check at the end that no
    test wrote to the default one."""
    directory = tmp_path_factory.mktemp("session-state")
    before_env = os.environ.get(STATE_DIR_ENV)
    before = _default_state_snapshot()
    os.environ[STATE_DIR_ENV] = str(directory)
    try:
        yield directory
    finally:
        if before_env is None:
            os.environ.pop(STATE_DIR_ENV, None)
        else:
            os.environ[STATE_DIR_ENV] = before_env
    after = _default_state_snapshot()
    assert after == before, f"tests wrote to the default state directory {DEFAULT_STATE_DIR}"


@pytest.fixture(autouse=True)
def private_state_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test (and every program it starts) keeps extension state in a fresh temporary
    directory, never the default /var/lib/osquery-audit-ext."""
    directory = tmp_path_factory.mktemp("state")
    monkeypatch.setenv(STATE_DIR_ENV, str(directory))
    return directory


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


@pytest.fixture
def auditctl(kernel: None) -> Callable[..., str]:
    """A function running auditctl: auditctl("-s") -> stdout; raises with stderr on failure."""
    return run_auditctl


@pytest.fixture
def peer() -> Iterator[KernelPeer]:
    """AuditNetlink over a socket pair whose far end plays the kernel (no kernel needed)."""
    p = KernelPeer()
    yield p
    p.close()
