"""The embedded core end to end: a real fixture extension over Unix sockets.

Each test pins one of osquery core's rules (osquery/sql/virtual_table.cpp,
osquery/extensions/): the generate context JSON, which constraints are forwarded, type
conversion of returned strings, errors, writes.
"""

from __future__ import annotations

import json
import time

import pytest
from helpers import accel
from helpers.harness import FixtureLog, core_with_fixture

from osquery_audit_ext.core import sql as sql_module
from osquery_audit_ext.core.manager import EmbeddedCore
from osquery_audit_ext.core.sources import ExtensionTableSource
from osquery_audit_ext.core.sql import SQLEngine, SQLError
from osquery_audit_ext.core.tabledef import TableDef
from osquery_audit_ext.sdk.osquery_thrift.ttypes import ExtensionResponse, ExtensionStatus
from osquery_audit_ext.sdk.plugin import (
    EQUALS,
    GLOB,
    GREATER_THAN,
    GREATER_THAN_OR_EQUALS,
    LESS_THAN,
    LESS_THAN_OR_EQUALS,
    LIKE,
)


@pytest.fixture(scope="module")
def fixture_core():
    with core_with_fixture() as running:
        yield running


ECHO_COLUMNS = ["extra", "loose", "name", "num", "opt", "pattern", "plain", "secret"]
AFFINITY = {
    "extra": "TEXT",
    "loose": "TEXT",
    "name": "TEXT",
    "num": "BIGINT",
    "opt": "INTEGER",
    "pattern": "TEXT",
    "plain": "TEXT",
    "secret": "TEXT",
}


def forwarded(core: EmbeddedCore, log: FixtureLog, sql: str) -> list[dict[str, list]]:
    """Run sql; for each generate call, column -> [(op, expr)] of what reached the extension."""
    mark = log.mark()
    core.query(sql)
    calls = []
    for context in log.contexts(mark):
        calls.append(
            {c["name"]: [(t["op"], t["expr"]) for t in c["list"]] for c in context["constraints"]}
        )
    return calls


def only(calls: list[dict[str, list]]) -> dict[str, list]:
    assert len(calls) == 1, calls
    return {name: terms for name, terms in calls[0].items() if terms}


def test_launch_passes_exactly_osquerys_flags(fixture_core):
    core, log, _process = fixture_core
    argv = next(e["argv"] for e in log.events() if "argv" in e)
    assert argv == ["--socket", core.socket_path, "--timeout", "3", "--interval", "0.5"]


def test_context_json_is_byte_exact(fixture_core):
    core, log, _ = fixture_core
    mark = log.mark()
    core.query("SELECT name FROM fixture_echo WHERE num = 5")
    (raw,) = log.raw_contexts(mark)
    lists = {name: "[]" for name in ECHO_COLUMNS}
    lists["num"] = '[{"op":2,"expr":"5"}]'
    constraints = ",".join(
        f'{{"name":"{n}","list":{lists[n]},"affinity":"{AFFINITY[n]}"}}' for n in ECHO_COLUMNS
    )
    assert raw == (
        '{"constraints":[' + constraints + '],"colsUsed":["name","num"],"colsUsedBitset":3}'
    )


def test_unconstrained_scan_lists_every_column_empty(fixture_core):
    core, log, _ = fixture_core
    mark = log.mark()
    core.query("SELECT * FROM fixture_echo")
    (context,) = log.contexts(mark)
    assert [c["name"] for c in context["constraints"]] == ECHO_COLUMNS
    assert all(c["list"] == [] for c in context["constraints"])
    assert [c["affinity"] for c in context["constraints"]] == [AFFINITY[n] for n in ECHO_COLUMNS]
    # SELECT * reads the six visible columns (positions 0-5), never the hidden two.
    assert context["colsUsed"] == ["extra", "loose", "name", "num", "opt", "plain"]
    assert context["colsUsedBitset"] == 0b111111


def test_index_required_and_additional_columns_are_forwarded(fixture_core):
    core, log, _ = fixture_core
    terms = only(
        forwarded(
            core,
            log,
            "SELECT * FROM fixture_echo WHERE name = 'a' AND extra = 'e' AND pattern = 'x'",
        )
    )
    assert terms == {"name": [(EQUALS, "a")], "extra": [(EQUALS, "e")], "pattern": [(EQUALS, "x")]}


def test_option_zero_columns_count_as_index(fixture_core):
    core, log, _ = fixture_core
    assert only(forwarded(core, log, "SELECT * FROM fixture_echo WHERE plain = 'p'")) == {
        "plain": [(EQUALS, "p")]
    }


def test_unindexed_columns_are_not_forwarded(fixture_core):
    core, log, _ = fixture_core
    sql = "SELECT * FROM fixture_echo WHERE loose = 'l' AND secret = 's'"
    assert only(forwarded(core, log, sql)) == {}


def test_range_operators_skip_text_but_reach_numbers(fixture_core):
    core, log, _ = fixture_core
    sql = (
        "SELECT * FROM fixture_echo WHERE name > 'a' AND name <= 'z' AND name LIKE 'a%'"
        " AND name GLOB 'a*' AND num > 1 AND num >= 2 AND num < 9 AND num <= 8"
    )
    terms = only(forwarded(core, log, sql))
    assert sorted(terms["name"]) == sorted([(LIKE, "a%"), (GLOB, "a*")])
    assert sorted(terms["num"]) == sorted(
        [
            (GREATER_THAN, "1"),
            (GREATER_THAN_OR_EQUALS, "2"),
            (LESS_THAN, "9"),
            (LESS_THAN_OR_EQUALS, "8"),
        ]
    )
    assert set(terms) == {"name", "num"}


def test_null_and_empty_values_are_not_forwarded(fixture_core):
    core, log, _ = fixture_core
    sql = "SELECT * FROM fixture_echo WHERE name = '' AND num = NULL AND plain IS NULL"
    for call in forwarded(core, log, sql):
        assert all(terms == [] for terms in call.values())


def test_in_on_optimized_column_is_one_call_with_several_equals(fixture_core):
    core, log, _ = fixture_core
    calls = forwarded(core, log, "SELECT * FROM fixture_echo WHERE opt IN (3, 1, 2)")
    assert only(calls) == {"opt": [(EQUALS, "1"), (EQUALS, "2"), (EQUALS, "3")]}


def test_in_on_plain_index_column_is_one_call_per_value(fixture_core):
    core, log, _ = fixture_core
    calls = forwarded(core, log, "SELECT * FROM fixture_echo WHERE num IN (7, 8)")
    assert sorted(call["num"] for call in calls) == [[(EQUALS, "7")], [(EQUALS, "8")]]


def test_expressions_are_text_of_the_sqlite_value(fixture_core):
    core, log, _ = fixture_core
    terms = only(forwarded(core, log, "SELECT * FROM fixture_echo WHERE num = 1.0 AND name = 7"))
    assert terms == {"num": [(EQUALS, "1.0")], "name": [(EQUALS, "7")]}


def test_hidden_columns_stay_out_of_select_star(fixture_core):
    core, _, _ = fixture_core
    result = core.query("SELECT * FROM fixture_echo")
    assert result.columns == ["name", "num", "opt", "plain", "extra", "loose"]
    assert result.rows == [
        {"name": "a", "num": "1", "opt": "1", "plain": "p", "extra": "e", "loose": "l"}
    ]
    hidden = core.query("SELECT secret, pattern FROM fixture_echo")
    assert hidden.rows == [{"secret": "s", "pattern": "x"}]


def test_required_column_is_enforced(fixture_core, caplog):
    core, _, _ = fixture_core
    with pytest.raises(SQLError, match=r"^constraint failed$"):
        core.query("SELECT * FROM fixture_required")
    assert "was queried without a required column" in caplog.text
    with pytest.raises(SQLError, match="constraint failed"):
        core.query("SELECT count(*) FROM fixture_required WHERE size = 3")
    rows = core.query("SELECT path, size FROM fixture_required WHERE path IN ('/a', '/bb')").rows
    assert sorted(r["path"] for r in rows) == ["/a", "/bb"]
    assert {r["path"]: r["size"] for r in rows} == {"/a": "2", "/bb": "3"}


def test_returned_strings_are_cast_as_core_casts_them(fixture_core):
    core, _, _ = fixture_core
    sql = (
        "SELECT label, i, typeof(i) AS ti, b, typeof(b) AS tb, d, typeof(d) AS td, t"
        " FROM fixture_values"
    )
    rows = {r["label"]: r for r in core.query(sql).rows}
    assert (rows["octal"]["i"], rows["octal"]["b"], rows["octal"]["t"]) == ("8", "8", "010")
    assert (rows["hex"]["i"], rows["hex"]["b"], rows["hex"]["d"]) == ("31", "31", "31.0")
    assert rows["bad_octal"]["tb"] == "null" and rows["bad_octal"]["d"] == "8.0"
    for label in ("empty", "text", "trailing_space"):
        assert (rows[label]["ti"], rows[label]["tb"], rows[label]["td"]) == ("null",) * 3
    assert rows["leading_space"]["b"] == "7"
    assert rows["int64_overflow"]["tb"] == "null"
    assert (rows["int32_wrap"]["i"], rows["int32_wrap"]["b"]) == ("1", "4294967297")
    assert (rows["real"]["tb"], rows["real"]["d"], rows["real"]["td"]) == ("null", "1.5", "real")
    assert rows["negative"]["b"] == "-5"


def test_extension_errors_become_sql_errors(fixture_core):
    core, _, _ = fixture_core
    with pytest.raises(SQLError) as audit:
        core.query("SELECT * FROM fixture_errors WHERE kind = 'audit'")
    assert str(audit.value) == "kernel audit is not available here"
    with pytest.raises(SQLError) as bug:
        core.query("SELECT * FROM fixture_errors WHERE kind = 'bug'")
    assert str(bug.value) == "ZeroDivisionError: integer division or modulo by zero"
    assert core.query("SELECT note FROM fixture_errors").rows == [{"note": "fine"}]


def test_sqlite_errors_keep_sqlites_message(fixture_core):
    core, _, _ = fixture_core
    with pytest.raises(SQLError, match=r'^near "SELEC": syntax error$'):
        core.query("SELEC 1")
    with pytest.raises(SQLError, match=r"^no such table: nope$"):
        core.query("SELECT * FROM nope")


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO fixture_echo (name, num, opt, plain, extra, loose, secret, pattern)"
        " VALUES ('n', 1, 2, 'p', 'e', 'l', 's', 'x')",
        "DELETE FROM fixture_echo",
        "UPDATE fixture_echo SET extra = 'changed'",
    ],
)
def test_writes_are_refused_as_readonly(fixture_core, sql: str):
    core, _, _ = fixture_core
    with pytest.raises(SQLError, match=r"^table fixture_echo may not be modified$"):
        core.query(sql)


def test_builtin_tables(fixture_core):
    core, _, _ = fixture_core
    rows = core.query("SELECT uuid, name, path, type FROM osquery_extensions").rows
    assert rows[0] == {"uuid": "0", "name": "core", "path": core.socket_path, "type": "core"}
    (ext,) = rows[1:]
    assert ext["name"] == "fixture" and ext["type"] == "extension"
    assert ext["path"] == f"{core.socket_path}.{ext['uuid']}"
    (now,) = core.query("SELECT unix_time, timezone FROM time").rows
    assert abs(int(now["unix_time"]) - time.time()) < 5 and now["timezone"] == "UTC"
    with pytest.raises(SQLError, match="may not be modified"):
        core.query("DELETE FROM time")


def test_multiple_statements_and_column_types(fixture_core):
    core, _, _ = fixture_core
    result = core.query("SELECT 1 AS one; SELECT name, num + 1 AS later FROM fixture_echo")
    assert result.rows == [{"one": "1"}, {"name": "a", "later": "2"}]
    assert result.columns == ["one"]
    assert core.query_columns("SELECT name, num, opt, 2 AS two FROM fixture_echo") == [
        ("name", "TEXT"),
        ("num", "BIGINT"),
        ("opt", "INTEGER"),
        ("two", "UNKNOWN"),
    ]


def test_schema_and_table_names(fixture_core):
    core, _, _ = fixture_core
    assert {"fixture_echo", "osquery_extensions", "time"} <= set(core.table_names())
    assert core.table_schema("fixture_required") == (
        "CREATE TABLE fixture_required(`path` TEXT, `size` BIGINT);"
    )
    assert core.table_schema("fixture_echo").startswith(
        "CREATE TABLE fixture_echo(`name` TEXT, `num` BIGINT, `opt` INTEGER, `plain` TEXT,"
    )


def test_options_and_thrift_registry_answers(fixture_core):
    core, _, _ = fixture_core
    options = core.options()
    assert options["extensions_socket"].value == core.socket_path
    assert options["extensions_default_index"].value == "true"
    assert json.dumps(sorted(core.extensions()))  # uuids are plain ints


def test_result_text_of_mixed_columns_and_statements():
    """Results are converted a column at a time; every value still reads as castVariant."""
    engine = SQLEngine(dict, nullvalue="NULL")
    sql = (
        "SELECT 1 AS a, 'x' AS b, NULL AS c, 1.5 AS d, 7 AS e"
        " UNION ALL SELECT 'y', 2, 3, x'4100', -8;"
        " SELECT 2 AS a; SELECT 'z' AS f WHERE 0; SELECT 1e300 AS g, 3 AS g"
    )
    rows = engine.query(sql).rows
    assert rows == [
        {"a": "1", "b": "x", "c": "NULL", "d": "1.5", "e": "7"},
        {"a": "y", "b": "2", "c": "3", "d": "A", "e": "-8"},
        {"a": "2"},
        {"g": "3"},
    ]


class _RowsSource:
    """A TableSource answering generate with fixed string rows (a TEXT and a BIGINT column)."""

    name = "fixture"
    is_extension = True

    def __init__(self, rows: list) -> None:

        self.routes = [
            {"id": "column", "name": "a", "type": "TEXT", "op": "0"},
            {"id": "column", "name": "b", "type": "BIGINT", "op": "0"},
        ]
        self.definition = TableDef.from_routes("fixture", self.routes, is_extension=True)
        self.rows = rows

    def call(self, request: dict) -> ExtensionResponse:
        ok = ExtensionStatus(code=0, message="OK")
        if request["action"] == "columns":
            return ExtensionResponse(status=ok, response=self.routes)
        return ExtensionResponse(status=ok, response=self.rows)


def test_converted_rows_go_through_sqlite_unchanged():
    """100 rows whose keys come in two orders, one with a key missing: every cell as cast."""
    rows = [
        {"b": str(i), "a": f"x{i}"} if i % 2 else {"a": f"x{i}", "b": str(i)} for i in range(100)
    ]
    table = _RowsSource(rows)
    engine = SQLEngine(lambda: {"fixture": table})
    got = engine.query("SELECT a, b, typeof(b) AS t FROM fixture").rows
    assert got == [{"a": f"x{i}", "b": str(i), "t": "integer"} for i in range(100)]
    table.rows = [*rows[:50], {"a": "gap"}, *rows[50:], {"b": "7"}]
    got = engine.query("SELECT a, b, typeof(b) AS t, typeof(a) AS ta FROM fixture").rows
    # A missing key reads as "", as osquery's DynamicTableRow::get_column reads it (std::map's
    # operator[] adds it empty): NULL in a BIGINT column, empty text in a TEXT one.
    assert got[50] == {"a": "gap", "b": "", "t": "null", "ta": "text"}
    assert got[101] == {"a": "", "b": "7", "t": "integer", "ta": "text"}
    assert len(got) == 102


def test_rowid_is_the_rows_own_or_its_position():
    """A row's "rowid" key (base 10) is its rowid, else its position; a bad one is an error."""
    table = _RowsSource([{"a": "x", "b": "1", "rowid": "40"}, {"a": "y", "b": "2"}])
    engine = SQLEngine(lambda: {"fixture": table})
    got = engine.query("SELECT rowid AS r, a FROM fixture").rows
    assert got == [{"r": "40", "a": "x"}, {"r": "1", "a": "y"}]
    got = engine.query("SELECT count(*) AS n, max(rowid) AS m FROM fixture").rows
    assert got == [{"n": "2", "m": "40"}]
    table.rows = [{"a": "x", "b": "1", "rowid": "4x"}]
    with pytest.raises(SQLError, match="invalid rowid '4x'"):
        engine.query("SELECT rowid FROM fixture")


_PATH_QUERIES = [
    "SELECT * FROM fixture_rows",
    "SELECT rowid, label, i, typeof(i) AS ti, u, typeof(u) AS tu FROM fixture_rows",
    "SELECT count(*) AS c FROM fixture_rows",
    "SELECT t, sum(n) AS s, max(d) AS m, count(i) AS ci FROM fixture_rows GROUP BY t",
    "SELECT label FROM fixture_rows WHERE i > 5 AND d < 100 AND t LIKE '%é%'",
    "SELECT * FROM fixture_values",
    "SELECT * FROM fixture_errors WHERE kind = 'audit'",
    "SELECT * FROM fixture_errors WHERE kind = 'bug'",
]


def _answers(core: EmbeddedCore) -> list[object]:
    answers: list[object] = []
    for sql in _PATH_QUERIES:
        try:
            result = core.query(sql)
            answers.append((result.columns, result.rows))
        except SQLError as exc:
            answers.append(str(exc))
    return answers


def test_typed_reply_path_answers_as_the_dict_paths(fixture_core, monkeypatch):
    """Every query gives the same rows or error whether the extension's reply is read
    straight into typed rows (ExtensionTableSource.generate_typed with _sqlfast.reply_rows)
    or decoded by thrift into dicts first (then _sqlfast.typed_rows, or pure Python)."""
    core, _, _ = fixture_core
    accel.require("compiled", sql_module._sqlfast, "core/_sqlfast.c")
    generate_typed = ExtensionTableSource.generate_typed
    replies: list[int] = []

    def counted(self, request, decode):
        answer = generate_typed(self, request, decode)
        replies.append(len(answer.rows))
        return answer

    monkeypatch.setattr(ExtensionTableSource, "generate_typed", counted)
    typed = _answers(core)
    assert replies.count(6000) == 5 and typed[2] == (["c"], [{"c": "6000"}])
    first, second = typed[1][1][:2]  # a row's "rowid" key is its rowid, else its position
    assert (first["rowid"], first["i"], second["rowid"], second["i"]) == ("1000000", "", "1", "31")
    monkeypatch.delattr(ExtensionTableSource, "generate_typed")
    assert _answers(core) == typed
    monkeypatch.setattr(sql_module, "_sqlfast", None)
    assert _answers(core) == typed
    assert len(replies) == len(_PATH_QUERIES)
