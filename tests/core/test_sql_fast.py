"""core/sql.py's conversions both ways (extension text -> SQLite values, SQLite values ->
result text) against sdk/values.py's rules one value at a time. Every test runs on the
pure-Python loops and on the compiled ones (core/_sqlfast.c)."""

from __future__ import annotations

import pytest
from helpers import accel
from hypothesis import given
from hypothesis import strategies as st

from osquery_audit_ext.core import sql as sql_module
from osquery_audit_ext.core.tabledef import ColumnDef, TableDef
from osquery_audit_ext.sdk.values import column_value, result_text


@pytest.fixture(scope="module", params=accel.IMPLEMENTATIONS, autouse=True)
def sql_loops(request: pytest.FixtureRequest) -> object:
    compiled = sql_module._sqlfast
    accel.require(request.param, compiled, "core/_sqlfast.c")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sql_module, "_sqlfast", compiled if request.param == "compiled" else None)
        yield request.param


_SQLITE_VALUES = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.text(),
    st.floats(),
    st.binary(max_size=4),
)


@given(st.lists(st.tuples(_SQLITE_VALUES, _SQLITE_VALUES), max_size=6))
def test_statement_rows_equal_result_text_per_value(rows: list) -> None:
    got = sql_module._statement_rows(rows, ["a", "b"], "NULL")
    assert got == [{"a": result_text(a, "NULL"), "b": result_text(b, "NULL")} for a, b in rows]


_CONVERTED_ROUTES = [
    {"id": "column", "name": "name", "type": "TEXT", "op": "0"},
    {"id": "column", "name": "pid", "type": "BIGINT", "op": "0"},
    {"id": "column", "name": "ok", "type": "INTEGER", "op": "0"},
    {"id": "column", "name": "ratio", "type": "DOUBLE", "op": "0"},
    {"id": "column", "name": "odd", "type": "MADE_UP", "op": "0"},
    {"id": "columnAlias", "name": "process_id", "target": "pid"},
]
_CONVERTED_KEYS = ["name", "pid", "ok", "ratio", "odd"]
_CELL_TEXTS = st.one_of(
    st.integers(min_value=-(2**65), max_value=2**65).map(str),
    st.sampled_from(
        ["", "007", "0x1f", " 5", "5 ", "1,2", "1.5", "abc", "2147483648", "-0", "-", "٣", "+5"]
    ),
    st.text(max_size=3),
)


@given(
    st.lists(
        st.dictionaries(st.sampled_from([*_CONVERTED_KEYS, "extra"]), _CELL_TEXTS),
        max_size=8,
    ),
    st.none() | st.lists(st.sampled_from(_CONVERTED_KEYS), unique=True),
    st.booleans(),
)
def test_converted_rows_equal_one_column_value_per_cell(
    rows: list, used: list | None, complete: bool
) -> None:
    """The row-major fast path (every used key present, any key order) and the careful one
    (a key missing) both give column_value(type, row.get(key, "")) per used cell, None
    elsewhere: a missing key reads as "", as in osquery's core (DynamicTableRow::get_column)."""

    definition = TableDef.from_routes("t", _CONVERTED_ROUTES, is_extension=True)
    if complete:  # what an extension sends: every used key, in some order of its own
        rows = [{**dict.fromkeys(used or _CONVERTED_KEYS, "1"), **row} for row in rows]
    wanted = None if used is None else set(used)

    def cell(column: ColumnDef, row: dict) -> object:
        key = column.alias_of or column.name
        if wanted is not None and key not in wanted:
            return None
        return column_value(column.type, row.get(key, ""))  # osquery reads a missing key as ""

    expected = [
        (*(cell(c, row) for c in definition.columns), position) for position, row in enumerate(rows)
    ]
    assert list(sql_module._converted(definition, rows, used)) == expected
    assert list(sql_module._careful_rows(definition, rows, wanted)) == expected


_PLAIN_SQLITE_VALUES = st.one_of(
    st.none(), st.integers(min_value=-(2**63), max_value=2**63 - 1), st.text()
)


@given(st.lists(st.tuples(*[_PLAIN_SQLITE_VALUES] * 3)))
def test_statement_rows_of_plain_values_equal_result_text_per_value(rows: list) -> None:
    got = sql_module._statement_rows(rows, ["a", "b", "a"], "")
    assert got == [{"a": result_text(c), "b": result_text(b)} for _a, b, c in rows]
