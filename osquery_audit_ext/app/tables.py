"""The audit tables as osquery table plugins; their columns come from tables/*.table."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from itertools import repeat
from operator import setitem

from ..audit.control import AuditControl, owner_process
from ..audit.rule.codec import decode_rule
from ..audit.rule.format import describe_rule, format_rule
from ..errors import AuditExtError
from ..events.ring import Entry, EventRing
from ..events.routing import TableRows
from ..sdk.gcpause import gc_paused
from ..sdk.plugin import TEXT_FORM, QueryContext, Table, TextEncoding, encode_rows
from ..sdk.tablespec import load_spec
from .consumers import ConsumerCursors, Narrowing

# Rows carry eid as osquery does: zero-padded text, so text order is numeric order.
EID_WIDTH = 10
# An eid as that text: a C-level format, so a map() over 100k eids runs no Python frame.
eid_text: Callable[[int], str] = f"%0{EID_WIDTH}d".__mod__


class AuditRulesTable(Table):
    """One row per kernel rule, in kernel order, printed as `auditctl -l` prints it."""

    spec = load_spec("audit_rules")

    def __init__(self, key: str) -> None:
        self.key = key

    def generate(self, context: QueryContext) -> Iterable[dict[str, object]]:
        with AuditControl() as control:
            raw = control.list_rules()
        rows = []
        for position, data in enumerate(raw, start=1):
            rule = decode_rule(data)
            summary = describe_rule(rule)
            rows.append(
                {
                    "position": position,
                    "list": summary.list,
                    "action": summary.action,
                    "type": summary.type,
                    "arch": summary.arch,
                    "syscalls": summary.syscalls,
                    "path": summary.path,
                    "permissions": summary.permissions,
                    "key": summary.key,
                    "fields": summary.fields,
                    "rule": format_rule(rule),
                    "managed": int(self.key in rule.keys),
                }
            )
        return rows


class AuditStatusTable(Table):
    """The kernel's AUDIT_GET status plus the reader's loss counters, as one row."""

    spec = load_spec("audit_status")

    def __init__(self, stats: Callable[[], dict[str, object]] | None = None) -> None:
        self.stats = stats  # the reader's and rings' counters, when a reader runs

    def generate(self, context: QueryContext) -> Iterable[dict[str, object]]:
        with AuditControl() as control:
            status = control.get_status()
            loginuid_immutable = control.get_loginuid_immutable()
        row: dict[str, object] = {
            "enabled": status.enabled,
            "failure": status.failure,
            "pid": status.pid,
            "rate_limit": status.rate_limit,
            "backlog_limit": status.backlog_limit,
            "lost": status.lost,
            "backlog": status.backlog,
            "backlog_wait_time": status.backlog_wait_time,
            "backlog_wait_time_actual": status.backlog_wait_time_actual,
            "feature_bitmap": status.feature_bitmap,
            "loginuid_immutable": loginuid_immutable,
            "owner_process": owner_process(status.pid),
        }
        if self.stats is not None:
            row.update(self.stats())
        return [row]


_INDEX_ORDER = ("eid", "time", "pid", "consumer")  # what the ring's index answers
_ADDED = frozenset({"eid", "consumer"})  # columns EventTable adds to a built row


class EventTable(Table):
    """An evented table over a ring: time, eid and pid constraints narrow the scan, and rows
    are built (from the event's records) only when the query uses more than eid, time, pid.

    `consumer = 'NAME'` (a hidden column every event_based spec gets) turns a query into a
    read of NAME's cursor: only events NAME has not been given (consumers.py)."""

    INDEX_COLUMNS = frozenset({"eid", "time", "pid", "consumer"})

    def __init__(
        self,
        name: str,
        ring: EventRing,
        build_row: Callable[[object], dict | None],
        consumers: ConsumerCursors | None = None,
        run_start: int = 1,
    ) -> None:
        """build_row: an item's whole row; a TableRows (routing.py's builder) also builds
        many items' rows at once, only the columns a query uses, and in osquery's text form
        for the handler (encoded_rows)."""
        self.spec = load_spec(name)
        self.all_columns = frozenset(self.spec.column_names)
        self.ring = ring
        self.build_row = build_row
        self.build_rows = build_row.rows if isinstance(build_row, TableRows) else None
        self.consumers = consumers
        self.run_start = run_start  # the first eid this run hands out (consumers.py)

    def generate(self, context: QueryContext) -> Iterable[dict[str, object]]:
        return self._rows(context, None)

    def encoded_rows(self, context: QueryContext) -> list[dict[str, str]]:
        """generate's rows as the handler sends them, made in the text form directly (those
        of a subclass's own generate encoded after it)."""
        if type(self).generate is not EventTable.generate:
            return super().encoded_rows(context)
        return self._rows(context, TEXT_FORM)  # type: ignore[return-value]

    def _rows(self, context: QueryContext, text: TextEncoding | None) -> list[dict[str, object]]:
        """The query's rows, as typed values or (text) in osquery's text form; built with the
        cyclic GC paused (as the extension's handler and the core's queries do) for any
        caller: 100k rows are millions of new objects and no cycle among them."""
        with gc_paused():
            return self._rows_of(context, text)

    def _rows_of(self, context: QueryContext, text: TextEncoding | None) -> list[dict[str, object]]:
        time_min, time_max = context.int_bounds("time")
        eids = [int(e) for e in context.equals("eid") if e.isdigit()]
        pids = [int(p) for p in context.equals("pid") if p.lstrip("-").isdigit()]
        if context.equals("eid") and not eids:
            return []  # eid = 'not-a-number' matches nothing
        if context.equals("pid") and not pids:
            return []
        narrowing = Narrowing(
            time_min=time_min,
            time_max=time_max,
            eid_min=min(eids) if eids else None,
            eid_max=max(eids) if eids else None,
            pids=set(pids) if pids else None,
        )
        consumers = set(context.equals("consumer"))
        if len(consumers) > 1:
            return []  # consumer = 'a' AND consumer = 'b' matches nothing: move no cursor
        consumer = consumers.pop() if consumers else None
        used = context.cols_used
        if used is not None and used <= self.INDEX_COLUMNS:
            rows = self._index_rows(self._entries(consumer, narrowing), used, consumer)
            return rows if text is None else encode_rows(self.spec, rows)  # type: ignore[return-value]
        # Send only the columns the query uses: most of the cost of a large answer is
        # encoding and sending values nobody reads.
        names = self.spec.column_names
        wanted = names if used is None else [n for n in names if n in used]
        if self.build_rows is None:
            rows = self._built_rows(self._entries(consumer, narrowing), wanted, consumer)
            return rows if text is None else encode_rows(self.spec, rows)  # type: ignore[return-value]
        if consumer is None:  # the ring's eids and items apart: no tuple per entry
            eids, items = self.ring.query_items(**_ring_bounds(narrowing))
        else:
            entries = self._entries(consumer, narrowing)
            eids, items = [entry[0] for entry in entries], [entry[3] for entry in entries]
        built = self.build_rows(items, [n for n in wanted if n not in _ADDED], text)
        with_eid, with_consumer = "eid" in wanted, "consumer" in wanted
        if not with_eid and not with_consumer:
            return [row for row in built if row is not None]
        if None in built:  # events that give no row: drop them with their eids
            kept = [(eid, row) for eid, row in zip(eids, built) if row is not None]
            eids, built = [eid for eid, _row in kept], [row for _eid, row in kept]
        # One C-level pass per column (map over setitem), no Python loop per row.
        if with_eid:
            deque(map(setitem, built, repeat("eid"), map(eid_text, eids)), 0)
        if with_consumer:
            # SQLite re-checks a consumer constraint on every row: it is sent back as given.
            value = consumer if text is None else text.value(consumer)
            deque(map(setitem, built, repeat("consumer"), repeat(value)), 0)
        return built  # type: ignore[return-value]

    def _index_rows(
        self, entries: list[Entry], used: frozenset[str], consumer: str | None
    ) -> list[dict[str, object]]:
        """count(*) and the like: the ring's index answers without building rows, and only
        the columns the query uses are sent (count(*) over an extension: none)."""
        if not used:
            return [{} for _ in entries]
        index = [n for n in _INDEX_ORDER if n in used and n in self.all_columns]
        if index == ["eid", "time", "pid"]:  # a table inside the core: its key is used
            return [
                {"eid": eid_text(eid), "time": when, "pid": pid}
                for eid, when, pid, _item in entries
            ]
        rows = []
        for eid, when, pid, _item in entries:
            values = {
                "eid": eid_text(eid),
                "time": when,
                "pid": pid,
                "consumer": consumer,  # SQLite re-checks the constraint on every row
            }
            rows.append({n: values[n] for n in index})
        return rows

    def _built_rows(
        self, entries: list[Entry], wanted: list[str], consumer: str | None
    ) -> list[dict[str, object]]:
        """Rows from build_row an item at a time, cut to the wanted columns. Few unused
        (SELECT * leaves out hidden columns): drop them from each built row; many: copy the
        used ones."""
        build = self.build_row
        names = self.spec.column_names
        unused = [n for n in names if n not in wanted and n not in _ADDED]
        drop = len(unused) < len(wanted)
        with_eid = "eid" in wanted
        with_consumer = "consumer" in wanted
        size = len(names) - len(_ADDED & self.all_columns)  # a built row lacks eid, consumer
        rows = []
        for eid, _when, _pid, item in entries:
            row = build(item)
            if row is None:
                continue
            if not drop:
                row = {n: row.get(n) for n in wanted if n not in _ADDED}
            elif len(row) != size:  # a missing key would read as NULL where "" was meant
                row = {n: row.get(n) for n in names if n not in _ADDED}
            for n in unused if drop else ():
                del row[n]
            if with_eid:
                row["eid"] = eid_text(eid)
            if with_consumer:
                row["consumer"] = consumer  # SQLite re-checks the constraint on every row
            rows.append(row)
        return rows

    def _entries(self, consumer: str | None, narrowing: Narrowing) -> list[Entry]:
        if consumer is None:
            return self.ring.query(**_ring_bounds(narrowing))
        if self.consumers is None:
            raise AuditExtError(f"{self.name}: consumer cursors are not available here")
        return self.consumers.read(
            self.name, self.ring, consumer, run_start=self.run_start, narrowing=narrowing
        )


def _ring_bounds(narrowing: Narrowing) -> dict[str, object]:
    """A query's narrowing as EventRing.query's keyword arguments."""
    return {
        "time_min": narrowing.time_min,
        "time_max": narrowing.time_max,
        "eid_min": narrowing.eid_min,
        "eid_max": narrowing.eid_max,
        "pids": narrowing.pids,
    }


class AuditConsumersTable(Table):
    """One row per (event table, consumer): where its cursor is and what it missed."""

    spec = load_spec("audit_consumers")

    def __init__(self, consumers: ConsumerCursors, rings: dict[str, EventRing]) -> None:
        self.consumers = consumers
        self.rings = rings

    def generate(self, context: QueryContext) -> Iterable[dict[str, object]]:
        return [
            {
                "table_name": row.table,
                "consumer": row.consumer,
                "cursor_eid": eid_text(row.state.cursor),
                "delivered": row.state.delivered,
                "missed": row.state.missed,
                "pending": row.pending,
                "last_read": int(row.state.last_read),
            }
            for row in self.consumers.rows(self.rings)
        ]
