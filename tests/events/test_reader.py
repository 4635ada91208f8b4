"""The reader without a kernel: its socket and control come through the open_socket and
open_control seam, played here by fakes sharing one scripted audit status (pid, lost).

A "live process holding the pid" is a real child process (`sleep`), since the reader checks
liveness and names the holder from /proc.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import accel
from helpers.fake_kernel import KernelPeer, record

from osquery_audit_ext.audit.consts import (
    AUDIT_EOE,
    AUDIT_FIRST_USER_MSG,
    AUDIT_GET,
    AUDIT_LIST_RULES,
    AUDIT_LOGIN,
    AUDIT_PROCTITLE,
    AUDIT_REPLACE,
    AUDIT_SET,
    AUDIT_SYSCALL,
    AUDIT_USER,
)
from osquery_audit_ext.audit.control import AuditStatus, owner_process
from osquery_audit_ext.errors import AuditPidTaken
from osquery_audit_ext.events import coalesce
from osquery_audit_ext.events.coalesce import Event
from osquery_audit_ext.events.reader import (
    FULL_BATCH,
    LINGER,
    QUEUE_BYTES_PER_SECOND,
    READS_PER_HANDOVER,
    AuditReader,
    ReaderSettings,
)

OUR_PID = os.getpid()


@pytest.fixture(scope="module", params=accel.IMPLEMENTATIONS, autouse=True)
def batch_loop(request: pytest.FixtureRequest) -> object:
    """The reader's Coalescer.add_batch runs its Python loop or the compiled one
    (events/_ingestfast.c)."""
    with accel.running(request.param, coalesce, "_ingestfast", "events/_ingestfast.c") as loop:
        yield loop


class FakeSocket:
    """The reader's socket: batches the test delivers come out of recv_many in order."""

    def __init__(self, multicast: bool, rcvbuf: int | None) -> None:
        self.multicast = multicast
        self.rcvbuf = rcvbuf
        self.enobufs = 0
        self.closed = False
        self._batches: deque[list[tuple[int, bytes]]] = deque()
        self._ready = threading.Condition()

    def deliver(self, *messages: tuple[int, bytes]) -> None:
        with self._ready:
            self._batches.append(list(messages))
            self._ready.notify_all()

    def drained(self) -> bool:
        with self._ready:
            return not self._batches

    def recv_many(self, timeout: float | None = None) -> list[tuple[int, bytes]]:
        with self._ready:
            if not self._batches:
                self._ready.wait(timeout)
            return self._batches.popleft() if self._batches else []

    def close(self) -> None:
        self.closed = True


class FakeKernel:
    """The audit status the fakes share, and every socket, control and pid request made.

    set_status(pid=) follows the kernel: registering fails (EEXIST) while a live process
    other than the caller holds the pid, and only the holder may clear it.
    """

    def __init__(self, pid: int = 0, lost: int = 0, enabled: int = 1) -> None:
        self.pid = pid
        self.lost = lost
        self.enabled = enabled
        self.status_reads = 0
        self.sockets: list[FakeSocket] = []
        self.controls: list[FakeControl] = []
        self.pid_requests: list[tuple[int, FakeSocket | None]] = []  # (pid, socket used)
        self.before_set_pid: Callable[[], None] | None = None  # runs before each pid request

    def status(self) -> AuditStatus:
        self.status_reads += 1
        return AuditStatus(
            mask=0,
            enabled=self.enabled,
            failure=1,
            pid=self.pid,
            rate_limit=0,
            backlog_limit=8192,
            lost=self.lost,
            backlog=0,
        )

    def open_socket(self, *, multicast: bool = False, rcvbuf: int | None = None) -> FakeSocket:
        sock = FakeSocket(multicast, rcvbuf)
        self.sockets.append(sock)
        return sock

    def open_control(self, netlink: Any = None) -> FakeControl:
        control = FakeControl(self, netlink)
        self.controls.append(control)
        return control

    def set_pid(self, pid: int, sock: FakeSocket | None) -> None:
        if self.before_set_pid is not None:
            self.before_set_pid()
        self.pid_requests.append((pid, sock))
        if pid and self.pid not in (0, pid) and alive(self.pid):
            raise AuditPidTaken("another process is registered as the audit daemon")
        if not pid and self.pid != OUR_PID:
            raise AuditPidTaken("only the registered audit daemon can clear the audit pid")
        self.pid = pid


class FakeControl:
    def __init__(self, kernel: FakeKernel, netlink: FakeSocket | None) -> None:
        self.kernel = kernel
        self.netlink = netlink
        self.closed = False

    def get_status(self) -> AuditStatus:
        return self.kernel.status()

    def set_status(self, *, pid: int | None = None) -> None:
        assert pid is not None
        self.kernel.set_pid(pid, self.netlink)

    def close(self) -> None:
        self.closed = True


class Sink:
    """on_events: keeps every event and how many calls delivered them."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.calls = 0

    def __call__(self, events: list[Event]) -> None:
        assert events, "on_events called with no events"
        self.calls += 1
        self.events.extend(events)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.005)


def status_checked(kernel: FakeKernel) -> None:
    """Wait until the reader has read the status, and acted on it, since the call."""
    mark = kernel.status_reads
    wait_for(lambda: kernel.status_reads >= mark + 2)


@pytest.fixture
def holder() -> Iterator[subprocess.Popen[bytes]]:
    """A live process to hold the audit pid (its comm is `sleep`, once it has exec'd: until
    then it is the forking python, so wait for that)."""
    process = subprocess.Popen(["sleep", "60"])
    deadline = time.monotonic() + 10
    while owner_process(process.pid) != "sleep" and time.monotonic() < deadline:
        time.sleep(0.005)
    yield process
    process.kill()
    process.wait()


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has exited."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def new_reader(
    kernel: FakeKernel,
    mode: str = "auto",
    sink: Sink | None = None,
    *,
    pid_check_interval: float = 0.01,
    event_timeout: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
) -> AuditReader:
    settings = ReaderSettings(
        rcvbuf=1 << 20, event_timeout=event_timeout, pid_check_interval=pid_check_interval
    )
    return AuditReader(
        mode,
        settings,
        sink if sink is not None else Sink(),
        open_socket=kernel.open_socket,
        open_control=kernel.open_control,
        clock=clock,
    )


def line(stamp: str, body: str) -> bytes:
    return f"audit({stamp}): {body}".encode()


# -- which mode -----------------------------------------------------------------------------


def test_auto_takes_a_free_pid_on_its_own_socket() -> None:
    kernel = FakeKernel(pid=0)
    reader = new_reader(kernel)
    reader.start()
    try:
        assert (reader.stats.mode, reader.stats.mode_reason) == (
            "unicast",
            "registered as the audit pid",
        )
        assert kernel.pid == OUR_PID
        (sock,) = kernel.sockets
        assert not sock.multicast and sock.rcvbuf == 1 << 20
        # The kernel sends unicast records to the socket the pid was registered on.
        assert kernel.pid_requests == [(OUR_PID, sock)]
    finally:
        reader.stop()
    assert kernel.pid == 0
    assert kernel.pid_requests == [(OUR_PID, sock), (0, sock)]
    assert sock.closed and all(control.closed for control in kernel.controls if not control.netlink)


def test_auto_takes_the_pid_of_a_process_that_is_gone(dead_pid: int) -> None:
    kernel = FakeKernel(pid=dead_pid)
    reader = new_reader(kernel)
    reader.start()
    try:
        assert reader.stats.mode == "unicast"
        assert kernel.pid == OUR_PID
    finally:
        reader.stop()


def test_auto_reads_multicast_beside_a_live_holder(holder: subprocess.Popen[bytes]) -> None:
    kernel = FakeKernel(pid=holder.pid)
    reader = new_reader(kernel)
    reader.start()
    try:
        assert reader.stats.mode == "multicast"
        assert reader.stats.mode_reason == f"audit pid held by sleep ({holder.pid})"
        (sock,) = kernel.sockets
        assert sock.multicast
    finally:
        reader.stop()
    assert kernel.pid_requests == []  # never tried to take it, nor to give it back
    assert kernel.pid == holder.pid
    assert sock.closed


def test_auto_falls_back_when_the_pid_is_taken_while_it_registers(
    holder: subprocess.Popen[bytes],
) -> None:
    kernel = FakeKernel(pid=0)

    def daemon_starts() -> None:
        kernel.pid = holder.pid

    kernel.before_set_pid = daemon_starts
    reader = new_reader(kernel)
    reader.start()
    try:
        assert reader.stats.mode == "multicast"
        assert reader.stats.mode_reason == f"audit pid held by sleep ({holder.pid})"
        unicast, multicast = kernel.sockets
        assert unicast.closed and not unicast.multicast
        assert multicast.multicast and not multicast.closed
    finally:
        reader.stop()
    assert kernel.pid == holder.pid


def test_unicast_mode_raises_when_a_live_process_holds_the_pid(
    holder: subprocess.Popen[bytes],
) -> None:
    kernel = FakeKernel(pid=holder.pid)
    reader = new_reader(kernel, "unicast")
    with pytest.raises(AuditPidTaken):
        reader.start()
    reader.stop()
    (sock,) = kernel.sockets
    assert sock.closed and not sock.multicast
    assert kernel.pid == holder.pid
    assert kernel.pid_requests == [(OUR_PID, sock)]  # tried once, never cleared theirs


def test_multicast_mode_leaves_a_free_pid_alone() -> None:
    kernel = FakeKernel(pid=0)
    reader = new_reader(kernel, "multicast")
    reader.start()
    try:
        assert (reader.stats.mode, reader.stats.mode_reason) == ("multicast", "configured")
    finally:
        reader.stop()
    assert kernel.pid_requests == []
    assert kernel.pid == 0


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="mode"):
        new_reader(FakeKernel(), "broadcast")


# -- while it runs --------------------------------------------------------------------------


def test_falls_back_to_multicast_when_another_process_takes_the_pid(
    holder: subprocess.Popen[bytes],
) -> None:
    kernel = FakeKernel(pid=0)
    sink = Sink()
    reader = new_reader(kernel, sink=sink)
    reader.start()
    try:
        assert reader.stats.mode == "unicast"
        (unicast,) = kernel.sockets
        unicast.enobufs = 3
        kernel.pid = holder.pid  # a daemon took the pid from us
        wait_for(lambda: reader.stats.mode == "multicast")
        assert reader.stats.mode_reason == f"audit pid taken by sleep ({holder.pid})"
        unicast_, multicast = kernel.sockets
        assert unicast_ is unicast and unicast.closed
        assert multicast.multicast and not multicast.closed
        multicast.enobufs = 2
        assert reader.enobufs == 5  # counted on the closed socket too
        # The reader now reads the multicast socket.
        multicast.deliver((AUDIT_USER, line("1700000000.100:10", "msg='after'")))
        wait_for(lambda: len(sink.events) == 1)
    finally:
        reader.stop()
    assert kernel.pid == holder.pid
    assert [pid for pid, _ in kernel.pid_requests] == [OUR_PID]  # never cleared theirs
    assert reader.stats.enobufs == 5


def test_lost_counter_deltas_survive_a_reset() -> None:
    kernel = FakeKernel(lost=5)
    reader = new_reader(kernel, "multicast")
    reader.start()
    try:
        assert reader.stats.lost_at_start == 5
        status_checked(kernel)
        assert reader.stats.lost_since_start == 0
        kernel.lost = 8
        status_checked(kernel)
        assert reader.stats.lost_since_start == 3
        kernel.lost = 2  # auditctl --reset-lost, then 2 more lost: counted from zero
        status_checked(kernel)
        assert reader.stats.lost_since_start == 5
        kernel.lost = 4
        status_checked(kernel)
        assert reader.stats.lost_since_start == 7
    finally:
        reader.stop()
    assert reader.stats.lost_at_start == 5


# -- records --------------------------------------------------------------------------------


def test_records_become_events_and_control_replies_are_not_records() -> None:
    kernel = FakeKernel()
    sink = Sink()
    reader = new_reader(kernel, "multicast", sink)
    reader.start()
    try:
        (sock,) = kernel.sockets
        # Control replies carry text that would parse as records: the type alone decides.
        sock.deliver(
            (AUDIT_GET, line("1700000000.000:1", "msg='a status reply'")),
            (AUDIT_SET, line("1700000000.000:2", "msg='a set reply'")),
            (AUDIT_LIST_RULES, line("1700000000.000:3", "msg='a rule'")),
            (AUDIT_FIRST_USER_MSG - 1, line("1700000000.000:4", "msg='last control type'")),
            (AUDIT_USER, line("1700000000.100:10", "pid=1 msg='hello'")),
            (AUDIT_FIRST_USER_MSG, line("1700000000.110:11", "pid=1 msg='first user type'")),
            (AUDIT_LOGIN, line("1700000000.200:12", "pid=1 old-auid=4294967295 auid=0")),
            (AUDIT_EOE, line("1700000000.200:12", "")),
            (AUDIT_REPLACE, line("1700000000.300:13", "auditd_pid=1234")),
        )
        sock.deliver(
            (AUDIT_SYSCALL, line("1700000000.400:14", "arch=c000003e syscall=59 success=yes")),
            (AUDIT_PROCTITLE, line("1700000000.400:14", "proctitle=6C73")),
            (AUDIT_EOE, line("1700000000.400:14", "")),
            (AUDIT_SYSCALL, b"not an audit record"),
        )
        wait_for(lambda: len(sink.events) == 4)
        wait_for(sock.drained)
    finally:
        reader.stop()
    assert [(e.serial, tuple(e.types), e.ended) for e in sink.events] == [
        (10, (AUDIT_USER,), True),
        (11, (AUDIT_FIRST_USER_MSG,), True),
        (12, (AUDIT_LOGIN,), True),
        (14, (AUDIT_SYSCALL, AUDIT_PROCTITLE), True),
    ]
    assert sink.events[0].records[0].raw("msg") == "'hello'"
    # USER, the first user type, LOGIN and its EOE, SYSCALL, PROCTITLE, EOE, the bad one.
    assert reader.stats.records_received == 8
    assert reader.stats.parse_errors == 1


def test_full_reads_are_read_on_and_handed_over_together() -> None:
    """A full read means more is waiting: the reader reads on (READS_PER_HANDOVER reads at
    most) and hands their events over in one call; a short read ends the hand-over."""
    kernel = FakeKernel()
    sink = Sink()

    def event_records(serial: int) -> list[tuple[int, bytes]]:
        stamp = f"1700000000.500:{serial}"
        return [
            (AUDIT_SYSCALL, line(stamp, "arch=c000003e syscall=42 success=no")),
            (AUDIT_PROCTITLE, line(stamp, "proctitle=6C73")),
            (AUDIT_PROCTITLE + 1, line(stamp, "x=1")),
            (AUDIT_EOE, line(stamp, "")),
        ]

    records = [
        r
        for serial in range(1, 1 + (READS_PER_HANDOVER * FULL_BATCH + 8) // 4)
        for r in event_records(serial)
    ]
    batches = [records[i : i + FULL_BATCH] for i in range(0, len(records), FULL_BATCH)]
    assert [len(b) for b in batches] == [FULL_BATCH] * READS_PER_HANDOVER + [8]

    def open_socket(*, multicast: bool = False, rcvbuf: int | None = None) -> FakeSocket:
        sock = kernel.open_socket(multicast=multicast, rcvbuf=rcvbuf)
        for batch in batches:  # all waiting before the first read
            sock.deliver(*batch)
        return sock

    reader = AuditReader(
        "multicast",
        ReaderSettings(),
        sink,
        open_socket=open_socket,
        open_control=kernel.open_control,
    )
    reader.start()
    try:
        wait_for(lambda: len(sink.events) == len(records) // 4)
    finally:
        reader.stop()
    assert [e.serial for e in sink.events] == list(range(1, 1 + len(records) // 4))
    assert sink.calls == 2  # the full reads' events at once, then the short read's
    assert reader.stats.records_received == len(records)


def test_the_linger_leaves_room_in_a_small_receive_buffer() -> None:
    """What the kernel queues while the reader waits after a short read fits half the
    receive buffer: a small [reader] rcvbuf shortens the wait."""
    kernel = FakeKernel()
    default = AuditReader("multicast", ReaderSettings(), Sink(), open_control=kernel.open_control)
    small = AuditReader(
        "multicast", ReaderSettings(rcvbuf=1 << 20), Sink(), open_control=kernel.open_control
    )
    assert default.linger == LINGER
    assert small.linger < LINGER
    assert small.linger * QUEUE_BYTES_PER_SECOND == pytest.approx((1 << 20) / 2)


def test_stop_completes_the_events_still_in_flight() -> None:
    kernel = FakeKernel()
    sink = Sink()
    reader = new_reader(kernel, "multicast", sink)
    reader.start()
    (sock,) = kernel.sockets
    sock.deliver((AUDIT_SYSCALL, line("1700000000.400:20", "arch=c000003e syscall=59")))
    wait_for(sock.drained)
    time.sleep(0.05)
    assert sink.events == []  # waiting for its EOE
    reader.stop()
    assert [(e.serial, e.ended) for e in sink.events] == [(20, False)]


def test_events_without_eoe_complete_on_the_timeout() -> None:
    kernel = FakeKernel()
    sink = Sink()
    now = [1000.0]
    reader = new_reader(
        kernel, "multicast", sink, event_timeout=1.0, pid_check_interval=0.01, clock=lambda: now[0]
    )
    reader.start()
    try:
        (sock,) = kernel.sockets
        sock.deliver((AUDIT_SYSCALL, line("1700000000.400:30", "arch=c000003e syscall=59")))
        wait_for(sock.drained)
        mark = kernel.status_reads
        now[0] = 1000.9  # expire runs (then the status check): 0.9 s is not yet the timeout
        wait_for(lambda: kernel.status_reads > mark)
        assert sink.events == []
        now[0] = 1001.5
        wait_for(lambda: len(sink.events) == 1)
        assert (sink.events[0].serial, sink.events[0].ended) == (30, False)
        assert reader.coalescer.timed_out == 1
    finally:
        reader.stop()


def test_records_through_the_netlink_socket(peer: KernelPeer) -> None:
    """The real AuditNetlink behind the seam, reading what the kernel's end sends."""
    kernel = FakeKernel()
    sink = Sink()
    opened: list[dict[str, Any]] = []

    def open_socket(**options: Any) -> Any:
        opened.append(options)
        return peer.netlink

    reader = AuditReader(
        "multicast",
        ReaderSettings(pid_check_interval=0.01),
        sink,
        open_socket=open_socket,
        open_control=kernel.open_control,
    )
    reader.start()
    try:
        peer.send(
            record(AUDIT_USER, line("1700000000.100:40", "pid=1 msg='over netlink'")),
            record(AUDIT_REPLACE, line("1700000000.200:41", "auditd_pid=1")),
            record(AUDIT_SYSCALL, line("1700000000.300:42", "arch=c000003e syscall=59")),
            record(AUDIT_EOE, line("1700000000.300:42", "")),
        )
        wait_for(lambda: len(sink.events) == 2)
    finally:
        reader.stop()
    assert opened == [{"multicast": True, "rcvbuf": ReaderSettings().rcvbuf}]
    assert [(e.serial, tuple(e.types)) for e in sink.events] == [
        (40, (AUDIT_USER,)),
        (42, (AUDIT_SYSCALL,)),
    ]
    assert reader.stats.records_received == 3


# -- stop -----------------------------------------------------------------------------------


def test_stop_keeps_a_pid_another_process_took_since_the_last_check(
    holder: subprocess.Popen[bytes],
) -> None:
    kernel = FakeKernel(pid=0)
    reader = new_reader(kernel, pid_check_interval=3600)  # no check before stop
    reader.start()
    try:
        assert reader.stats.mode == "unicast"
        kernel.pid = holder.pid
    finally:
        reader.stop()
    assert kernel.pid == holder.pid
    assert [pid for pid, _ in kernel.pid_requests] == [OUR_PID]  # no attempt to clear it
    (sock,) = kernel.sockets
    assert sock.closed
