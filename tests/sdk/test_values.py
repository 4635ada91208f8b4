"""Core's pure layers: string-to-SQLite casts, result text, JSON strings, table definitions."""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from osquery_audit_ext.core.sql import generate_context
from osquery_audit_ext.core.tabledef import TableDef
from osquery_audit_ext.sdk.columns import HIDDEN, INDEX, OPTIMIZED, REQUIRED
from osquery_audit_ext.sdk.values import (
    INT64_MAX,
    INT64_MIN,
    column_converter,
    column_text,
    column_value,
    convert_column,
    json_string,
    parse_c_double,
    parse_c_integer,
    parse_rowid,
    result_text,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("12", 12),
        ("-5", -5),
        ("+5", 5),
        ("010", 8),
        ("0x1f", 31),
        ("0X1F", 31),
        ("-0x10", -16),
        (" \t7", 7),
        ("9223372036854775807", INT64_MAX),
        ("-9223372036854775808", INT64_MIN),
        ("7 ", None),
        ("", None),
        ("08", None),
        ("0x", None),
        ("1.5", None),
        ("abc", None),
        ("9223372036854775808", None),
        ("1_000", None),
        ("١٢", None),
    ],
)
def test_parse_c_integer_is_strtoll_base_0_on_the_whole_string(text: str, value: int | None):
    assert parse_c_integer(text) == value


@given(st.integers(min_value=0, max_value=INT64_MAX), st.sampled_from(["", "-", "+"]))
def test_parse_c_integer_reads_every_c_spelling(number: int, sign: str):
    expected = -number if sign == "-" else number
    assert parse_c_integer(f"{sign}{number}") == expected
    assert parse_c_integer(f"{sign}{number:#x}") == expected
    assert parse_c_integer(f"{sign}0{number:o}") == expected


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1.5", 1.5),
        ("-2", -2.0),
        (".5", 0.5),
        ("1e3", 1000.0),
        (" 3", 3.0),
        ("0x10", 16.0),
        ("inf", float("inf")),
        ("-Infinity", float("-inf")),
        ("nan", None),
        ("1e", None),
        ("1.5 ", None),
        ("", None),
        ("1_0", None),
    ],
)
def test_parse_c_double_is_strtod_on_the_whole_string(text: str, value: float | None):
    assert parse_c_double(text) == value


def test_column_value_by_type():
    assert column_value("INTEGER", "4294967297") == 1  # through a C int, as core does
    assert column_value("INTEGER", "2147483648") == -2147483648
    assert column_value("BIGINT", "4294967297") == 4294967297
    assert column_value("UNSIGNED BIGINT", "010") == 8
    assert column_value("BIGINT", "") is None
    assert column_value("DOUBLE", "0x1p3") == 8.0
    assert column_value("TEXT", "010") == "010"
    assert column_value("BLOB", "raw") == "raw"
    assert column_value("UNKNOWN", "1") is None
    assert column_value("TEXT", None) is None


def test_parse_rowid_is_base_10():
    assert parse_rowid("42") == 42
    assert parse_rowid("-1") == -1
    assert parse_rowid("0x10") is None
    assert parse_rowid("") is None


def test_result_text_is_castvariant():
    assert result_text(None) == ""
    assert result_text(None, "NULL") == "NULL"
    assert result_text(12) == "12"
    assert result_text(1.0) == "1.0"
    assert result_text(0.1) == "0.1"
    assert result_text(1e20) == "1e+20.0"
    assert result_text("x") == "x"
    assert result_text(b"ab\x00cd") == "ab"


def test_json_string_matches_rapidjson():
    assert json_string('a"b\\c') == '"a\\"b\\\\c"'
    assert json_string("\n\t\r\b\f") == '"\\n\\t\\r\\b\\f"'
    assert json_string("\x01\x1f") == '"\\u0001\\u001F"'
    assert json_string("é/✓") == '"é/✓"'


@given(st.text())
def test_json_string_round_trips(text: str):
    assert json.loads(json_string(text)) == text


def _route(name: str, ctype: str, op: int) -> dict[str, str]:
    return {"id": "column", "name": name, "type": ctype, "op": str(op)}


def test_column_definition_matches_osquery():
    # osquery's own unit test (virtual_table tests, "test_tableplugin_options").
    table = TableDef.from_routes(
        "options",
        [
            _route("id", "INTEGER", INDEX | REQUIRED),
            _route("username", "TEXT", OPTIMIZED),
            _route("name", "TEXT", 0),
        ],
        is_extension=False,
    )
    assert table.column_definition(is_extension=False) == (
        "(`id` INTEGER, `username` TEXT, `name` TEXT, PRIMARY KEY (`id`)) WITHOUT ROWID"
    )


def test_extension_columns_default_to_index():
    routes = [
        _route("a", "TEXT", 0),
        _route("b", "UNSIGNED BIGINT", HIDDEN),
        _route("c", "UNSIGNED_BIGINT", 0),
        {"id": "alias", "alias": "other_name"},
        {"id": "columnAlias", "name": "b_alias", "target": "b"},
        {"id": "attributes", "attributes": "4"},
    ]
    table = TableDef.from_routes("t", routes, is_extension=True)
    assert [(c.name, c.type, c.options) for c in table.columns] == [
        ("a", "TEXT", INDEX),
        ("b", "UNSIGNED BIGINT", HIDDEN),
        ("c", "UNKNOWN", INDEX),  # osquery's type name has a space, not an underscore
        ("b_alias", "UNSIGNED BIGINT", HIDDEN),
    ]
    assert table.aliases == ("other_name",)
    assert table.attributes == 4
    assert table.column_definition(is_extension=True) == (
        "(`a` TEXT, `b` UNSIGNED BIGINT HIDDEN, `c` UNKNOWN, `b_alias` UNSIGNED BIGINT HIDDEN,"
        " PRIMARY KEY (`a`, `c`))"
    )
    core_table = TableDef.from_routes("t", routes, is_extension=False)
    assert core_table.columns[0].options == 0
    no_default = TableDef.from_routes("t", routes, is_extension=True, default_index=False)
    assert no_default.columns[0].options == 0


def test_generate_context_shape():
    table = TableDef.from_routes(
        "t", [_route("z", "BIGINT", INDEX), _route("a", "TEXT", 0)], is_extension=True
    )
    text = generate_context(table, {"z": [(2, "5"), (4, 'q"')]}, ["z"], 1)
    assert text == (
        '{"constraints":[{"name":"a","list":[],"affinity":"TEXT"},'
        '{"name":"z","list":[{"op":2,"expr":"5"},{"op":4,"expr":"q\\""}],"affinity":"BIGINT"}],'
        '"colsUsed":["z"],"colsUsedBitset":1}'
    )
    assert generate_context(table, {}, None, 0).endswith(
        '"affinity":"BIGINT"}],"colsUsedBitset":0}'
    )


@given(
    st.one_of(
        st.none(),
        st.text(),
        st.integers().map(str),
        st.sampled_from(
            ["007", "-0", "+5", " 9", "0x1F", "9223372036854775808", "99999999999999999999"]
        ),
    )
)
def test_column_converters_agree_with_column_value(text: str | None) -> None:
    for ctype in ("TEXT", "BLOB", "INTEGER", "BIGINT", "UNSIGNED BIGINT", "DOUBLE", "UNKNOWN"):
        assert column_converter(ctype)(text) == column_value(ctype, text)


@given(
    st.sampled_from(["TEXT", "INTEGER", "BIGINT", "UNSIGNED BIGINT", "DOUBLE", "UNKNOWN"]),
    st.lists(
        st.one_of(
            st.none(),
            st.integers(min_value=-(2**70), max_value=2**70).map(str),
            st.sampled_from(["", "007", "-0", "0", "+5", "0x10", "1\n2", "1\n", "٣", "2147483648"]),
        )
    ),
)
@example("BIGINT", ["1\n2"])  # two numbers once joined: must not read as two
@example("INTEGER", ["5", "-7", "2147483648"])
def test_convert_column_equals_column_value_per_value(ctype: str, texts: list) -> None:
    assert convert_column(ctype, texts) == [column_value(ctype, t) for t in texts]


_NOT_QUITE_PLAIN = [
    *("1,2", "5 ", " 5", "\t5", "5\n", "5\r", "\v5", "5\f", "null", "true", "false"),
    *("1e3", "1E3", "1.0", "0.0", "-", "--1", "00", "-0", "+1", "NaN", "Infinity"),
    *("-Infinity", "[1]", "[", "]", "{}", '"5"', "[[1", "2]]", "٣", "0x1f", "010"),
    *("2147483647", "2147483648", "-2147483648", "-2147483649"),
    *("9223372036854775807", "9223372036854775808", "-9223372036854775808"),
    *("-9223372036854775809", "18446744073709551615"),
]


@given(
    st.sampled_from(["BIGINT", "INTEGER", "UNSIGNED BIGINT"]),
    st.lists(
        st.sampled_from(_NOT_QUITE_PLAIN)
        | st.integers(min_value=-(2**64), max_value=2**64).map(str),
        min_size=1,
    ),
)
@example("BIGINT", ["1,2"])  # two numbers once joined: must not read as two
@example("BIGINT", ["5", "7 "])  # JSON would skip the space; strtoll's whole-string rule does not
@example("BIGINT", ["true", "null"])  # JSON literals: NULL here, not True / None-by-accident
@example("BIGINT", ["[1", "2]"])  # one JSON list once joined, not two values
@example("INTEGER", ["1", "2147483648"])  # past a C int: wraps (the careful path)
@example("BIGINT", ["[" * 100_000])  # nested past the JSON parser's recursion limit
def test_convert_column_plain_path_never_reads_json_spellings(ctype: str, texts: list) -> None:
    assert convert_column(ctype, texts) == [column_value(ctype, t) for t in texts]


_RESULT_VALUES = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.text(max_size=4),
    st.sampled_from(["", "None", "NULL"]),
    st.floats(),
    st.booleans(),
    st.binary(max_size=4),
)


@given(st.lists(_RESULT_VALUES), st.sampled_from(["", "NULL", "None"]))
@example([1, None, "a", -5], "")
@example([None, "x"], "NULL")
def test_column_text_equals_the_careful_path_per_value(values: list, null: str) -> None:
    def fallback(value: object) -> str:
        return result_text(value, null)

    expected = [fallback(v) for v in values]
    assert list(column_text(values, null, fallback)) == expected
    assert list(column_text(values, null, fallback, set(map(type, values)))) == expected
