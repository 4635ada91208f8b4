"""core/_sqlfast.c's reply_rows (an extension's generate reply read straight into typed row
tuples) against the path it replaces: thrift's decoder (fastbinary), then core/sql.py's
_converted over the dicts, and each row's "rowid" as the dict holds it. Fed the exact bytes
thrift writes (fastbinary and the pure-Python protocol), in chunks of random sizes."""

from __future__ import annotations

import math

import pytest
from helpers import accel
from hypothesis import given, settings
from hypothesis import strategies as st
from thrift.protocol.TBinaryProtocol import TBinaryProtocol, TBinaryProtocolAccelerated
from thrift.Thrift import TType
from thrift.transport.TTransport import TMemoryBuffer

from osquery_audit_ext.core import sql as sql_module
from osquery_audit_ext.core.tabledef import TableDef
from osquery_audit_ext.sdk.osquery_thrift.Extension import call_result
from osquery_audit_ext.sdk.osquery_thrift.ttypes import ExtensionResponse, ExtensionStatus
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

_TEXTS = st.one_of(
    st.integers(min_value=-(2**65), max_value=2**65).map(str),
    st.sampled_from(
        ["", "007", "0x1f", " 5", "5 ", "1.5", "abc", "2147483648", "-0", "-", "٣", "+5", "nan"]
    ),
    st.text(max_size=4),
)
_VALUES = st.one_of(
    _TEXTS.map(lambda t: t.encode("utf-8", "surrogatepass")),  # lone surrogates: invalid
    st.binary(max_size=4),
)
_KEYS = st.one_of(
    st.sampled_from([*KEYS, "rowid", "extra", "k\ufffd"]).map(str.encode),
    st.sampled_from([b"k\xff", b"k\xfe", b"\xff", b"nam", b"pid\x00", b"nam\xc3"]),
    st.text(max_size=3).map(str.encode),
)
_PAIRS = st.tuples(_KEYS, _VALUES)
_STATUS = st.none() | st.tuples(
    st.none() | st.integers(-(2**31), 2**31 - 1),
    st.none() | st.binary(max_size=6),
    st.none() | st.integers(-(2**63), 2**63 - 1),
)


def _leaf(ttype: int, strategy: st.SearchStrategy) -> st.SearchStrategy:
    return strategy.map(lambda value: (ttype, value))


# (ttype, value) for fields nobody reads: reply_rows must skip them as thrift does.
_UNKNOWN_VALUES = st.recursive(
    st.one_of(
        _leaf(TType.BOOL, st.booleans()),
        _leaf(TType.BYTE, st.integers(-128, 127)),
        _leaf(TType.I16, st.integers(-(2**15), 2**15 - 1)),
        _leaf(TType.I32, st.integers(-(2**31), 2**31 - 1)),
        _leaf(TType.I64, st.integers(-(2**63), 2**63 - 1)),
        _leaf(TType.DOUBLE, st.floats(allow_nan=False)),
        _leaf(TType.STRING, st.binary(max_size=5)),
        _leaf(TType.UUID, st.binary(min_size=16, max_size=16)),
    ),
    lambda inner: st.one_of(
        _leaf(TType.LIST, st.lists(inner, max_size=3)),
        _leaf(TType.MAP, st.lists(st.tuples(inner, inner), max_size=2)),
        _leaf(TType.STRUCT, st.lists(st.tuples(st.integers(-5, 40), inner), max_size=3)),
    ),
    max_leaves=6,
)
_UNKNOWN_FIELDS = st.lists(st.tuples(st.integers(3, 30), _UNKNOWN_VALUES), max_size=2)


_SCALAR_WRITERS = {
    TType.BOOL: "writeBool",
    TType.BYTE: "writeByte",
    TType.I16: "writeI16",
    TType.I32: "writeI32",
    TType.I64: "writeI64",
    TType.DOUBLE: "writeDouble",
    TType.STRING: "writeBinary",
}


def _write_value(out: TBinaryProtocol, ttype: int, value: object) -> None:
    """One value by thrift's own pure-Python writer (lists/maps of mixed inner types are
    written with the first element's type, so a skipper must honour the header)."""
    if ttype in _SCALAR_WRITERS:
        getattr(out, _SCALAR_WRITERS[ttype])(value)
    elif ttype == TType.UUID:
        out.trans.write(value)
    elif ttype == TType.LIST:
        items = [item for item in value if item[0] == value[0][0]] if value else []
        out.writeListBegin(items[0][0] if items else TType.I32, len(items))
        for inner_type, inner in items:
            _write_value(out, inner_type, inner)
    elif ttype == TType.MAP:
        pairs = [(k, v) for k, v in value if (k[0], v[0]) == (value[0][0][0], value[0][1][0])]
        first = pairs[0] if pairs else ((TType.I32, 0), (TType.I32, 0))
        out.writeMapBegin(first[0][0], first[1][0], len(pairs))
        for (key_type, key), (value_type, inner) in pairs:
            _write_value(out, key_type, key)
            _write_value(out, value_type, inner)
    else:
        _write_fields(out, value)
        out.writeFieldStop()


def _write_fields(out: TBinaryProtocol, fields: list) -> None:
    for field_id, (ttype, value) in fields:
        out.writeFieldBegin("", ttype, field_id)
        _write_value(out, ttype, value)


def _raw_reply(
    status: tuple | None, rows: list[list[tuple[bytes, bytes]]] | None, unknown
) -> bytes:
    """A call_result as thrift's pure-Python protocol writes it, from parts a dict cannot
    hold: duplicate keys, invalid UTF-8, unknown fields (before and after each known one)."""
    buffer = TMemoryBuffer()
    out = TBinaryProtocol(buffer)
    _write_fields(out, [(field_id + 1, value) for field_id, value in unknown])
    out.writeFieldBegin("success", TType.STRUCT, 0)
    _write_fields(out, unknown)
    if status is not None:
        out.writeFieldBegin("status", TType.STRUCT, 1)
        for field_id, ttype, value in zip((1, 2, 3), (TType.I32, TType.STRING, TType.I64), status):
            if value is not None:
                out.writeFieldBegin("", ttype, field_id)
                _write_value(out, ttype, value)
        _write_fields(out, unknown)
        out.writeFieldStop()
    if rows is not None:
        out.writeFieldBegin("response", TType.LIST, 2)
        out.writeListBegin(TType.MAP, len(rows))
        for pairs in rows:
            out.writeMapBegin(TType.STRING, TType.STRING, len(pairs))
            for key, value in pairs:
                out.writeBinary(key)
                out.writeBinary(value)
    _write_fields(out, unknown)
    out.writeFieldStop()
    _write_fields(out, unknown)
    out.writeFieldStop()
    return buffer.getvalue()


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


class _Chunks:
    """read(n) over `data` in chunks of the given sizes (cycled); raises at the end, as a
    socket's TSocket.read does, and on any read after the reply's last byte went out."""

    def __init__(self, data: bytes, sizes: list[int], reply_length: int) -> None:
        self.data, self.sizes, self.reply_length = data, sizes, reply_length
        self.position = 0
        self.calls = 0

    def read(self, n: int) -> bytes:
        assert n > 0
        if self.position >= self.reply_length:
            raise EOFError("read past the reply")
        size = min(n, self.sizes[self.calls % len(self.sizes)])
        self.calls += 1
        chunk = self.data[self.position : self.position + size]
        self.position += len(chunk)
        return chunk


def _decoded(definition: TableDef, reply: bytes, used, sizes: list[int], trailer: bytes = b""):
    plan = sql_module._column_plan(definition, None if used is None else set(used))
    reader = _Chunks(reply + trailer, sizes, len(reply))
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
    st.lists(st.dictionaries(st.sampled_from([*KEYS, "rowid", "extra"]), _TEXTS), max_size=6),
    _STATUS,
    _USED,
    _SIZES,
    st.booleans(),
)
def test_what_thrift_writes_reads_as_fastbinary_then_converted(
    rows, status, used, sizes, fast
) -> None:
    """ExtensionResponses as both of thrift's encoders write them (one key order per row,
    as extensions send them; keys missing, unknown, "rowid")."""
    code, message, uuid = status or (None, None, None)
    response = ExtensionResponse(
        None
        if status is None
        else ExtensionStatus(code, None if message is None else message.decode("latin-1"), uuid),
        rows,
    )
    buffer = TMemoryBuffer()
    protocol = TBinaryProtocolAccelerated(buffer) if fast else TBinaryProtocol(buffer)
    call_result(success=response).write(protocol)
    reply = buffer.getvalue()
    _same(
        _decoded(DEFINITION, reply, used, sizes, b"\x00trailing"),
        _expected(DEFINITION, reply, used),
    )


@given(
    st.none() | st.lists(st.lists(_PAIRS, max_size=6), max_size=5),
    _STATUS,
    _UNKNOWN_FIELDS,
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
    reply = _raw_reply(status, rows, unknown)
    _same(_decoded(definition, reply, used, sizes), _expected(definition, reply, used))


def test_rows_in_one_key_order_predicted_and_not() -> None:
    """The same keys in the same order in every row (the prediction holds), then a row in
    another order with a duplicate: read as the dicts read."""
    order = [("pid", "1"), ("name", "é"), ("naïve", "18446744073709551615"), ("rowid", "9")]
    rows = [[(k.encode(), f"{v}{i}".encode()) for k, v in order] for i in range(50)]
    rows.append([(b"name", b"x"), (b"pid", b"2"), (b"name", b"y"), (b"ok", b"2147483648")])
    reply = _raw_reply((0, b"OK", 3), rows, [])
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
    reply = bytearray(_raw_reply((0, b"OK", 1), rows, [(5, (TType.LIST, [(TType.I32, 7)]))]))
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
    reply = _raw_reply(None, [[(b"pid", b"1"), (b"rowid", b"5")], []], [])
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
        sql_module._sqlfast.reply_rows([], _Chunks(b"\x0c", [1], 1).read)
