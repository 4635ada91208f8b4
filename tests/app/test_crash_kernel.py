"""Crashes leave the kernel as we found it: kill -9 of the extension (respawned by its core)
or of the core, then a clean stop, and `status --restore` after a crash nobody follows up."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.harness import CORE_PROGRAM, end_process, short_dir, wait_until
from helpers.kernel import audit_state, run_auditctl

from osquery_audit_ext.app.extension import EXTENSION_NAME
from osquery_audit_ext.app.launched_core import launch_audit_extension
from osquery_audit_ext.app.service import AuditService
from osquery_audit_ext.app.settings import Settings
from osquery_audit_ext.audit.control import AuditControl
from osquery_audit_ext.core.manager import EmbeddedCore

pytestmark = pytest.mark.kernel

CONTROL = {"backlog_limit": 5555, "rate_limit": 777, "backlog_wait_time": 4321}


def kernel_value(name: str) -> int:
    with AuditControl() as control:
        return getattr(control.get_status(), name)


def write_config(directory: Path, key: str) -> str:
    path = directory / "config.toml"
    control = "\n".join(f"{name} = {value}" for name, value in CONTROL.items())
    path.write_text(f'key = "{key}"\n\n[control]\n{control}\n', encoding="utf-8")
    return str(path)


def changes_applied(key: str) -> bool:
    return all(kernel_value(n) == v for n, v in CONTROL.items()) and key in run_auditctl("-l")


@pytest.fixture(params=["audit off", "audit on"])
def audit_before(request: pytest.FixtureRequest, kernel_rw: None) -> Iterator[str]:
    """Kernel audit off (as on a fresh host) or on before the first start; put back after."""
    want = 0 if request.param == "audit off" else 1
    found = kernel_value("enabled")
    if found != want:
        with AuditControl() as control:
            control.set_status(enabled=want)
    try:
        yield request.param
    finally:
        if kernel_value("enabled") != found:
            with AuditControl() as control:
                control.set_status(enabled=found)


@contextlib.contextmanager
def respawning_extension(config: str) -> Iterator[tuple[EmbeddedCore, subprocess.Popen]]:
    """A core that launched our extension with respawn on, as osqueryd's autoload does; its
    stop ends every process it launched (the respawned one too)."""
    with short_dir() as directory:
        core = EmbeddedCore(os.path.join(directory, "em"), timeout=3, interval=0.3)
        core.start()
        try:
            yield core, launch_audit_extension(core, config, respawn=True)
        finally:
            core.stop()


def kill_and_wait_respawn(core: EmbeddedCore, process: subprocess.Popen) -> None:
    """kill -9 of the extension, then wait until the core's respawn has registered."""
    old = core.registry.find(EXTENSION_NAME)
    assert old is not None
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)

    def respawned() -> bool:
        entry = core.registry.find(EXTENSION_NAME)
        return entry is not None and entry.uuid != old.uuid

    wait_until(respawned, 30, "the respawned extension to register")


def test_extension_kill9_respawn_then_stop_restores(audit_before, tmp_path):
    before = audit_state()
    key = f"oaetest_crash_{os.getpid()}"
    config = write_config(tmp_path, key)
    with respawning_extension(config) as (core, first):
        wait_until(lambda: changes_applied(key), 20, "the [control] settings and our rules")
        assert kernel_value("enabled") == 1
        kill_and_wait_respawn(core, first)
        # The new instance runs with the same changes, but knows the values before us.
        assert changes_applied(key)
    assert audit_state() == before


def test_core_kill9_extension_exits_and_restores(audit_before, tmp_path):
    before = audit_state()
    key = f"oaetest_corecrash_{os.getpid()}"
    config = write_config(tmp_path, key)
    with short_dir() as directory:
        socket_path = os.path.join(directory, "em")
        core = subprocess.Popen(
            [sys.executable, CORE_PROGRAM, socket_path, "0.3"],
            stdout=subprocess.PIPE,
            text=True,
        )
        extension = None
        try:
            assert core.stdout is not None and core.stdout.readline() == "ready\n"
            extension = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "osquery_audit_ext",
                    "--socket",
                    socket_path,
                    "--timeout",
                    "3",
                    "--interval",
                    "0.3",
                ],
                env={**os.environ, "OSQUERY_AUDIT_EXT_CONFIG": config},
                stdin=subprocess.DEVNULL,
            )
            wait_until(lambda: changes_applied(key), 20, "the [control] settings and our rules")
            wait_until(
                lambda: any(n.startswith("em.") for n in os.listdir(directory)),
                20,
                "the extension to register (its em.UUID socket)",
            )
            core.send_signal(signal.SIGKILL)
            core.wait(timeout=10)
            # The extension notices its core is gone and exits cleanly, putting things back.
            assert extension.wait(timeout=30) == 0
        finally:
            end_process(core)
            if extension is not None:
                end_process(extension)
    assert audit_state() == before


def test_status_restore_after_a_crash_nobody_follows(audit_before, tmp_path, private_state_dir):
    before = audit_state()
    key = f"oaetest_restore_{os.getpid()}"
    config = write_config(tmp_path, key)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from osquery_audit_ext.app.service import AuditService;"
            "from osquery_audit_ext.app.settings import load_settings;"
            f"AuditService(load_settings({config!r})).start(); print('up', flush=True);"
            "time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "up\n"
        assert changes_applied(key)
        refused = run_cli("status", "--restore", "--config", config)
        assert refused.returncode == 1
        assert f"--restore refused: state dir {private_state_dir} is in use" in refused.stderr
        assert f"(pid {holder.pid})" in refused.stderr
        assert changes_applied(key)
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        assert changes_applied(key)  # a crash leaves everything changed
        done = run_cli("status", "--restore", "--config", config)
        assert done.returncode == 0, done.stderr
        assert "restored backlog_limit" in done.stdout and f"key {key}" in done.stdout
        assert audit_state() == before
        again = run_cli("status", "--restore", "--config", config)
        assert "nothing to restore" in again.stdout
    finally:
        end_process(holder)
        if audit_state() != before:
            run_cli("status", "--restore", "--config", config)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "osquery_audit_ext", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_restart_after_a_crash_keeps_the_first_originals(kernel_rw, tmp_path):
    """In-process: a service that never stopped (its record left on disk) is followed by one
    whose config no longer sets anything: the start puts back the crashed run's values."""
    before = audit_state()
    key = f"oaetest_crashrec_{os.getpid()}"
    crashed = AuditService(Settings(key=key, control=dict(CONTROL)))
    crashed.start()
    assert changes_applied(key)
    # What a kill -9 leaves: the reader gone, the flock released, nothing put back.
    assert crashed.reader is not None
    crashed.reader.stop()
    crashed.state.close()
    later = AuditService(Settings(key=f"{key}_b", raise_backlog_limit=0))
    later.start()
    try:
        for name in CONTROL:
            assert kernel_value(name) == int(before[0][name])
        listing = run_auditctl("-l").splitlines()
        assert not any(line.endswith(f"key={key}") for line in listing)  # crashed run's rules
    finally:
        later.stop()
    assert audit_state() == before


def test_low_backlog_limit_is_raised_while_running(kernel_rw):
    before = audit_state()
    old = kernel_value("backlog_limit")
    if old == 0 or old >= 8192:
        with AuditControl() as control:
            control.set_status(backlog_limit=64)
    try:
        low = kernel_value("backlog_limit")
        service = AuditService(Settings(key=f"oaetest_floor_{os.getpid()}"))
        service.start()
        try:
            assert kernel_value("backlog_limit") == 8192
        finally:
            service.stop()
        assert kernel_value("backlog_limit") == low
        service = AuditService(Settings(key=f"oaetest_floor_{os.getpid()}", raise_backlog_limit=0))
        service.start()
        try:
            assert kernel_value("backlog_limit") == low
        finally:
            service.stop()
    finally:
        if kernel_value("backlog_limit") != old:
            with AuditControl() as control:
                control.set_status(backlog_limit=old)
    assert audit_state() == before


TRUE = shutil.which("true") or "/bin/true"


def exec_marked(marker: str, count: int) -> None:
    for n in range(count):
        subprocess.run([TRUE, marker, str(n)], check=True)


def marked_rows(core: EmbeddedCore, marker: str) -> list[tuple[str, str]]:
    rows = core.query(
        f"SELECT eid, cmdline FROM process_events WHERE cmdline LIKE '%{marker}%' ORDER BY eid"
    ).rows
    return [(row["eid"], row["cmdline"]) for row in rows]


def test_events_read_before_kill9_survive_the_respawn_with_their_eids(kernel_rw, tmp_path):
    before = audit_state()
    key = f"oaetest_durable_{os.getpid()}"
    config = tmp_path / "config.toml"
    config.write_text(f'key = "{key}"\n[reader]\nevent_timeout = 0.5\n', encoding="utf-8")
    marker = f"oaedurable{os.getpid()}"
    with respawning_extension(str(config)) as (core, first):
        exec_marked(marker, 20)
        wait_until(lambda: len(marked_rows(core, marker)) == 20, 20, "20 exec rows")
        seen = marked_rows(core, marker)
        kill_and_wait_respawn(core, first)
        assert marked_rows(core, marker) == seen
        (status,) = core.query("SELECT events_recovered, ring_torn FROM audit_status").rows
        assert int(status["events_recovered"]) >= 20 and status["ring_torn"] == "0"
        exec_marked(marker + "after", 1)  # new events get eids after the restored ones
        wait_until(lambda: marked_rows(core, marker + "after"), 20, "a new exec row")
        (after,) = marked_rows(core, marker + "after")
        assert int(after[0]) > int(seen[-1][0])
    assert audit_state() == before


def test_a_torn_segment_tail_is_counted_and_skipped(kernel_rw, private_state_dir):
    before = audit_state()
    settings = Settings(key=f"oaetest_torn_{os.getpid()}")
    marker = f"oaetorn{os.getpid()}"
    crashed = AuditService(settings)
    crashed.start()
    try:
        exec_marked(marker, 5)
        wait_until(
            lambda: len(crashed.process_ring) >= 5 and crashed.router.journals is not None,
            20,
            "5 events in the ring",
        )
        wait_until(
            lambda: crashed.router.journals["process_events"].written >= 5, 20, "5 journaled events"
        )
        eids = [e[0] for e in crashed.process_ring.query()]
    finally:
        crashed.stop()
    segments = sorted((private_state_dir / "ring" / "process_events").glob("*.seg"))
    assert segments
    with open(segments[-1], "ab") as f:
        f.write(b"OAJ0\xff\xff\x00\x00 half a frame")  # a crash in the middle of a write
    later = AuditService(settings)
    later.start()
    try:
        stats = later.status_stats()
        assert stats["ring_torn"] == 1
        assert [e[0] for e in later.process_ring.query()][: len(eids)] == eids
    finally:
        later.stop()
    assert audit_state() == before


def test_records_made_while_no_instance_reads_are_counted(audit_enabled, kernel_rw):
    """The serial gap between one run's last record and the next run's first: records the
    kernel made with no reader registered (dropped to its log unless booted audit=1)."""
    before = audit_state()
    settings = Settings(key=f"oaetest_gap_{os.getpid()}")
    marker = f"oaegap{os.getpid()}"
    first = AuditService(settings)
    first.start()
    try:
        exec_marked(marker, 2)
        wait_until(lambda: len(first.process_ring) >= 2, 20, "2 events")
    finally:
        first.stop()
    assert first.status_stats()["records_missed_while_down"] is None  # no run before it
    for n in range(3):
        run_auditctl("-m", f"oaetest gap {n}")  # user messages nobody reads
    second = AuditService(settings)
    second.start()
    try:
        exec_marked(marker, 1)
        wait_until(
            lambda: second.status_stats()["records_missed_while_down"] is not None,
            20,
            "the first record of the second run",
        )
        assert second.status_stats()["records_missed_while_down"] >= 3
    finally:
        second.stop()
    assert audit_state() == before
