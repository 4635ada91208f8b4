"""osqueryd's scheduler over the embedded core (osquery/dispatcher/scheduler.cpp).

Each second i (unix time) every query whose interval divides i runs (osquery's splay is
not applied: a query at interval 60 runs at :00 of each minute). A run's rows are then:

- snapshot queries: logged whole, to the snapshots log (counter 0);
- queries that scanned an EVENT_BASED table: every row logged as "added", no diff
  (Query::addNewEvents; counter 1 on the first run, then +1 per run that logged rows);
- others: the difference to the query's previous rows (Query::addNewResults): the first
  run logs every row as "added" with counter 0, later runs only changes, counter +1;
  "removed" rows only unless the query says removed: false.

The previous rows live in memory: a restarted daemon starts every differential query
afresh (counter 0, everything "added"), as osqueryd does for a new epoch. A query that
fails is logged (as osqueryd's "Error executing scheduled query") and the others go on;
results that cannot be written stop the daemon, as they stop osqueryd.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import AuditExtError
from ..sdk.result import ScannedResult
from .results_log import FilesystemLogger, LogItem, Row, escape_nonprintable, result_lines
from .schedule import DaemonConfig, ScheduledQuery

log = logging.getLogger(__name__)

MAX_DRIFT = 60  # seconds behind before the loop stops catching up (schedule_max_drift)
PRODUCT_UUID = Path("/sys/class/dmi/id/product_uuid")


@dataclass
class _QueryState:
    counter: int | None = None  # None until a run stored one (osquery's "<name>counter")
    previous: list[Row] | None = None  # None until the first run (a new epoch)


def host_identifier(options: dict[str, object]) -> Callable[[], str]:
    """osquery's getHostIdentifier: hostname is looked up each time (it may change)."""
    kind = options["host_identifier"]
    if kind == "specified":
        fixed = str(options["specified_identifier"])
    elif kind == "uuid":
        try:
            fixed = PRODUCT_UUID.read_text(encoding="ascii").strip().lower()
        except OSError:
            fixed = ""
        fixed = fixed or str(uuid.uuid4())
    elif kind in ("instance", "ephemeral"):
        fixed = str(uuid.uuid4())
    else:
        return lambda: socket.gethostname().strip()
    return lambda: fixed


def _diff(previous: list[Row], current: list[Row]) -> tuple[list[Row], list[Row]]:
    """osquery's diff(): rows as a multiset; (added, removed)."""
    remaining = Counter(tuple(sorted(r.items())) for r in previous)
    added = []
    for row in current:
        key = tuple(sorted(row.items()))
        if remaining[key]:
            remaining[key] -= 1
        else:
            added.append(row)
    removed = []
    for row in previous:
        key = tuple(sorted(row.items()))
        if remaining[key]:
            remaining[key] -= 1
            removed.append(row)
    return added, removed


def _next(stored: int | None) -> int:
    """osquery's getQueryCounter without a reset: the stored counter + 1, or 0 if none."""
    return 0 if stored is None else stored + 1


class Scheduler:
    """Runs a DaemonConfig's schedule against `query` (the core's query_scanned) into a logger."""

    def __init__(
        self,
        query: Callable[[str], ScannedResult],
        config: DaemonConfig,
        logger: FilesystemLogger,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._query = query
        self.config = config
        self._logger = logger
        self._clock = clock
        self._ident = host_identifier(config.options)
        self._states: dict[str, _QueryState] = {}
        self._discovered: dict[str, tuple[float, bool]] = {}
        self._decorations: dict[str, dict[str, str]] = {}  # point -> column -> value
        self.failures = 0  # query runs that failed, for tests and status
        self._decorated = False

    # -- decorators -------------------------------------------------------------------------

    def _decorate(self, point: str, queries: tuple[str, ...]) -> None:
        if self.config.options["disable_decorators"]:
            return
        for sql in queries:
            try:
                rows = self._query(sql).result.rows
            except AuditExtError as exc:
                log.warning("decorator query failed (%s): %s", sql, exc)
                continue
            if rows:
                self._decorations.setdefault(point, {}).update(rows[0])
            if len(rows) > 1:
                log.warning("Multiple rows returned for decorator query: %s", sql)

    def decorations(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        for values in self._decorations.values():
            merged.update(values)
        return merged

    # -- packs ------------------------------------------------------------------------------

    def _pack_active(self, pack: str, now: float) -> bool:
        """A pack runs while its discovery queries all return rows (cached per refresh)."""
        queries = self.config.discovery.get(pack, ())
        if not queries:
            return True
        checked = self._discovered.get(pack)
        refresh = float(self.config.options["pack_refresh_interval"])  # type: ignore[arg-type]
        if checked is not None and now - checked[0] < refresh:
            return checked[1]
        active = True
        for sql in queries:
            try:
                if not self._query(sql).result.rows:
                    active = False
            except AuditExtError as exc:
                log.warning("Discovery query failed (%s): %s", sql, exc)
                active = False
            if not active:
                break
        self._discovered[pack] = (now, active)
        return active

    # -- running ----------------------------------------------------------------------------

    def step(self, second: int) -> None:
        """Run every query due at this second, then the decorators due."""
        if not self._decorated:
            self._decorate("load", self.config.decorators.load)
            self._decorated = True
        for scheduled in self.config.queries:
            if second % scheduled.query.interval == 0 and self._pack_active(scheduled.pack, second):
                self.launch(scheduled)
        if second % 60 == 0:
            for seconds, queries in self.config.decorators.interval:
                if second % seconds == 0:
                    self._decorate(f"interval{seconds}", queries)

    def launch(self, scheduled: ScheduledQuery) -> None:
        """One run of one query, logged as osqueryd logs it; failures are logged, not raised."""
        name = scheduled.name
        self._decorate("always", self.config.decorators.always)
        try:
            scanned = self._query(scheduled.query.query)
        except AuditExtError as exc:
            self.failures += 1
            log.error("Error executing scheduled query %s: %s", name, exc)
            return
        rows: list[Row] = [
            {column: escape_nonprintable(value) for column, value in row.items()}
            for row in scanned.result.rows
        ]
        options = self.config.options
        item = LogItem(
            name=name,
            host_identifier=self._ident(),
            unix_time=int(self._clock()),
            epoch=int(options["schedule_epoch"]),  # type: ignore[call-overload]
            decorations=self.decorations(),
        )
        top_level = bool(options["decorations_top_level"])
        if scheduled.query.snapshot:
            lines = result_lines(
                replace(item, snapshot=rows),
                event_type=bool(options["logger_snapshot_event_type"]),
                top_level=top_level,
            )
            self._logger.write(lines, snapshot=True)
            return
        state = self._states.setdefault(name, _QueryState())
        new_epoch = state.previous is None
        counter = 1  # what osqueryd logs with when nothing stored a new one
        if scanned.event_based:
            state.previous = []
            added, removed = rows, []
            if added:  # getQueryCounter(is_reset=new_epoch, reset_has_all_records=false)
                counter = 1 if new_epoch else _next(state.counter)
                state.counter = counter
        elif new_epoch:
            state.previous = rows
            added, removed = rows, []
            state.counter = counter = 0
        else:
            added, removed = _diff(state.previous or [], rows)
            if added or removed:
                state.previous = rows
                state.counter = counter = _next(state.counter)
        if not scheduled.query.removed:
            removed = []
        if not added and not removed and counter != 0:
            return
        lines = result_lines(
            replace(item, counter=counter, added=added, removed=removed),
            event_type=bool(options["logger_event_type"]),
            top_level=top_level,
        )
        self._logger.write(lines)

    def run(self, stop: threading.Event) -> None:
        """Step once per second of the clock until `stop` is set (osquery's SchedulerRunner)."""
        second = int(self._clock())
        while not stop.is_set():
            self.step(second)
            second += 1
            behind = self._clock() - second
            if behind > MAX_DRIFT:
                log.warning("scheduler fell %d s behind; skipping ahead", int(behind))
                second = int(self._clock())
            elif behind < 0:
                stop.wait(-behind)
