"""sdk/_thriftfast.c's text_reply (a query answer read off the socket into dicts that share
their keys) against the decoder it stands in for, thrift's fastbinary: the same status and
the same rows, item for item and in order, from the bytes both of thrift's encoders write and
from wire rows no dict can hold (duplicate keys, invalid UTF-8, unknown fields), in chunks of
random sizes; and end to end, the query client over a real core's socket on both paths."""

from __future__ import annotations

import sys

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
from hypothesis import given
from hypothesis import strategies as st
from thrift.protocol.TBinaryProtocol import TBinaryProtocolAccelerated
from thrift.transport.TTransport import TMemoryBuffer

from osquery_audit_ext.keysharing import key_sharing_view
from osquery_audit_ext.sdk import client as client_module
from osquery_audit_ext.sdk.osquery_thrift.ExtensionManager import query_result
from osquery_audit_ext.sdk.transport import accelerated


@pytest.fixture(scope="module", autouse=True)
def compiled() -> None:
    accel.require("compiled", client_module._thriftfast, "sdk/_thriftfast.c")
    if not accelerated():
        pytest.skip("thrift's fastbinary (the decoder text_reply stands in for) is not built")


def _expected(reply: bytes) -> object:
    """What thrift's fastbinary makes of the reply: (status, rows), None without a result."""
    result = query_result()
    result.read(TBinaryProtocolAccelerated(TMemoryBuffer(reply)))
    response = result.success
    if response is None:
        return None
    status = response.status
    return (
        None if status is None else (status.code, status.message, status.uuid),
        response.response,
    )


def _decoded(reply: bytes, sizes: list[int]) -> object:
    reader = Chunks(reply + b"\x00trailing", sizes, len(reply))
    return client_module._thriftfast.text_reply(reader.read, key_sharing_view)


def _same(got: object, expected: object) -> None:
    """Equal, with every row's items in the same order (dict equality ignores order)."""
    assert got == expected
    if got is not None and got[1] is not None:  # type: ignore[index]
        assert [list(row.items()) for row in got[1]] == [  # type: ignore[index]
            list(row.items())
            for row in expected[1]  # type: ignore[index]
        ]
        assert all(type(row) is dict for row in got[1])  # type: ignore[index]


_KEYS = st.one_of(
    st.sampled_from([b"pid", b"name", b"path", b"", "naïve".encode()]),
    st.sampled_from([b"k\xff", b"\xff", b"pid\x00", b"nam\xc3"]),
    st.text(max_size=3).map(str.encode),
)
_SIZES = st.lists(st.integers(1, 64), min_size=1, max_size=5) | st.just([1 << 20])


@given(
    st.lists(st.dictionaries(st.sampled_from(["pid", "name", "path", "é", ""]), TEXTS), max_size=8),
    STATUS,
    _SIZES,
    st.booleans(),
)
def test_what_thrift_writes_reads_as_fastbinary_reads_it(rows, status, sizes, fast) -> None:
    reply = thrift_reply(query_result, status, rows, fast)
    _same(_decoded(reply, sizes), _expected(reply))


@given(
    st.none() | st.lists(st.lists(st.tuples(_KEYS, VALUES), max_size=6), max_size=6),
    STATUS,
    UNKNOWN_FIELDS,
    _SIZES,
)
def test_any_wire_rows_read_as_fastbinary_reads_them(rows, status, unknown, sizes) -> None:
    """Duplicate keys (first place, last value), invalid UTF-8 keys and values ("replace"),
    key orders changing from row to row, unknown fields of every type, parts absent."""
    reply = raw_reply(status, rows, unknown)
    _same(_decoded(reply, sizes), _expected(reply))


def test_rows_in_one_key_order_share_their_keys_then_others_do_not() -> None:
    """Rows in one key order are copies of one template (on CPython their keys table is
    shared, so each row is smaller than a plain dict); more than a few key orders in one
    answer and the rows are plain dicts, still read right."""
    names = [f"column_{i}".encode() for i in range(25)]
    same = [[(n, b"%d" % i) for n in names] for i in range(20)]
    orders = [[(names[(i + j) % 25], b"v") for j in range(25)] for i in range(12)]
    reply = raw_reply((0, b"OK", None), same + orders, [])
    got = _decoded(reply, [1000])
    _same(got, _expected(reply))
    rows = got[1]  # type: ignore[index]
    if sys.implementation.name == "cpython":
        assert sys.getsizeof(rows[5]) < sys.getsizeof(dict(rows[5])) // 2
    assert [type(row) for row in rows] == [dict] * len(rows)


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"\x0c\x00\x00\x0f\x00\x02\x0b\x00\x00\x00\x01", "the rows are of type 11, not maps"),
        (
            b"\x0c\x00\x00\x0f\x00\x02\x0d\x00\x00\x00\x01\x0b\x08\x00\x00\x00\x01",
            "row 0 is a map of types 11 -> 8, not of strings",
        ),
        (b"\x0c\x00\x00\x0f\x00\x02\x0d\xff\xff\xff\xff", "negative list length -1"),
        (b"\x0c\x00\x00\x01\x00\x07\x00", "unknown field type 1"),
    ],
)
def test_wrong_wire_types_are_named(reply: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=f"^malformed reply: {message}"):
        _decoded(reply, [3])


def test_reply_without_result_is_none_and_a_short_one_fails() -> None:
    assert _decoded(b"\x08\x00\x05\x00\x00\x00\x01\x00", [2]) is None
    with pytest.raises(EOFError):
        client_module._thriftfast.text_reply(Chunks(b"\x0c", [1], 1).read, key_sharing_view)
    with pytest.raises(TypeError, match="view_of gives a dict"):
        reply = raw_reply(None, [[(b"a", b"b")]], [])
        client_module._thriftfast.text_reply(Chunks(reply, [9], len(reply)).read, tuple)
