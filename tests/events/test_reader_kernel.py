"""The reader against the real kernel: unicast when the audit pid is free, multicast beside
a live daemon, the pid given back on stop, records counted.

These only register/unregister the audit pid and send user messages, which work even while
the audit configuration is locked, so they run on every root machine with kernel audit.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from helpers.kernel import audit_pid

from osquery_audit_ext.events.coalesce import Event
from osquery_audit_ext.events.reader import AuditReader, ReaderSettings

pytestmark = pytest.mark.kernel


class Collector:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, events: list[Event]) -> None:
        self.events.extend(events)

    def user_message(self, text: str) -> list[Event]:
        return [e for e in self.events if any(text in r.body for r in e.records if r.type == 1005)]


def send_user_message(text: str) -> None:
    subprocess.run(["auditctl", "-m", text], check=True, capture_output=True)


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def new_reader(mode: str, sink: Collector) -> AuditReader:
    return AuditReader(mode, ReaderSettings(event_timeout=0.5, pid_check_interval=0.5), sink)


def test_auto_takes_a_free_pid_and_gives_it_back(audit_enabled):
    if audit_pid() != 0:
        pytest.skip("another process holds the audit pid")
    sink = Collector()
    reader = new_reader("auto", sink)
    reader.start()
    try:
        assert reader.stats.mode == "unicast"
        assert audit_pid() == os.getpid()
        text = f"oaetest-unicast-{os.getpid()}"
        send_user_message(text)
        assert wait_for(lambda: sink.user_message(text)), "user message not read"
        assert reader.stats.records_received >= 1
        assert reader.stats.parse_errors == 0
    finally:
        reader.stop()
    assert audit_pid() == 0


def test_auto_reads_multicast_beside_auditd_and_never_takes_its_pid(running_auditd):
    auditd = running_auditd
    sink = Collector()
    reader = new_reader("auto", sink)
    reader.start()
    try:
        assert reader.stats.mode == "multicast"
        assert f"auditd ({auditd.pid})" in reader.stats.mode_reason
        text = f"oaetest-multicast-{os.getpid()}"
        send_user_message(text)
        assert wait_for(lambda: sink.user_message(text)), "user message not read"
        assert audit_pid() == auditd.pid
    finally:
        reader.stop()
    assert audit_pid() == auditd.pid  # stopping us left auditd in place
    assert wait_for(lambda: any(text in line for line in auditd.log_lines()))


def test_unicast_mode_fails_clearly_when_a_daemon_holds_the_pid(running_auditd):
    from osquery_audit_ext.errors import AuditPidTaken

    reader = new_reader("unicast", Collector())
    with pytest.raises(AuditPidTaken):
        reader.start()
    reader.stop()
    assert audit_pid() == running_auditd.pid


def test_multicast_mode_leaves_the_pid_alone(audit_enabled):
    before = audit_pid()
    sink = Collector()
    reader = new_reader("multicast", sink)
    reader.start()
    try:
        assert reader.stats.mode == "multicast"
        assert audit_pid() == before
        text = f"oaetest-mc-{os.getpid()}"
        send_user_message(text)
        assert wait_for(lambda: sink.user_message(text))
    finally:
        reader.stop()
    assert audit_pid() == before
