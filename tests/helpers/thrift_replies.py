"""Thrift replies as bytes, for the compiled readers of replies (core/_sqlfast.c reply_rows,
sdk/_thriftfast.c text_reply) and their tests against thrift's own decoder: the parts a dict
cannot hold (duplicate keys, invalid UTF-8, unknown fields of every type) written by thrift's
pure-Python protocol, and a reader that hands them over in chunks of chosen sizes."""

from __future__ import annotations

from hypothesis import strategies as st
from thrift.protocol.TBinaryProtocol import TBinaryProtocol
from thrift.Thrift import TType
from thrift.transport.TTransport import TMemoryBuffer

TEXTS = st.one_of(
    st.integers(min_value=-(2**65), max_value=2**65).map(str),
    st.sampled_from(
        ["", "007", "0x1f", " 5", "5 ", "1.5", "abc", "2147483648", "-0", "-", "٣", "+5", "nan"]
    ),
    st.text(max_size=4),
)
VALUES = st.one_of(
    TEXTS.map(lambda t: t.encode("utf-8", "surrogatepass")),  # lone surrogates: invalid
    st.binary(max_size=4),
)
STATUS = st.none() | st.tuples(
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
UNKNOWN_FIELDS = st.lists(st.tuples(st.integers(3, 30), _UNKNOWN_VALUES), max_size=2)


SCALAR_WRITERS = {
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
    if ttype in SCALAR_WRITERS:
        getattr(out, SCALAR_WRITERS[ttype])(value)
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


def raw_reply(status: tuple | None, rows: list[list[tuple[bytes, bytes]]] | None, unknown) -> bytes:
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


class Chunks:
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


def thrift_reply(result: type, status: tuple | None, rows: list | None, fast: bool) -> bytes:
    """A result struct (call_result, query_result) holding ExtensionResponse(status, rows) as
    thrift writes it: by fastbinary (fast) or by its pure-Python protocol. status: (code,
    message bytes read as latin-1, uuid) or None."""
    from thrift.protocol.TBinaryProtocol import TBinaryProtocolAccelerated

    from osquery_audit_ext.sdk.osquery_thrift.ttypes import ExtensionResponse, ExtensionStatus

    code, message, uuid = status or (None, None, None)
    response = ExtensionResponse(
        None
        if status is None
        else ExtensionStatus(code, None if message is None else message.decode("latin-1"), uuid),
        rows,
    )
    buffer = TMemoryBuffer()
    protocol = TBinaryProtocolAccelerated(buffer) if fast else TBinaryProtocol(buffer)
    result(success=response).write(protocol)
    return buffer.getvalue()
