"""The daemon's schedule as osqueryd runs it: config parsing, differential/event/snapshot
logging and the filesystem logger's line format (osquery/core/query.cpp, dispatcher/
scheduler.cpp, config/packs.cpp), over tables served inside a real embedded core."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from osquery_audit_ext.core.manager import EmbeddedCore
from osquery_audit_ext.core.results_log import (
    RESULTS_LOG,
    SNAPSHOTS_LOG,
    FilesystemLogger,
    calendar_time,
    escape_nonprintable,
)
from osquery_audit_ext.core.schedule import (
    load_daemon_config,
    machine_shard,
    parse_daemon_config,
    version_at_least,
)
from osquery_audit_ext.core.scheduler import Scheduler
from osquery_audit_ext.errors import ConfigError
from osquery_audit_ext.sdk.plugin import QueryContext, Table
from osquery_audit_ext.sdk.tablespec import parse_spec

T0 = 1_764_598_000  # a multiple of 10 and of 60
# osquery's addLegacyFieldsAndDecorations, in its order (osquery/core/query.cpp).
LEGACY_FIELDS = [
    "name",
    "hostIdentifier",
    "calendarTime",
    "unixTime",
    "epoch",
    "counter",
    "numerics",
]


class ListTable(Table):
    """A table answering whatever rows the test puts in it."""

    def __init__(self, name: str, event_based: bool = False) -> None:
        attributes = 'attributes = ["event_based"]\n' if event_based else ""
        self.spec = parse_spec(
            f'name = "{name}"\n{attributes}'
            '[[columns]]\nname = "k"\ntype = "TEXT"\n[[columns]]\nname = "n"\ntype = "BIGINT"\n'
        )
        self.rows: list[dict[str, object]] = []

    def generate(self, context: QueryContext):
        return list(self.rows)


class Harness:
    def __init__(self, tmp_path: Path, config: dict, **options: object) -> None:
        self.core = EmbeddedCore(str(tmp_path / "core.em"), builtin_tables=True)
        self.things = ListTable("things")
        self.events = ListTable("events", event_based=True)
        self.core.add_table(self.things)
        self.core.add_table(self.events)
        self.now = float(T0)
        self.logdir = tmp_path / "log"
        self.config = parse_daemon_config(json.dumps(config), "test.conf", host_shard=50)
        self.scheduler = Scheduler(
            self.core.query_scanned,
            self.config,
            FilesystemLogger(self.logdir),
            clock=lambda: self.now,
        )

    def step(self, seconds: int = 0) -> None:
        self.now = T0 + seconds
        self.scheduler.step(T0 + seconds)

    def lines(self, name: str = RESULTS_LOG) -> list[dict]:
        path = self.logdir / name
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def raw(self, name: str = RESULTS_LOG) -> list[str]:
        return (self.logdir / name).read_text().splitlines()


def schedule(**queries: dict) -> dict:
    return {"schedule": queries}


def test_differential_first_run_then_only_changes(tmp_path):
    h = Harness(tmp_path, schedule(things={"query": "SELECT k, n FROM things", "interval": 10}))
    h.things.rows = [{"k": "a", "n": 1}, {"k": "b", "n": 2}]
    h.step(0)
    first = h.lines()
    assert [(x["action"], x["columns"], x["counter"]) for x in first] == [
        ("added", {"k": "a", "n": "1"}, 0),
        ("added", {"k": "b", "n": "2"}, 0),
    ]
    h.step(10)
    assert len(h.lines()) == 2  # nothing changed: nothing logged
    h.things.rows = [{"k": "b", "n": 2}, {"k": "c", "n": 3}]
    h.step(20)
    assert [(x["action"], x["columns"]["k"], x["counter"]) for x in h.lines()[2:]] == [
        ("removed", "a", 1),
        ("added", "c", 1),
    ]


def test_removed_false_logs_only_additions(tmp_path):
    h = Harness(
        tmp_path,
        schedule(things={"query": "SELECT k FROM things", "interval": 10, "removed": False}),
    )
    h.things.rows = [{"k": "a", "n": 1}]
    h.step(0)
    h.things.rows = [{"k": "b", "n": 1}]
    h.step(10)
    assert [(x["action"], x["columns"]["k"]) for x in h.lines()] == [("added", "a"), ("added", "b")]


def test_event_based_queries_log_every_row_as_added_without_a_diff(tmp_path):
    h = Harness(tmp_path, schedule(ev={"query": "SELECT k FROM events", "interval": 10}))
    h.events.rows = [{"k": "x", "n": 1}]
    h.step(0)
    h.step(10)  # the same row again: an event table's rows are never diffed
    h.events.rows = []
    h.step(20)
    assert [(x["action"], x["columns"], x["counter"]) for x in h.lines()] == [
        ("added", {"k": "x"}, 1),
        ("added", {"k": "x"}, 2),
    ]


def test_event_counter_after_an_empty_first_run_is_osqueryds(tmp_path):
    # osquery's getQueryCounter: no stored counter and no reset gives 0, then 1, 2, ...
    h = Harness(tmp_path, schedule(ev={"query": "SELECT k FROM events", "interval": 10}))
    h.step(0)
    h.events.rows = [{"k": "x", "n": 1}]
    h.step(10)
    h.step(20)
    assert [x["counter"] for x in h.lines()] == [0, 1]


def test_line_fields_types_and_order_are_osqueryds(tmp_path):
    h = Harness(tmp_path, schedule(things={"query": "SELECT n, k FROM things", "interval": 10}))
    h.things.rows = [{"k": "tab\there", "n": 5}]
    h.step(0)
    (raw,) = h.raw()
    line = json.loads(raw)
    assert list(line) == [*LEGACY_FIELDS, "columns", "action"]
    assert line["name"] == "things" and isinstance(line["hostIdentifier"], str)
    assert line["unixTime"] == T0 and line["epoch"] == 0 and line["numerics"] is False
    assert line["calendarTime"] == calendar_time(T0) == "Mon Dec  1 14:06:40 2025 UTC"
    assert list(line["columns"]) == ["k", "n"]  # sorted, as osquery's row maps
    assert line["columns"] == {"k": "tab\\x09here", "n": "5"}  # escapeNonPrintableBytes
    assert " " not in raw.replace(calendar_time(T0), "")  # compact JSON


def test_snapshots_go_to_the_snapshots_log_as_one_line_per_run(tmp_path):
    h = Harness(
        tmp_path, schedule(snap={"query": "SELECT k FROM things", "interval": 10, "snapshot": True})
    )
    h.things.rows = [{"k": "a", "n": 1}, {"k": "b", "n": 2}]
    h.step(0)
    h.step(10)
    assert h.lines() == []
    snaps = h.lines(SNAPSHOTS_LOG)
    assert len(snaps) == 2
    assert list(snaps[0]) == ["snapshot", "action", *LEGACY_FIELDS]
    assert snaps[0]["snapshot"] == [{"k": "a"}, {"k": "b"}] and snaps[0]["action"] == "snapshot"
    assert snaps[0]["counter"] == 0


def test_decorations_and_the_batch_format(tmp_path):
    config = schedule(things={"query": "SELECT k FROM things", "interval": 10})
    config["decorators"] = {"load": ["SELECT 'h1' AS host_tag"], "always": ["SELECT 7 AS seq"]}
    config["options"] = {"logger_event_type": False, "host_identifier": "specified",
                         "specified_identifier": "box-1", "schedule_epoch": 3}  # fmt: skip
    h = Harness(tmp_path, config)
    h.things.rows = [{"k": "a", "n": 1}]
    h.step(0)
    (line,) = h.lines()
    assert list(line) == ["diffResults", *LEGACY_FIELDS, "decorations"]
    assert line["diffResults"] == {"removed": [], "added": [{"k": "a"}]}
    assert line["decorations"] == {"host_tag": "h1", "seq": "7"}
    assert line["hostIdentifier"] == "box-1" and line["epoch"] == 3


def test_queries_run_when_their_interval_divides_the_time(tmp_path):
    h = Harness(
        tmp_path,
        schedule(
            every10={"query": "SELECT k FROM events", "interval": 10},
            every30={"query": "SELECT k || '!' AS k FROM events", "interval": 30},
        ),
    )
    h.events.rows = [{"k": "e", "n": 1}]
    for second in range(60):
        h.step(second)
    names = [x["name"] for x in h.lines()]
    assert names.count("every10") == 6 and names.count("every30") == 2


def test_pack_queries_are_named_and_filtered_as_osquery_does(tmp_path):
    config = {
        "packs": {
            "audit": {
                "queries": {
                    "mine": {"query": "SELECT k FROM events", "interval": 10},
                    "mac": {"query": "SELECT k FROM events", "interval": 10, "platform": "darwin"},
                    "future": {"query": "SELECT 1", "interval": 10, "version": "99.0.0"},
                    "sharded": {"query": "SELECT 1", "interval": 10, "shard": 10},
                }
            },
            "undiscovered": {
                "discovery": ["SELECT 1 FROM things WHERE k = 'present'"],
                "queries": {"q": {"query": "SELECT k FROM events", "interval": 10}},
            },
        }
    }
    h = Harness(tmp_path, config)
    assert [q.name for q in h.config.queries] == ["pack_audit_mine", "pack_undiscovered_q"]
    h.events.rows = [{"k": "e", "n": 1}]
    h.step(0)
    assert [x["name"] for x in h.lines()] == ["pack_audit_mine"]


def test_a_failing_query_is_logged_and_the_others_go_on(tmp_path, caplog):
    h = Harness(
        tmp_path,
        schedule(
            broken={"query": "SELECT nosuchcolumn FROM things", "interval": 10},
            fine={"query": "SELECT k FROM events", "interval": 10},
        ),
    )
    h.events.rows = [{"k": "e", "n": 1}]
    with caplog.at_level(logging.ERROR):
        h.step(0)
    assert "Error executing scheduled query broken" in caplog.text and "nosuchcolumn" in caplog.text
    assert [x["name"] for x in h.lines()] == ["fine"] and h.scheduler.failures == 1


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("{", "test.conf: line 1: not valid JSON"),
        ('{"scheduel": {}}', "unknown key 'scheduel'"),
        (
            '{"schedule": {"q1": {"query": "SELECT 1", "interval": "often"}}}',
            "test.conf: schedule: queries.q1: interval must be an integer",
        ),
        (
            '{"packs": {"p": {"queries": {"q": {"query": "SELECT 1", "intervall": 5}}}}}',
            "test.conf: packs.p: queries.q: unknown key 'intervall'",
        ),
        ('{"packs": {"p": "/nonexistent/p.conf"}}', "packs.p: cannot read /nonexistent/p.conf"),
        ('{"options": {"host_identifier": "mac"}}', "options.host_identifier"),
        ('{"options": {"schedule_epoch": "x"}}', "options.schedule_epoch"),
        (
            '{"schedule": {"pack_a_q": {"query": "SELECT 1"}}, '
            '"packs": {"a": {"queries": {"q": {"query": "SELECT 2"}}}}}',
            "both named 'pack_a_q'",
        ),
    ],
)
def test_a_bad_config_is_one_clear_error(config, message):
    with pytest.raises(ConfigError) as info:
        parse_daemon_config(config, "test.conf", host_shard=50)
    assert message in str(info.value)


def test_config_details(tmp_path):
    pack = tmp_path / "p.conf"
    pack.write_text(json.dumps({"queries": {"q": {"query": "SELECT 1"}}}))
    conf = tmp_path / "osquery.conf"
    conf.write_text(
        "// comments are allowed, as osquery allows them\n"
        + json.dumps(
            {
                "options": {"schedule_default_interval": 120, "pack_delimiter": "/", "utc": True},
                "packs": {"byfile": str(pack)},
                "file_paths": {},
            }
        )
    )
    config = load_daemon_config(str(conf), host_shard=50)
    (q,) = config.queries
    assert q.name == "pack/byfile/q" and q.query.interval == 120
    assert any("option utc" in w for w in config.warnings)
    assert any("file_paths" in w for w in config.warnings)
    assert version_at_least("5.0.0") and not version_at_least("5.0.1", "5.0.0")
    assert 0 <= machine_shard("host") <= 100
    assert escape_nonprintable("a\x01b") == "a\\x01b" and escape_nonprintable("é") == "é"
