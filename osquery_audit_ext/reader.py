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
from typing import Callable

from .coalesce import Coalescer, Event
from .control import AuditControl, owner_process
from .errors import AuditExtError, AuditPidTaken
from .netlink import AuditNetlink
from .records import RecordParseError
from .settings import Settings

log = logging.getLogger(__name__)

AUDIT_FIRST_EVENT = 1100  # message types below this are control replies, not records...
RECORDS_BELOW_FIRST_EVENT = frozenset({1005, 1006})  # ...except AUDIT_USER and AUDIT_LOGIN
AUDIT_REPLACE = 1329  # the kernel's liveness probe of the audit daemon: not an event


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
    """Reads audit records on a background thread and hands completed events to a sink."""

    def __init__(
        self,
        settings: Settings,
        on_events: Callable[[list[Event]], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.on_events = on_events
        self.clock = clock
        self.stats = ReaderStats()
        self.coalescer = Coalescer(
            timeout=settings.reader.event_timeout, max_inflight=settings.reader.max_inflight
        )
        self._control = AuditControl()
        self._sock: AuditNetlink | None = None
        self._enobufs_closed = 0  # ENOBUFS counted on sockets already closed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_lost = 0

    # -- mode -------------------------------------------------------------------------------

    def _open(self) -> None:
        status = self._control.get_status()
        self.stats.lost_at_start = status.lost
        self._last_lost = status.lost
        mode = self.settings.mode
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
        sock = AuditNetlink(rcvbuf=self.settings.reader.rcvbuf)
        try:
            AuditControl(sock).set_status(pid=os.getpid())
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self.stats.mode, self.stats.mode_reason = "unicast", "registered as the audit pid"
        log.info("reading audit in unicast mode (pid %d)", os.getpid())

    def _open_multicast(self, reason: str) -> None:
        self._sock = AuditNetlink(multicast=True, rcvbuf=self.settings.reader.rcvbuf)
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
                AuditControl(self._sock).set_status(pid=0)
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
        settings = self.settings.reader
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
            received = 0
            for msg_type, payload in batch:
                if (
                    msg_type >= AUDIT_FIRST_EVENT or msg_type in RECORDS_BELOW_FIRST_EVENT
                ) and msg_type != AUDIT_REPLACE:
                    received += 1
                    try:
                        done = coalescer.add(msg_type, payload, now)
                    except RecordParseError:
                        stats.parse_errors += 1
                        continue
                    if done:
                        on_events(done)
            stats.records_received += received
            if now >= next_expire:
                expired = coalescer.expire(now)
                if expired:
                    on_events(expired)
                next_expire = now + settings.event_timeout / 2
            if now >= next_check:
                self._check_status()
                next_check = now + settings.pid_check_interval
        leftover = coalescer.flush()
        if leftover:
            on_events(leftover)
        stats.enobufs = self.enobufs
