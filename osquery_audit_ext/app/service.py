"""The audit service behind the extension: settings in, tables out, kernel state restored.

Start order: control settings, then the reader (so records have a consumer), then our rules.
Stop order is the reverse, and every step that changed kernel state is undone on every exit
path: our rules removed (unless persist_rules), control settings and the audit pid restored,
audit left enabled unless it was disabled before we started.
"""

from __future__ import annotations

import logging
import threading
import time

from ..audit.control import AuditControl
from ..audit.rule.codec import canonical_rule_data
from ..errors import AuditExtError, StateError
from ..events.coalesce import Event
from ..events.file_rows import FilePaths
from ..events.reader import AuditReader
from ..events.ring import EventRing
from ..events.routing import (
    OTHER_TABLE_SWITCHES,
    PROCESS_EVENTS,
    SOCKET_EVENTS,
    EventRouter,
    other_tables,
)
from .consumers import ConsumerCursors
from .eids import EidReservation
from .managed_rules import desired_rule_texts, encode_rule_texts, rule_keys
from .settings import Settings
from .state import StateDir

log = logging.getLogger(__name__)


def boot_time() -> float:
    """Wall-clock time of boot, to turn audit timestamps into uptime."""
    return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)


class AuditService:
    """Owns the reader, the rings and every change made to kernel audit state."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        ring = settings.ring
        # Read before start() takes the directory's lock: a second instance fails there.
        self.state = StateDir(settings.state.directory())
        self.consumers = ConsumerCursors(self.state, ring.expiry)
        self.eids = EidReservation(self.state, floor=self.consumers.max_cursor)
        self.process_ring = self._ring(PROCESS_EVENTS)
        self.socket_ring = self._ring(SOCKET_EVENTS)
        # One ring per other table (user_events, process_file_events, ...); a table turned
        # off keeps its empty ring, so queries and packs naming it still run (as in osquery).
        self.other_rings = {name: self._ring(name) for name in OTHER_TABLE_SWITCHES}
        enabled = other_tables(vars(settings.events))
        # accept on AF_UNIX cannot be filtered by the kernel rule: drop such rows, but only
        # when our rule alone produced them.
        self.router = EventRouter(
            self.process_ring,
            self.socket_ring,
            boot_time(),
            drop_unix_key=None if settings.events.socket_unix else settings.key,
            other_rings={name: self.other_rings[name] for name in enabled},
            file_paths=FilePaths(settings.file_paths),
            fim_accesses=settings.events.fim_accesses,
        )
        self.reader: AuditReader | None = None
        self._desired = encode_rule_texts(desired_rule_texts(settings))
        self._installed: list[bytes] = []  # rules we added, to remove on exit
        self._saved_control: dict[str, int] = {}  # settings we changed, with their old values
        self._lock = threading.Lock()
        self._started = False

    def _ring(self, table: str) -> EventRing:
        """An event table's ring, its eids continuing above every eid handed out before."""
        ring = self.settings.ring
        return EventRing(ring.capacity, ring.expiry, next_eid=self.eids.start(table))

    # -- events -> rows ---------------------------------------------------------------------

    def route_events(self, events: list[Event]) -> None:
        """Reader-thread sink: each completed event becomes at most one ring entry."""
        try:
            self.eids.reserve(self.router.rings(), len(events))  # eids only below a saved mark
        except StateError as exc:  # keep the events; the reservation is retried next batch
            log.error("cannot reserve eids: %s", exc)
        self.router.route(events)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        try:
            self.state.open()  # first: a second instance on the same dir stops here
            self.eids.reserve(self.router.rings())
            with AuditControl() as control:
                self._apply_control(control)
            self.reader = AuditReader(self.settings.mode, self.settings.reader, self.route_events)
            self.reader.start()
            with AuditControl() as control:
                self._install_rules(control)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Undo everything start() did; safe to call twice and after a failed start."""
        with self._lock:
            if not self._started:
                return
            self._started = False
        try:
            with AuditControl() as control:
                self._remove_rules(control)
        except AuditExtError as exc:
            log.error("could not remove our audit rules: %s", exc)
        if self.reader is not None:
            try:
                self.reader.stop()
            except AuditExtError as exc:
                log.error("could not stop the audit reader cleanly: %s", exc)
        try:
            with AuditControl() as control:
                self._restore_control(control)
        except AuditExtError as exc:
            log.error("could not restore audit settings: %s", exc)
        self.state.close()

    def _apply_control(self, control: AuditControl) -> None:
        status = control.get_status()
        wanted = dict(self.settings.control)
        # Rules only produce events while audit is enabled; enable it when it is off and
        # turn it off again on exit (it was off before we started).
        if status.enabled == 0 and "enabled" not in wanted:
            wanted["enabled"] = 1
        for name, value in wanted.items():
            old = getattr(status, name)
            if old == value or old is None:
                continue
            if status.enabled == 2:
                log.warning("audit configuration is locked: cannot set %s", name)
                continue
            control.set_status(**{name: value})
            self._saved_control[name] = old
            log.info("audit %s: %s -> %s (restored on exit)", name, old, value)

    def _restore_control(self, control: AuditControl) -> None:
        # enabled last, so audit is switched off only once everything else is back.
        for name in sorted(self._saved_control, key=lambda n: n == "enabled"):
            control.set_status(**{name: self._saved_control[name]})
        self._saved_control.clear()

    def _install_rules(self, control: AuditControl) -> None:
        """Add missing rules; rules of an earlier run that died are reused, stale ones removed."""
        if control.get_status().enabled == 2:
            # A hardened host loads its rules, then locks: read what those rules produce.
            log.warning("audit configuration is locked (enabled=2): reading existing rules only")
            return
        # The kernel lists some masks differently from how they were sent (-S all):
        # compare in the form auditctl sends, which is also the form that deletes.
        present = [canonical_rule_data(data) for data in control.list_rules()]
        key = self.settings.key
        for data in present:
            if data not in self._desired and key in rule_keys(data):
                control.delete_rule(data)  # ours, from an earlier run with other settings
                log.info("removed a stale rule of an earlier run")
        present_set = set(present)
        for data in self._desired:
            if data not in present_set:
                control.add_rule(data)
            self._installed.append(data)

    def _remove_rules(self, control: AuditControl) -> None:
        if self.settings.persist_rules:
            self._installed.clear()
            return
        present = {canonical_rule_data(data) for data in control.list_rules()}
        while self._installed:
            data = self._installed.pop()
            if data in present:
                control.delete_rule(data)

    # -- tables -----------------------------------------------------------------------------

    def status_stats(self) -> dict[str, object]:
        """Reader and ring counters for audit_status (empty values when no reader runs)."""
        reader = self.reader
        if reader is None:
            return {}
        stats = reader.stats
        coalescer = reader.coalescer
        rings = tuple(self.router.rings().values())
        return {
            "mode": stats.mode,
            "mode_reason": stats.mode_reason,
            "records_received": stats.records_received,
            "lost_since_start": stats.lost_since_start,
            "enobufs": reader.enobufs,
            "ring_evicted": sum(r.evicted for r in rings),
            "events_timed_out": coalescer.timed_out,
            "events_dropped_inflight": coalescer.dropped_inflight,
            "parse_errors": stats.parse_errors,
            "serial_gaps": coalescer.serial_gaps,
            "events_buffered": sum(len(r) for r in rings),
            "ring_capacity": sum(r.capacity for r in rings),
            "state_dir": self.state.describe,
        }
