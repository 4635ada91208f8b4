"""The reader: one thread that turns the audit netlink stream into completed events.

It owns the netlink socket and the unicast/multicast decision. In `auto` mode it becomes the
audit daemon (unicast) only when no live process holds the audit pid, and otherwise reads the
multicast copy; it never takes the pid from a live daemon, and falls back to multicast when
another process takes the pid from it. Every loss it can see is counted in ReaderStats.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from ..audit.control import AuditControl, AuditStatus, owner_process
from ..audit.mmsg import BATCH
from ..audit.netlink import AuditNetlink
from ..errors import AuditExtError, AuditPidTaken
from .coalesce import Coalescer, Event

log = logging.getLogger(__name__)

MODES = ("auto", "unicast", "multicast")
# After a batch smaller than a full read, wait this long before the next one: a trickle of
# events (an exec storm's ~8 records an exec, one exec per ~1 ms) is then read and routed
# ~20 events per wake-up instead of one, which costs far less CPU per event (a wake-up, its
# receive calls and durable-ring frame cost more than routing an exec's records); events
# are visible this much later (osquery reads an events table when a query runs, seconds
# apart). Exec storm CPU an exec, back to back on the bench host: 10 ms ~120-150 us, 20 ms
# ~95-110 us (the reader of 2 ms and a call per record before: ~170-280 us).
LINGER = 0.020  # seconds
# The records the kernel queues meanwhile must fit the socket's receive buffer: at a storm's
# ~100k records/s of ~2 KiB each (skb truesize) the wait is cut to fill half of `rcvbuf` at
# most (the default 32 MiB allows 80 ms; 1 MiB, 2.6 ms).
QUEUE_BYTES_PER_SECOND = 100_000 * 2048
FULL_BATCH = BATCH  # records of a read that did not empty the socket
# After a full read, read on up to this many times before handing the events over: what is
# done once per hand-over (the durable ring's frame, the eid reservation ...) is then shared
# by up to ~64 events of a connect storm instead of 16 (in-process, ~15 % less CPU an event).
READS_PER_HANDOVER = 4


@dataclass(frozen=True)
class ReaderSettings:
    """The reader's tuning: the config file's [reader] table (app/settings.py validates it)."""

    rcvbuf: int = 32 * 1024 * 1024  # socket receive buffer, bytes (SO_RCVBUFFORCE)
    event_timeout: float = 2.0  # seconds after which an event with no EOE completes
    max_inflight: int = 4096  # incomplete events held at once; oldest dropped beyond
    pid_check_interval: float = 2.0  # seconds between checks that we still hold the audit pid


class RecordSocket(Protocol):
    """What the reader needs of its socket: AuditNetlink, or a fake in tests."""

    enobufs: int  # receive-buffer overruns seen on this socket

    def recv_many(self, timeout: float | None = None) -> list[tuple[int, bytes]]: ...

    def close(self) -> None: ...


class OpenSocket(Protocol):
    """Opens the reader's socket: unicast, or bound to the multicast group."""

    def __call__(self, *, multicast: bool = False, rcvbuf: int | None = None) -> RecordSocket: ...


class StatusControl(Protocol):
    """What the reader needs of AuditControl: the status, and setting the audit pid."""

    def get_status(self) -> AuditStatus: ...

    def set_status(self, *, pid: int | None = None) -> None: ...

    def close(self) -> None: ...


class OpenControl(Protocol):
    """AuditControl's constructor: with no socket it opens its own; given the reader's socket
    it sends on that one (the kernel registers the audit pid on the socket that asks)."""

    def __call__(self, netlink: Any = None) -> StatusControl: ...


@dataclass
class ReaderStats:
    """Counters shown in audit_status; written by the reader thread only."""

    mode: str = ""
    mode_reason: str = ""
    records_received: int = 0
    parse_errors: int = 0
    lost_at_start: int | None = None
    lost_since_start: int = 0
    enobufs: int = 0


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def describe(pid: int) -> str:
    """A process as audit_status.mode_reason names it: `auditd (1234)`."""
    return f"{owner_process(pid) or 'another process'} ({pid})"


class AuditReader:
    """Reads audit records on a background thread and hands completed events to a sink.

    The kernel is reached only through `open_socket` and `open_control` (AuditNetlink and
    AuditControl by default), so tests can play the kernel's part.
    """

    def __init__(
        self,
        mode: str,
        settings: ReaderSettings,
        on_events: Callable[[list[Event]], None],
        *,
        open_socket: OpenSocket = AuditNetlink,
        open_control: OpenControl = AuditControl,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """mode: "auto", "unicast" or "multicast" (the config file's `mode`)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self.settings = settings
        self.on_events = on_events
        self.clock = clock
        self.stats = ReaderStats()
        self.coalescer = Coalescer(
            timeout=settings.event_timeout, max_inflight=settings.max_inflight
        )
        self._open_socket = open_socket
        self._open_control = open_control
        self._control = open_control()
        self._sock: RecordSocket | None = None
        self._enobufs_closed = 0  # ENOBUFS counted on sockets already closed
        self._stop = threading.Event()
        self.linger = min(LINGER, settings.rcvbuf / 2 / QUEUE_BYTES_PER_SECOND)
        self._thread: threading.Thread | None = None
        self._last_lost = 0

    # -- mode -------------------------------------------------------------------------------

    def _open(self) -> None:
        status = self._control.get_status()
        self.stats.lost_at_start = status.lost
        self._last_lost = status.lost
        mode = self.mode
        holder = status.pid if pid_alive(status.pid) else 0
        if mode == "unicast" or (mode == "auto" and not holder):
            try:
                self._open_unicast()
                return
            except AuditPidTaken:
                if mode == "unicast":
                    raise
                holder = self._control.get_status().pid
        reason = "configured" if mode == "multicast" else f"audit pid held by {describe(holder)}"
        self._open_multicast(reason)

    def _open_unicast(self) -> None:
        sock = self._open_socket(rcvbuf=self.settings.rcvbuf)
        try:
            self._open_control(sock).set_status(pid=os.getpid())
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self.stats.mode, self.stats.mode_reason = "unicast", "registered as the audit pid"
        log.info("reading audit in unicast mode (pid %d)", os.getpid())

    def _open_multicast(self, reason: str) -> None:
        self._sock = self._open_socket(multicast=True, rcvbuf=self.settings.rcvbuf)
        self.stats.mode, self.stats.mode_reason = "multicast", reason
        log.info("reading audit in multicast mode: %s", reason)

    def _close_socket(self) -> None:
        if self._sock is not None:
            self._enobufs_closed += self._sock.enobufs
            self._sock.close()
            self._sock = None

    def _release_pid(self) -> None:
        """Give the audit pid back if we still hold it (never clear someone else's)."""
        if self.stats.mode != "unicast" or self._sock is None:
            return
        try:
            if self._control.get_status().pid == os.getpid():
                self._open_control(self._sock).set_status(pid=0)
        except AuditExtError as exc:
            log.warning("could not release the audit pid: %s", exc)

    def _check_status(self) -> None:
        """Track the kernel's lost counter, and notice when another process took the pid."""
        try:
            status = self._control.get_status()
        except AuditExtError as exc:
            log.warning("audit status check failed: %s", exc)
            return
        # The counter can be reset by someone else (auditctl --reset-lost): count from zero.
        delta = status.lost - self._last_lost if status.lost >= self._last_lost else status.lost
        self.stats.lost_since_start += delta
        self._last_lost = status.lost
        if self.stats.mode == "unicast" and status.pid != os.getpid():
            reason = f"audit pid taken by {describe(status.pid)}"
            log.warning("%s: falling back to multicast", reason)
            self._close_socket()
            self._open_multicast(reason)

    # -- thread -----------------------------------------------------------------------------

    def start(self) -> None:
        self._open()
        self._thread = threading.Thread(target=self._run, name="audit-reader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._release_pid()
        self._close_socket()
        self._control.close()

    @property
    def enobufs(self) -> int:
        sock = self._sock
        return self._enobufs_closed + (sock.enobufs if sock is not None else 0)

    def _run(self) -> None:
        settings = self.settings
        wake = min(settings.event_timeout, settings.pid_check_interval, 0.5)
        next_check = self.clock() + settings.pid_check_interval
        next_expire = self.clock() + settings.event_timeout / 2
        stats = self.stats
        coalescer = self.coalescer
        on_events = self.on_events
        while not self._stop.is_set():
            sock = self._sock
            if sock is None:
                break
            batch = sock.recv_many(wake)
            now = self.clock()
            if batch:
                # Control replies and AUDIT_REPLACE probes are not records: add_batch skips them.
                completed, received, errors = coalescer.add_batch(batch, now)
                reads = 1
                while len(batch) >= FULL_BATCH and reads < READS_PER_HANDOVER:
                    batch = sock.recv_many(0)  # more is waiting: read on, no wait
                    if not batch:
                        break
                    now = self.clock()
                    done, taken, bad = coalescer.add_batch(batch, now)
                    completed.extend(done)
                    received += taken
                    errors += bad
                    reads += 1
                if completed:  # the reads' events at once: one durable-ring write
                    on_events(completed)
                stats.records_received += received
                stats.parse_errors += errors
            if now >= next_expire:
                expired = coalescer.expire(now)
                if expired:
                    on_events(expired)
                next_expire = now + settings.event_timeout / 2
            if now >= next_check:
                self._check_status()
                next_check = now + settings.pid_check_interval
            if 0 < len(batch) < FULL_BATCH:
                self._stop.wait(self.linger)
        leftover = coalescer.flush()
        if leftover:
            on_events(leftover)
        stats.enobufs = self.enobufs
