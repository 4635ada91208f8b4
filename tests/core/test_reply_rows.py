"""core/_sqlfast.c's reply_rows (an extension's generate reply read straight into typed row
tuples) against the path it replaces: thrift's decoder (fastbinary), then core/sql.py's
_converted over the dicts, and each row's "rowid" as the dict holds it. Fed the exact bytes
thrift writes (fastbinary and the pure-Python protocol), in chunks of random sizes."""

from __future__ import annotations

import math

import pytest
from helpers import accel
from helpers.thrift_replies import (
    STATUS,
    TEXTS,
    UNKNOWN_FIELDS,
    VALUES,
    Chunks,
    raw_reply,
    thrift_reply,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from thrift.protocol.TBinaryProtocol import TBinaryProtocolAccelerated
from thrift.Thrift import TType
from thrift.transport.TTransport import TMemoryBuffer

from osquery_audit_ext.core import sql as sql_module
from osquery_audit_ext.core.tabledef import TableDef
from osquery_audit_ext.sdk.osquery_thrift.Extension import call_result
from osquery_audit_ext.sdk.transport import accelerated


@pytest.fixture(scope="module", autouse=True)
def compiled() -> None:
    accel.require("compiled", sql_module._sqlfast, "core/_sqlfast.c")
    if not accelerated():
        pytest.skip("thrift's fastbinary (the decoder reply_rows stands in for) is not built")


COLUMNS = {
    "name": "TEXT",
    "pid": "BIGINT",
    "ok": "INTEGER",
    "ratio": "DOUBLE",
    "odd": "MADE_UP",
    "blob": "BLOB",
    "naïve": "UNSIGNED_BIGINT",
}
ROUTES = [{"id": "column", "name": n, "type": t, "op": "0"} for n, t in COLUMNS.items()]
ROUTES.append({"id": "columnAlias", "name": "process_id", "target": "pid"})
DEFINITION = TableDef.from_routes("t", ROUTES, is_extension=True)
KEYS = list(COLUMNS)
# A column named with U+FFFD: an invalid UTF-8 key decodes ("replace") to it.
ODD_DEFINITION = TableDef.from_routes(
    "u",
    [*ROUTES[:2], {"id": "column", "name": "k\ufffd", "type": "BIGINT", "op": "0"}],
    is_extension=True,
)

_KEYS = st.one_of(
    st.sampled_from([*KEYS, "rowid", "extra", "k\ufffd"]).map(str.encode),
    st.sampled_from([b"k\xff", b"k\xfe", b"\xff", b"nam", b"pid\x00", b"nam\xc3"]),
    st.text(max_size=3).map(str.encode),
)
_PAIRS = st.tuples(_KEYS, VALUES)


def _expected(definition: TableDef, reply: bytes, used: list[str] | None) -> object:
    """What the current path makes of `reply`: fastbinary's decode, then _converted."""
    result = call_result()
    result.read(TBinaryProtocolAccelerated(TMemoryBuffer(reply)))
    response = result.success
    if response is None:
        return None
    status = response.status
    raw = response.response
    rows = None if raw is None else list(sql_module._converted(definition, raw, used))
    rowids = [row.get("rowid") for row in raw or []]
    return (
        None if status is None else (status.code, status.message, status.uuid),
        rows,
        rowids if any(text is not None for text in rowids) else None,
    )


def _decoded(definition: TableDef, reply: bytes, used, sizes: list[int], trailer: bytes = b""):
    plan = sql_module._column_plan(definition, None if used is None else set(used))
    reader = Chunks(reply + trailer, sizes, len(reply))
    return sql_module._sqlfast.reply_rows(plan, reader.read)


def _same(got: object, expected: object) -> None:
    """Equal, and of the same types (1 is not 1.0; a NaN equals a NaN)."""

    def canonical(value: object) -> object:
        if isinstance(value, (list, tuple)):
            return (type(value).__name__, [canonical(v) for v in value])
        if isinstance(value, float) and math.isnan(value):
            return ("nan",)
        return (type(value).__name__, value)

    assert canonical(got) == canonical(expected)


_USED = st.none() | st.lists(st.sampled_from(KEYS), unique=True)
_SIZES = st.lists(st.integers(1, 64), min_size=1, max_size=5) | st.just([1 << 20])


@given(
    st.lists(st.dictionaries(st.sampled_from([*KEYS, "rowid", "extra"]), TEXTS), max_size=6),
    STATUS,
    _USED,
    _SIZES,
    st.booleans(),
)
def test_what_thrift_writes_reads_as_fastbinary_then_converted(
    rows, status, used, sizes, fast
) -> None:
    """ExtensionResponses as both of thrift's encoders write them (one key order per row,
    as extensions send them; keys missing, unknown, "rowid")."""
    reply = thrift_reply(call_result, status, rows, fast)
    _same(
        _decoded(DEFINITION, reply, used, sizes, b"\x00trailing"),
        _expected(DEFINITION, reply, used),
    )


@given(
    st.none() | st.lists(st.lists(_PAIRS, max_size=6), max_size=5),
    STATUS,
    UNKNOWN_FIELDS,
    _USED,
    _SIZES,
    st.booleans(),
)
def test_any_wire_rows_read_as_fastbinary_then_converted(
    rows, status, unknown, used, sizes, odd
) -> None:
    """Duplicate keys (the last wins), invalid UTF-8 keys and values (read with "replace"),
    unknown fields of every type, the response or status absent."""
    definition = ODD_DEFINITION if odd else DEFINITION
    used = used if not odd or used is None else [*used, "k\ufffd"]
    reply = raw_reply(status, rows, unknown)
    _same(_decoded(definition, reply, used, sizes), _expected(definition, reply, used))


def test_rows_in_one_key_order_predicted_and_not() -> None:
    """The same keys in the same order in every row (the prediction holds), then a row in
    another order with a duplicate: read as the dicts read."""
    order = [("pid", "1"), ("name", "é"), ("naïve", "18446744073709551615"), ("rowid", "9")]
    rows = [[(k.encode(), f"{v}{i}".encode()) for k, v in order] for i in range(50)]
    rows.append([(b"name", b"x"), (b"pid", b"2"), (b"name", b"y"), (b"ok", b"2147483648")])
    reply = raw_reply((0, b"OK", 3), rows, [])
    got = _decoded(DEFINITION, reply, None, [7])
    _same(got, _expected(DEFINITION, reply, None))
    assert got[1][-1][:3] == ("y", 2, -(2**31)) and got[2][-1] is None  # INTEGER wraps


@given(st.binary(min_size=1, max_size=200), st.integers(0, 400), _SIZES)
@settings(max_examples=300)
def test_corrupt_replies_fail_where_fastbinary_fails(noise, cut, sizes) -> None:
    """A valid reply cut short, or with bytes overwritten: where fastbinary raises,
    reply_rows raises (ValueError "malformed reply", or the reader's end of stream);
    elsewhere both read the same."""
    rows = [[(b"pid", b"1"), (b"name", b"a"), (b"rowid", b"4")]] * 3
    reply = bytearray(raw_reply((0, b"OK", 1), rows, [(5, (TType.LIST, [(TType.I32, 7)]))]))
    at = cut % len(reply)
    reply[at : at + len(noise)] = noise[: len(reply) - at]
    reply = bytes(reply[: max(cut, at + 1)])
    try:
        expected = _expected(DEFINITION, reply, None)
    except Exception:
        with pytest.raises((ValueError, EOFError)):
            _decoded(DEFINITION, reply, None, sizes)
        return
    _same(_decoded(DEFINITION, reply, None, sizes), expected)


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"\x0c\x00\x00\x0f\x00\x02\x0b\x00\x00\x00\x01", "rows are of type 11, not maps"),
        (
            b"\x0c\x00\x00\x0f\x00\x02\x0d\x00\x00\x00\x01\x0b\x08\x00\x00\x00\x01",
            "row 0 is a map of types 11 -> 8, not of strings",
        ),
        (b"\x0c\x00\x00\x0f\x00\x02\x0d\xff\xff\xff\xff", "negative list length -1"),
        (b"\x0c\x00\x00\x01\x00\x07\x00", "unknown field type 1"),
    ],
)
def test_wrong_wire_types_are_named(reply: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=f"^malformed reply: .*{message}"):
        _decoded(DEFINITION, reply, None, [3])


def test_reply_without_result_is_none() -> None:
    assert _decoded(DEFINITION, b"\x08\x00\x05\x00\x00\x00\x01\x00", None, [2]) is None


def test_count_star_plan_reads_no_value() -> None:
    """No used column (count(*)): every cell None, the position last, rowids still kept."""
    reply = raw_reply(None, [[(b"pid", b"1"), (b"rowid", b"5")], []], [])
    got = _decoded(DEFINITION, reply, [], [4])
    width = len(DEFINITION.columns)
    assert got == (None, [(*[None] * width, 0), (*[None] * width, 1)], ["5", None])
    _same(got, _expected(DEFINITION, reply, []))


def test_bad_plan_and_reader_are_type_errors() -> None:
    with pytest.raises(TypeError):
        sql_module._sqlfast.reply_rows([("k", None, None)], lambda n: b"\x00")
    with pytest.raises(TypeError, match="not bytes"):
        sql_module._sqlfast.reply_rows([], lambda n: "text")
    with pytest.raises(EOFError):
        sql_module._sqlfast.reply_rows([], Chunks(b"\x0c", [1], 1).read)
