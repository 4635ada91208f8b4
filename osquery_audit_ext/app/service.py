"""The audit service behind the extension: settings in, tables out, kernel state restored.

Start order: control settings, then the reader (so records have a consumer), then our rules.
Stop order is the reverse, and every step that changed kernel state is undone on every exit
path: our rules removed (unless persist_rules), control settings and the audit pid restored,
audit left enabled unless it was disabled before we started.

Each change is recorded in the state directory before the kernel is asked (originals.py), so
a run that dies (kill -9, osqueryd's watchdog) leaves the originals on disk: the next start
takes them as the values from before us, and its clean exit puts them back.
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
from ..events.journal import RingJournal
from ..events.reader import AuditReader
from ..events.ring import EventRing
from ..events.routing import (
    OTHER_TABLE_SWITCHES,
    PROCESS_EVENTS,
    SOCKET_EVENTS,
    STORED_COMPRESSED,
    EventRouter,
    other_tables,
)
from .consumers import ConsumerCursors
from .eids import EidReservation
from .managed_rules import desired_rule_texts, encode_rule_texts, rule_keys
from .originals import (
    Originals,
    baseline,
    load_originals,
    remove_rules,
    restore_settings,
    save_originals,
)
from .serials import SerialWatch
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
        self._routed_rings = self.router.rings()  # fixed from here on; read once per batch
        self.reader: AuditReader | None = None
        self._desired = encode_rule_texts(desired_rule_texts(settings))
        # What to put back on exit (settings we changed, rules we added), mirrored on disk.
        self._originals = Originals(key=settings.key)
        self._lock = threading.Lock()
        self._started = False
        self.events_recovered = 0  # ring entries read back from the state dir at start
        self.serials = SerialWatch(self.state)  # records made while no run read them
        self.ring_torn = 0  # torn or damaged frames skipped in that recovery

    def _ring(self, table: str) -> EventRing:
        """An event table's ring, its eids continuing above every eid handed out before."""
        ring = self.settings.ring
        return EventRing(ring.capacity, ring.expiry, next_eid=self.eids.start(table))

    # -- events -> rows ---------------------------------------------------------------------

    def route_events(self, events: list[Event]) -> None:
        """Reader-thread sink: each completed event becomes at most one ring entry."""
        try:
            self.eids.reserve(self._routed_rings, len(events))  # eids only below a saved mark
        except StateError as exc:  # keep the events; the reservation is retried next batch
            log.error("cannot reserve eids: %s", exc)
        self.router.route(events)
        reader = self.reader
        if reader is not None and self.serials.due():
            self.serials.checkpoint(reader.coalescer)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        try:
            self.state.open()  # first: a second instance on the same dir stops here
        except BaseException:
            with self._lock:
                self._started = False  # nothing changed yet, and the dir is not ours
            raise
        try:
            self.open_durable_ring()  # before the reader: restored entries come first
            self.eids.reserve(self._routed_rings)
            self.serials.load()
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
            self.serials.checkpoint(self.reader.coalescer)
        try:
            with AuditControl() as control:
                self._restore_control(control)
        except AuditExtError as exc:
            log.error("could not restore audit settings: %s", exc)
        self.close_durable_ring()
        self.state.close()

    def open_durable_ring(self) -> None:
        """The durable ring: read back what earlier runs kept, then write every new entry."""
        state = self.settings.state
        if self.state.path is None or not state.ring:
            return
        (self.state.path / "ring").mkdir(mode=0o700, exist_ok=True)
        journals = {}
        for table, ring in self.router.rings().items():
            journal = RingJournal(
                self.state.path / "ring" / table,
                compress=table not in STORED_COMPRESSED,  # zlib once, in memory or on disk
                flush=state.flush,
                freq=state.freq,
            )
            recovered = journal.recover()
            # Restored entries keep their eids; new ones start at this run's reservation.
            self.events_recovered += ring.restore(
                self.router.ring_items(table, recovered.entries), next_eid=ring.next_eid
            )
            self.ring_torn += recovered.torn
            ring.expire()
            journal.prune(ring.first_eid)
            journals[table] = journal
            if recovered.entries or recovered.torn:
                log.info(
                    "%s: %d events recovered from %s (%d torn frames skipped)",
                    table,
                    len(ring),
                    journal.directory,
                    recovered.torn,
                )
        self.router.journals = journals

    def close_durable_ring(self) -> None:
        journals, self.router.journals = self.router.journals, None
        for journal in (journals or {}).values():
            try:
                journal.close()
            except OSError as exc:
                log.error("could not flush the durable ring: %s", exc)

    def _apply_control(self, control: AuditControl) -> None:
        status = control.get_status()
        # A run that crashed left what it changed on record: those are the originals.
        originals = load_originals(self.state)
        if originals:
            log.warning(
                "an earlier run did not exit cleanly: taking its recorded originals (%s)",
                ", ".join(f"{n} {v}" for n, v in sorted(originals.settings.items())) or "rules",
            )
        originals.key = self.settings.key
        self._originals = originals
        before = baseline(status, originals)
        wanted = dict(self.settings.control)
        # Rules only produce events while audit is enabled; enable it when it is off and
        # turn it off again on exit (it was off before we started).
        if before["enabled"] == 0 and "enabled" not in wanted:
            wanted["enabled"] = 1
        floor = self.settings.raise_backlog_limit
        old_limit = before["backlog_limit"]
        if "backlog_limit" not in wanted and floor and old_limit and old_limit < floor:
            # A burst of execs fills the kernel's default 64 at once; audited tasks then
            # sleep up to backlog_wait_time or records are lost.
            wanted["backlog_limit"] = floor
            log.info(
                "audit backlog_limit %d is low: raised to %d while we run "
                "(restored on exit; raise_backlog_limit = 0 keeps the kernel's)",
                old_limit,
                floor,
            )
        targets = {n: wanted.get(n, before[n]) for n in {*wanted, *originals.settings}}
        changes = {n: v for n, v in targets.items() if v is not None and getattr(status, n) != v}
        if changes and status.enabled == 2:
            log.warning("audit configuration is locked: cannot set %s", ", ".join(changes))
            return
        # On disk first: every value a crash in the middle would leave to put back.
        keep = {n: v for n, v in before.items() if v is not None and targets.get(n, v) != v}
        originals.settings = {**originals.settings, **keep}
        save_originals(self.state, originals)
        for name in sorted(changes, key=lambda n: n == "enabled"):
            control.set_status(**{name: changes[name]})
            if name in keep:
                log.info("audit %s: %s -> %s (restored on exit)", name, keep[name], changes[name])
        originals.settings = keep
        save_originals(self.state, originals)

    def _restore_control(self, control: AuditControl) -> None:
        restore_settings(control, self._originals.settings)
        self._originals.settings = {}
        save_originals(self.state, self._originals)

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
        crashed = set(self._originals.rules)  # added by a run that died (maybe another key)
        for data in present:
            if data not in self._desired and (key in rule_keys(data) or data in crashed):
                control.delete_rule(data)  # ours, from an earlier run with other settings
                log.info("removed a stale rule of an earlier run")
        originals = self._originals
        if not self.settings.persist_rules:
            originals.rules = list(self._desired)  # on record before any is added
            save_originals(self.state, originals)
        elif originals.rules:
            originals.rules = []  # kept on exit by choice: nothing to take back
            save_originals(self.state, originals)
        present_set = set(present)
        for data in self._desired:
            if data not in present_set:
                control.add_rule(data)

    def _remove_rules(self, control: AuditControl) -> None:
        if self.settings.persist_rules:
            return
        # Ours, and those of a crashed run when we failed before reconciling them.
        remove_rules(control, self._originals.rules)
        self._originals.rules = []
        save_originals(self.state, self._originals)

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
            "events_recovered": self.events_recovered,
            "ring_torn": self.ring_torn,
            "records_missed_while_down": self.serials.missed,
        }
