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

from osquery_audit_ext.app.tables import EID_WIDTH, EventTable
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
    key = {"pid", "time", "eid"}
    built = table.built
    query(core, "SELECT count(*) FROM process_events")
    assert table.built == built  # answered from the ring's index: no row built
    assert set(table.generate(table.contexts[-1])[0]) == key
    query(core, "SELECT cmdline FROM process_events WHERE pid = 1002")
    (first, *_) = table.generate(table.contexts[-1])
    assert set(first) == {"cmdline", *key}


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
