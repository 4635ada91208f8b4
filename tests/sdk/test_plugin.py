"""The table plugin layer: value encoding, the generate context, and core's call() answers."""

from __future__ import annotations

import gc
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from osquery_audit_ext.errors import AuditUnavailable
from osquery_audit_ext.sdk.plugin import (
    EQUALS,
    GREATER_THAN,
    GREATER_THAN_OR_EQUALS,
    LESS_THAN,
    LESS_THAN_OR_EQUALS,
    LIKE,
    ExtensionHandler,
    QueryContext,
    Table,
    encode_row,
    encode_rows,
    encode_value,
)
from osquery_audit_ext.sdk.tablespec import parse_spec
from osquery_audit_ext.sdk.values import INT64_MAX, INT64_MIN, parse_c_integer

SPEC = parse_spec(
    """
name = "demo"
description = "a demo table"
attributes = ["event_based"]

[[columns]]
name = "pid"
type = "BIGINT"
options = ["index"]

[[columns]]
name = "path"
type = "TEXT"

[[columns]]
name = "env"
type = "TEXT"
options = ["hidden"]
"""
)

# A context exactly as osquery core sends it (virtual_table.cpp / tables.cpp serialization).
CORE_CONTEXT = (
    '{"constraints":[{"name":"env","list":[],"affinity":"TEXT"},'
    '{"name":"path","list":[{"op":65,"expr":"/usr/%"}],"affinity":"TEXT"},'
    '{"name":"pid","list":[{"op":2,"expr":"10"},{"op":2,"expr":"12"},'
    '{"op":32,"expr":"11"}],"affinity":"BIGINT"}],'
    '"colsUsed":["path","pid"],"colsUsedBitset":3}'
)


class DemoTable(Table):
    spec = SPEC

    def __init__(self, rows=(), error: Exception | None = None) -> None:
        self.rows = list(rows)
        self.error = error
        self.contexts: list[QueryContext] = []

    def generate(self, context: QueryContext):
        self.contexts.append(context)
        if self.error is not None:
            raise self.error
        return self.rows


def test_encode_value_follows_what_core_parses():
    assert encode_value(None) == ""
    assert encode_value(True) == "1"
    assert encode_value(False) == "0"
    assert encode_value(7) == "7"
    assert encode_value(-42) == "-42"
    assert encode_value(8) != "08"
    assert encode_value("as is ") == "as is "
    assert encode_value(b"caf\xc3\xa9") == "café"
    assert encode_value(b"\xff") == "\ufffd"
    assert encode_value(1.5) == "1.5"
    assert encode_value(float("nan")) == ""
    assert encode_value(float("-inf")) == "-inf"
    with pytest.raises(TypeError, match="dict"):
        encode_value({})


@given(st.integers(min_value=INT64_MIN, max_value=INT64_MAX))
def test_integers_survive_core_parsing(number: int):
    """Whatever an extension sends for an integer, core's strtoll base 0 reads back."""
    text = encode_value(number)
    assert parse_c_integer(text) == number
    assert not text.lstrip("-").startswith("0") or number == 0


def test_encode_row_mapping_and_sequence():
    assert encode_row(SPEC, {"pid": 1, "path": None}) == {"pid": "1", "path": ""}
    assert encode_row(SPEC, (5, "/bin/sh", None)) == {"pid": "5", "path": "/bin/sh", "env": ""}
    with pytest.raises(ValueError, match="3 columns"):
        encode_row(SPEC, (1, 2))
    with pytest.raises(TypeError):
        encode_row(SPEC, "pid")


def test_context_from_core_json():
    context = QueryContext.from_json(CORE_CONTEXT)
    assert context.equals("pid") == ["10", "12"]
    assert context.constraints("path") == [(LIKE, "/usr/%")]
    assert context.constraints("env") == []
    assert context.constraints("nope") == []
    assert context.columns["pid"].affinity == "BIGINT"
    assert context.cols_used == frozenset({"path", "pid"})
    assert context.cols_used_bitset == 3
    assert context.is_column_used("pid")
    assert not context.is_column_used("env")
    assert context.raw == CORE_CONTEXT
    assert context.int_bounds("pid") == (12, 10)  # = 10 and = 12 (and >= 11): nothing matches


def test_context_without_cols_used_means_all_used():
    context = QueryContext.from_json('{"constraints":[]}')
    assert context.cols_used is None
    assert context.is_column_used("anything")
    assert QueryContext.from_json("").columns == {}


@pytest.mark.parametrize(
    "text",
    ["[]", '{"constraints":[{"list":[]}]}', '{"constraints":[{"name":"a","list":[1]}]}', "{"],
)
def test_malformed_context_is_value_error(text: str):
    with pytest.raises(ValueError):
        QueryContext.from_json(text)


def _context(column: str, terms: list[tuple[int, str]]) -> QueryContext:
    doc = {
        "constraints": [
            {
                "name": column,
                "list": [{"op": op, "expr": e} for op, e in terms],
                "affinity": "BIGINT",
            }
        ]
    }
    return QueryContext.from_json(json.dumps(doc))


def test_int_bounds_examples():
    assert _context("t", []).int_bounds("t") == (None, None)
    assert _context("t", [(GREATER_THAN, "5"), (LESS_THAN_OR_EQUALS, "9")]).int_bounds("t") == (
        6,
        9,
    )
    assert _context("t", [(GREATER_THAN_OR_EQUALS, "5"), (LESS_THAN, "9")]).int_bounds("t") == (
        5,
        8,
    )
    assert _context("t", [(GREATER_THAN, "1.5")]).int_bounds("t") == (2, None)
    assert _context("t", [(EQUALS, "abc"), (LIKE, "3")]).int_bounds("t") == (None, None)
    assert _context("t", [(EQUALS, "2.5")]).int_bounds("t") == (3, 2)


RANGE_OPS = [EQUALS, GREATER_THAN, GREATER_THAN_OR_EQUALS, LESS_THAN, LESS_THAN_OR_EQUALS]
CHECK = {
    EQUALS: lambda x, v: x == v,
    GREATER_THAN: lambda x, v: x > v,
    GREATER_THAN_OR_EQUALS: lambda x, v: x >= v,
    LESS_THAN: lambda x, v: x < v,
    LESS_THAN_OR_EQUALS: lambda x, v: x <= v,
}


@given(
    st.lists(
        st.tuples(
            st.sampled_from(RANGE_OPS),
            st.one_of(st.integers(-20, 20), st.sampled_from([-2.5, 0.5, 3.25])),
        ),
        max_size=4,
    )
)
def test_int_bounds_are_exactly_the_matching_integers(terms):
    context = _context("t", [(op, str(v)) for op, v in terms])
    low, high = context.int_bounds("t")
    for x in range(-30, 31):
        inside = (low is None or x >= low) and (high is None or x <= high)
        assert inside == all(CHECK[op](x, v) for op, v in terms)


def test_handler_columns_are_the_registration_routes():
    handler = ExtensionHandler([DemoTable()])
    routes = handler.registry()["table"]["demo"]
    answer = handler.call("table", "demo", {"action": "columns"})
    assert answer.status.code == 0
    assert answer.response == routes
    assert routes[0] == {"id": "column", "name": "pid", "type": "BIGINT", "op": "1"}
    assert routes[2] == {"id": "column", "name": "env", "type": "TEXT", "op": "16"}
    assert routes[-1] == {"id": "attributes", "attributes": "4"}


def test_handler_generate_encodes_rows_and_passes_the_context():
    table = DemoTable(rows=[{"pid": 3, "path": "/bin/x", "env": None}, (4, None, b"A=1")])
    answer = ExtensionHandler([table]).call(
        "table", "demo", {"action": "generate", "context": CORE_CONTEXT}
    )
    assert answer.status.code == 0
    assert answer.response == [
        {"pid": "3", "path": "/bin/x", "env": ""},
        {"pid": "4", "path": "", "env": "A=1"},
    ]
    assert table.contexts[0].equals("pid") == ["10", "12"]


def test_handler_generates_with_the_cyclic_gc_paused_and_restores_it():
    seen: list[bool] = []

    class Watching(DemoTable):
        def generate(self, context: QueryContext):
            seen.append(gc.isenabled())
            return super().generate(context)

    assert gc.isenabled()
    handler = ExtensionHandler([Watching(rows=[{"pid": 1}])])
    assert handler.call("table", "demo", {"action": "generate"}).status.code == 0
    failing = ExtensionHandler([Watching(error=ValueError("broken"))])
    assert failing.call("table", "demo", {"action": "generate"}).status.code == 1
    assert seen == [False, False]
    assert gc.isenabled()


@pytest.mark.parametrize("action", ["insert", "update", "delete"])
def test_handler_writes_are_readonly(action: str):
    request = {"action": action, "json_value_array": "[1,null,null]", "id": "1"}
    answer = ExtensionHandler([DemoTable()]).call("table", "demo", request)
    assert answer.status.code == 0
    assert answer.response == [{"status": "readonly"}]


def test_handler_errors_are_status_one_with_one_line():
    audit = ExtensionHandler([DemoTable(error=AuditUnavailable("no audit here"))])
    answer = audit.call("table", "demo", {"action": "generate", "context": "{}"})
    assert (answer.status.code, answer.status.message, answer.response) == (1, "no audit here", [])

    bug = ExtensionHandler([DemoTable(error=ValueError("x\nsecond line"))])
    answer = bug.call("table", "demo", {"action": "generate", "context": "{}"})
    assert answer.status.code == 1
    assert answer.status.message == "ValueError: x"

    bad_row = ExtensionHandler([DemoTable(rows=[(1,)])])
    answer = bad_row.call("table", "demo", {"action": "generate"})
    assert answer.status.code == 1
    assert "1 values" in answer.status.message


def test_handler_rejects_unknown_things():
    handler = ExtensionHandler([DemoTable()])
    assert handler.call("config", "demo", {}).status.code == 1
    assert handler.call("table", "other", {"action": "columns"}).status.code == 1
    unknown = handler.call("table", "demo", {"action": "explode"})
    assert (unknown.status.code, unknown.status.message) == (
        1,
        "Unknown table plugin action: explode",
    )
    garbage = handler.call("table", "demo", {"action": "generate", "context": "{nope"})
    assert garbage.status.code == 1
    assert garbage.status.message.startswith("invalid generate context")


def test_handler_ping_and_shutdown():
    stopped = []
    handler = ExtensionHandler([DemoTable()], on_shutdown=lambda: stopped.append(True))
    handler.uuid = 77
    pong = handler.ping()
    assert (pong.code, pong.message, pong.uuid) == (0, "pong", 77)
    handler.shutdown()
    assert stopped == [True]


def test_duplicate_table_names_refused():
    with pytest.raises(ValueError, match="two tables"):
        ExtensionHandler([DemoTable(), DemoTable()])


_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(), st.floats(), st.binary(max_size=4)
)


@given(
    st.lists(st.sampled_from(["pid", "path", "env"]), unique=True),
    st.lists(st.lists(_VALUES, min_size=3, max_size=3), max_size=6),
    st.booleans(),
)
def test_encode_rows_equals_encode_row_per_row(keys: list, values: list, shuffle: bool) -> None:
    rows = [dict(zip(keys, v)) for v in values]
    if shuffle and len(rows) > 1 and len(keys) > 1:
        rows[-1] = dict(reversed(list(rows[-1].items())))  # same keys, another order
    assert encode_rows(SPEC, rows) == [encode_row(SPEC, row) for row in rows]
    tuples = [tuple(v) for v in values]
    assert encode_rows(SPEC, tuples) == [encode_row(SPEC, t) for t in tuples]
