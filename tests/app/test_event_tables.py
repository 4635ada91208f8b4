"""Event tables through the embedded core's SQL: constraints are pushed down to the ring as
osquery core forwards them, and the answers equal a plain scan."""

from __future__ import annotations

import json
import os
import tempfile
import threading

import pytest
from helpers.goldens import RECORDS_GOLDEN
from helpers.harness import running_core

from osquery_audit_ext.app.consumers import ConsumerCursors
from osquery_audit_ext.app.state import StateDir
from osquery_audit_ext.app.tables import EID_WIDTH, AuditConsumersTable, EventTable
from osquery_audit_ext.core.manager import EmbeddedCore
from osquery_audit_ext.events.ring import EventRing
from osquery_audit_ext.sdk.plugin import QueryContext
from osquery_audit_ext.sdk.runtime import run_extension
from osquery_audit_ext.sdk.tablespec import load_spec

GOLDEN = RECORDS_GOLDEN
SPEC = load_spec("process_events")
COLUMNS = [c for c in SPEC.column_names if c != "eid"]


def golden_process_rows() -> list[dict]:
    rows = json.loads((GOLDEN / "execve.rows.json").read_text())
    return [r["process_events"] for r in rows if r.get("process_events")]


class RecordingTable(EventTable):
    """The real table, noting every context core sends it and every row it builds. Its ring
    holds finished rows as items (routing.py's items are tested in test_routing.py)."""

    def __init__(self, ring: EventRing) -> None:
        super().__init__("process_events", ring, self.build)
        self.contexts: list[QueryContext] = []
        self.built = 0

    def build(self, item: object) -> dict:
        self.built += 1
        return dict(item)  # type: ignore[call-overload]

    def generate(self, context: QueryContext):
        self.contexts.append(context)
        return super().generate(context)


@pytest.fixture(scope="module")
def served():
    templates = golden_process_rows()
    ring = EventRing(capacity=1000, expiry=0)
    rows = []
    for i in range(300):
        row = dict(templates[i % len(templates)])
        row["pid"] = 1000 + i % 50
        row["time"] = 1_700_000_000 + i
        ring.append(row["time"], row["pid"], row)
        rows.append(row)
    table = RecordingTable(ring)
    directory = tempfile.mkdtemp(prefix="oae-t")
    core = EmbeddedCore(os.path.join(directory, "t.em"))
    core.add_table(table)
    core.start()
    try:
        yield core, table, rows
    finally:
        core.stop()


def query(core: EmbeddedCore, sql: str) -> list[dict]:
    return core.query(sql).rows


def constraints(table: RecordingTable, column: str) -> list[tuple[int, str]]:
    return table.contexts[-1].constraints(column)


def test_pid_in_list_arrives_as_equals_and_matches_a_scan(served):
    core, table, rows = served
    got = query(core, "SELECT pid, time FROM process_events WHERE pid IN (1003, 1007)")
    assert sorted(constraints(table, "pid")) == [(2, "1003"), (2, "1007")]
    expected = sorted((r["pid"], r["time"]) for r in rows if r["pid"] in (1003, 1007))
    assert sorted((int(r["pid"]), int(r["time"])) for r in got) == expected


def test_time_range_is_pushed_down(served):
    core, table, _rows = served
    got = query(
        core, "SELECT time FROM process_events WHERE time >= 1700000100 AND time < 1700000110"
    )
    assert sorted(constraints(table, "time")) == [(16, "1700000110"), (32, "1700000100")]
    assert sorted(int(r["time"]) for r in got) == list(range(1_700_000_100, 1_700_000_110))


def test_eid_is_hidden_text_and_equality_narrows(served):
    core, table, _rows = served
    star = query(core, "SELECT * FROM process_events WHERE pid = 1001")
    assert star and "eid" not in star[0] and "cmdline_size" not in star[0]
    eids = [r["eid"] for r in query(core, "SELECT eid FROM process_events")]
    assert eids == sorted(eids) and all(len(e) == EID_WIDTH for e in eids)
    assert len(set(eids)) == 300
    one = query(core, f"SELECT eid, pid FROM process_events WHERE eid = '{eids[42]}'")
    assert constraints(table, "eid") == [(2, eids[42])]
    assert [r["eid"] for r in one] == [eids[42]]
    assert query(core, "SELECT eid FROM process_events WHERE eid = 'x'") == []


def test_full_scan_counts_every_row(served):
    core, _table, rows = served
    # Results come back as osquery's query API gives them: every value a string.
    assert query(core, "SELECT count(*) AS n FROM process_events") == [{"n": str(len(rows))}]


def test_values_keep_their_types(served):
    core, _table, _rows = served
    (row,) = query(
        core, "SELECT pid, cmdline, parent, auid, typeof(pid) AS t FROM process_events LIMIT 1"
    )
    assert row["t"] == "integer" and row["pid"] == "1000"
    assert row["cmdline"] == golden_process_rows()[0]["cmdline"]


def test_only_used_columns_are_sent(served):
    core, table, _rows = served
    # osquery declares index columns as the PRIMARY KEY of a WITHOUT ROWID table, so SQLite
    # counts them as used in every query; nothing else is sent for count(*).
    key = {"pid", "time", "eid", "consumer"}
    built = table.built
    query(core, "SELECT count(*) FROM process_events")
    assert table.built == built  # answered from the ring's index: no row built
    assert set(table.generate(table.contexts[-1])[0]) == key
    query(core, "SELECT cmdline FROM process_events WHERE pid = 1002")
    (first, *_) = table.generate(table.contexts[-1])
    assert set(first) == {"cmdline", *key}


# -- the other audit tables, served as the extension serves them -------------------------


@pytest.fixture(scope="module")
def all_tables():
    """Every event table of a service whose tables are all on, its rings filled by routing
    the golden logs (no kernel: the service is built, not started)."""
    from helpers.goldens import events_of, read_log

    from osquery_audit_ext.app.extension import audit_tables
    from osquery_audit_ext.app.service import AuditService
    from osquery_audit_ext.app.settings import EventSettings, RingSettings, Settings

    events = EventSettings(fim=True, fim_accesses=True, seccomp=True, selinux=True, apparmor=True)
    # expiry 0: the golden records are hours old and must not age out of the rings
    service = AuditService(
        Settings(
            events=events,
            file_paths={"tree": ("/tmp/oae11/tree/%%",)},
            ring=RingSettings(expiry=0),
        )
    )
    for path in sorted(RECORDS_GOLDEN.glob("*.log")):
        service.route_events(events_of(read_log(path)))
    directory = tempfile.mkdtemp(prefix="oae-t")
    core = EmbeddedCore(os.path.join(directory, "t.em"))
    for table in audit_tables(service):
        if isinstance(table, EventTable):
            core.add_table(table)
    core.start()
    try:
        yield core
    finally:
        core.stop()


@pytest.mark.parametrize(
    ("table", "count"),
    [
        ("user_events", 14),
        ("process_file_events", 15),
        ("seccomp_events", 5),
        ("selinux_events", 4),
        ("apparmor_events", 6),
    ],
)
def test_other_tables_count_and_index_only_answers(all_tables, table, count):
    """count(*) and eid/time-only queries are answered from the ring's index, also for
    tables without a pid column (selinux_events) or, in osquery, without eid (seccomp)."""
    assert query(all_tables, f"SELECT count(*) AS n FROM {table}") == [{"n": str(count)}]
    rows = query(all_tables, f"SELECT eid, time FROM {table}")
    assert len(rows) == count and set(rows[0]) == {"eid", "time"}
    star = query(all_tables, f"SELECT * FROM {table} LIMIT 1")
    assert set(star[0]) == {c.name for c in load_spec(table).columns if not c.hidden}


def test_other_tables_through_sql(all_tables):
    su = query(
        all_tables,
        "SELECT type, message, path FROM user_events WHERE pid = 18971 AND type = 1105",
    )
    assert su == [{"type": "1105", "message": "op=PAM:session_open", "path": "/usr/bin/su"}]
    renames = query(
        all_tables,
        "SELECT path, dest_path FROM process_file_events WHERE operation = 'rename'",
    )
    assert renames[0] == {
        "path": "/tmp/oae11/tree/sub/f",
        "dest_path": "/tmp/oae11/tree/sub/g",
    }
    (logged,) = query(
        all_tables, "SELECT code, syscall FROM seccomp_events WHERE pid = 29887 LIMIT 1"
    )
    assert logged == {"code": "LOG", "syscall": "getppid"}


@pytest.fixture
def consumed(tmp_path):
    """A table with consumer cursors in a real state directory, served by the core."""
    state = StateDir(tmp_path / "state").open()
    ring = EventRing(capacity=1000, expiry=0)
    cursors = ConsumerCursors(state, expiry=0)
    table = EventTable("process_events", ring, dict, cursors)
    directory = tempfile.mkdtemp(prefix="oae-t")
    core = EmbeddedCore(os.path.join(directory, "t.em"))
    core.add_table(table)
    core.add_table(AuditConsumersTable(cursors, {"process_events": ring}))
    core.start()

    def add(count: int, pid: int = 7) -> None:
        template = golden_process_rows()[0]
        for _ in range(count):
            ring.append(1_700_000_000, pid, {**template, "pid": pid})

    try:
        yield core, add
    finally:
        core.stop()
        state.close()


def test_consumer_is_hidden_forwarded_and_reads_each_event_once(consumed):
    core, add = consumed
    add(5)
    sql = "SELECT eid, pid, cmdline FROM process_events WHERE consumer = 'pack_a_q'"
    first = query(core, sql)
    assert [r["eid"] for r in first] == [str(i).zfill(EID_WIDTH) for i in range(1, 6)]
    assert query(core, sql) == []
    add(2)
    assert len(query(core, sql)) == 2
    # Without a consumer, the ring as before; and consumer stays out of SELECT *.
    star = query(core, "SELECT * FROM process_events")
    assert len(star) == 7 and "consumer" not in star[0]
    assert (
        query(core, "SELECT consumer FROM process_events WHERE consumer = 'x'")
        == [{"consumer": "x"}] * 7
    )
    assert query(core, "SELECT count(*) AS n FROM process_events WHERE consumer = 'x'") == [
        {"n": "0"}
    ]


def test_other_constraints_narrow_a_consumer_query(consumed):
    core, add = consumed
    add(3, pid=1)
    add(2, pid=2)
    sql = "SELECT pid FROM process_events WHERE consumer = 'c' AND pid = 2"
    assert [r["pid"] for r in query(core, sql)] == ["2", "2"]
    add(1, pid=1)
    filtered = "SELECT pid FROM process_events WHERE consumer = 'c' AND cmdline LIKE 'nomatch%'"
    assert query(core, filtered) == []  # SQLite filters; the cursor still moves past it
    assert query(core, "SELECT pid FROM process_events WHERE consumer = 'c'") == []


def test_consumers_in_one_query_and_contradictions(consumed):
    core, add = consumed
    add(3)
    # An IN list: one generate call per consumer, each gets its own copy.
    both = query(core, "SELECT consumer FROM process_events WHERE consumer IN ('a', 'b')")
    assert sorted(r["consumer"] for r in both) == ["a"] * 3 + ["b"] * 3
    # Two different consumers in one call match nothing and move no cursor.
    assert query(core, "SELECT 1 FROM process_events WHERE consumer = 'c' AND consumer = 'd'") == []
    assert len(query(core, "SELECT 1 FROM process_events WHERE consumer = 'c'")) == 3


def test_audit_consumers_lists_every_cursor(consumed):
    core, add = consumed
    add(4)
    query(core, "SELECT eid FROM process_events WHERE consumer = 'siem'")
    add(2)
    rows = query(core, "SELECT * FROM audit_consumers")
    assert rows == [
        {
            "table_name": "process_events",
            "consumer": "siem",
            "cursor_eid": "4".zfill(EID_WIDTH),
            "delivered": "4",
            "missed": "0",
            "pending": "2",
            "last_read": rows[0]["last_read"],
        }
    ]
    assert int(rows[0]["last_read"]) > 1_700_000_000


def test_count_over_an_extension_sends_no_columns():
    """Served by an extension (as under osqueryd), a table has no WITHOUT ROWID key: count(*)
    uses no column, so every row goes over Thrift empty; one column sends just that one."""
    templates = golden_process_rows()
    ring = EventRing(capacity=100, expiry=0)
    for i in range(40):
        ring.append(1_700_000_000 + i, 1000 + i, dict(templates[i % len(templates)]))
    table = RecordingTable(ring)
    with running_core(timeout=3, interval=0.5) as (core, _directory):
        thread = threading.Thread(
            target=run_extension,
            args=("counting", "1", [table]),
            kwargs={"socket_path": core.socket_path, "timeout": 3, "interval": 0.2},
            daemon=True,
        )
        thread.start()
        try:
            core.wait_for_extension("counting", 20)
            assert query(core, "SELECT count(*) AS n FROM process_events") == [{"n": "40"}]
            assert table.contexts[-1].cols_used == frozenset()
            assert table.built == 0
            assert table.generate(table.contexts[-1]) == [{}] * 40
            rows = query(core, "SELECT cmdline FROM process_events")
            assert table.contexts[-1].cols_used == frozenset({"cmdline"})
            assert [r["cmdline"] for r in rows] == [
                templates[i % len(templates)]["cmdline"] for i in range(40)
            ]
            assert set(table.generate(table.contexts[-1])[0]) == {"cmdline"}
        finally:
            core.stop()
            thread.join(timeout=20)
