"""The core's `query` answer written from result tuples (core/answer.py, core/_answerfast.c)
against what the generated Processor writes for the same rows as dicts: the same bytes with
thrift's C protocol (fastbinary) and with its pure-Python one, in memory and over a real
Unix socket through a core and an extension."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import accel
from helpers.harness import core_with_fixture
from helpers.thrift_wire import _Loopback
from hypothesis import given, settings
from hypothesis import strategies as st
from thrift.protocol.TBinaryProtocol import TBinaryProtocol
from thrift.Thrift import TApplicationException, TMessageType
from thrift.transport import TTransport

from osquery_audit_ext.core import answer
from osquery_audit_ext.core.manager import EmbeddedCore
from osquery_audit_ext.core.sql import Statements
from osquery_audit_ext.sdk import answer as rows_reply
from osquery_audit_ext.sdk import client, transport
from osquery_audit_ext.sdk.osquery_thrift import ExtensionManager
from osquery_audit_ext.sdk.osquery_thrift.ExtensionManager import query_result
from osquery_audit_ext.sdk.osquery_thrift.ttypes import ExtensionResponse
from osquery_audit_ext.sdk.plugin import failure_response, ok_status
from osquery_audit_ext.sdk.values import result_text

COMPILED = rows_reply._answerfast
PROTOCOLS = {"pure": TBinaryProtocol, "accelerated": transport.binary_protocol}


@pytest.fixture(params=accel.IMPLEMENTATIONS)
def implementation(request: pytest.FixtureRequest) -> Iterator[str]:
    """The answer with the C encoder (where it can be built) and without it (dicts)."""
    accel.require(request.param, COMPILED, "sdk/_answerfast.c")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rows_reply, "_answerfast", COMPILED if request.param == "compiled" else None)
        yield request.param


def as_dicts(statements: Statements) -> list[dict[str, str]]:
    """The rows as the generated path sends them, made the plainest way: dict(zip(...)), a
    cell's text by result_text (a repeated column keeps its first position, last value)."""
    return [
        {name: result_text(value, statements.nullvalue) for name, value in zip(columns, row)}
        for rows, columns in statements.parts
        for row in rows
    ]


def generated_reply(protocol: Any, seqid: int, response: Any) -> bytes:
    """The reply bytes of the generated process_query for this handler's answer."""
    buffer = TTransport.TMemoryBuffer()
    out = protocol(buffer)
    out.writeMessageBegin("query", TMessageType.REPLY, seqid)
    query_result(success=response).write(out)
    out.writeMessageEnd()
    return buffer.getvalue()


_NAMES = st.sampled_from(["a", "b", "pid", "", "ü", "名前", "a b", "\U0001f600"])
_VALUES = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=2**63, max_value=2**80),
    st.text(max_size=6),
    st.floats(),
    st.binary(max_size=5),
)


@st.composite
def statements(draw: st.DrawFn) -> Statements:
    parts = []
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        columns = draw(st.lists(_NAMES, max_size=5))  # repeats: SELECT 1 AS a, 2 AS a
        rows = draw(st.lists(st.tuples(*[_VALUES] * len(columns)), max_size=6))
        parts.append((rows, columns))
    return Statements(parts, draw(st.sampled_from(["", "NULL", "ø"])), ())


@settings(max_examples=300)
@given(statements(), st.integers(min_value=1, max_value=80), st.integers(0, 2**31 - 1))
def test_written_answer_is_the_generated_reply_byte_for_byte(
    answered: Statements, piece: int, seqid: int
) -> None:
    accel.require("compiled", COMPILED, "sdk/_answerfast.c")
    buffer = TTransport.TMemoryBuffer()
    answer.write_answer(transport.binary_protocol(buffer), seqid, answered, piece)
    response = ExtensionResponse(status=ok_status(), response=as_dicts(answered))
    for protocol in PROTOCOLS.values():
        assert buffer.getvalue() == generated_reply(protocol, seqid, response)


def test_rows_go_out_in_pieces_as_they_are_encoded() -> None:
    """Each piece is handed on (flushed) once it holds `piece` bytes: the client can decode
    the first rows before the last are encoded."""
    accel.require("compiled", COMPILED, "sdk/_answerfast.c")
    answered = Statements([([(i, "x" * 100) for i in range(100)], ["n", "t"])], "", ())
    flushed: list[bytes] = []

    class Recording(TTransport.TMemoryBuffer):
        def flush(self) -> None:
            flushed.append(self.getvalue()[sum(map(len, flushed)) :])

    buffer = Recording()
    answer.write_answer(transport.binary_protocol(buffer), 1, answered, 1000)
    assert len(flushed) > 10
    assert all(len(piece) >= 1000 for piece in flushed[1:-2])
    assert b"".join(flushed) == generated_reply(
        transport.binary_protocol,
        1,
        ExtensionResponse(status=ok_status(), response=as_dicts(answered)),
    )


def test_fits_only_rows_as_wide_as_their_columns() -> None:
    accel.require("compiled", COMPILED, "sdk/_answerfast.c")
    assert answer.fits(Statements([([(1, 2)], ["a", "b"]), ([], ["c"])], "", ()))
    assert not answer.fits(Statements([([(1, 2), (3,)], ["a", "b"])], "", ()))
    assert not answer.fits(Statements([([[1, 2]], ["a", "b"])], "", ()))
    assert not answer.fits(Statements([([(1,)], [5])], "", ()))
    with pytest.raises(ValueError, match="not as wide"):
        answer.write_answer(
            transport.binary_protocol(TTransport.TMemoryBuffer()),
            1,
            Statements([([(1,)], ["a", "b"])], "", ()),
        )


class _Handler:
    """A ManagerHandler's query methods over a fixed answer (or exception)."""

    def __init__(self, result: Statements | ExtensionResponse | Exception) -> None:
        self.result = result

    def query_answer(self, sql: str) -> Statements | ExtensionResponse:
        if isinstance(self.result, Exception):
            raise self.result
        return self.result

    def respond(self, statements: Statements) -> ExtensionResponse:
        return ExtensionResponse(status=ok_status(), response=statements.rows())

    def query(self, sql: str) -> ExtensionResponse:
        answered = self.query_answer(sql)
        return answered if isinstance(answered, ExtensionResponse) else self.respond(answered)


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
@pytest.mark.parametrize(
    "result",
    [
        Statements([([(1, "é", None, 2.5, b"x\0y")], ["a", "b", "a", "f", "g"])], "-", ()),
        Statements([([(1, 2), (3,)], ["a", "b"])], "", ()),  # does not fit: dicts
        failure_response("no such table: nope"),
        RuntimeError("a bug"),  # TApplicationException INTERNAL_ERROR, as generated
    ],
    ids=["rows", "ragged", "failure", "exception"],
)
def test_query_processor_replies_as_the_generated_processor(
    implementation: str, protocol: str, result: object
) -> None:
    def exchange(processor: Any) -> tuple[bytes, object]:
        loop = _Loopback(processor, PROTOCOLS[protocol])
        caller = ExtensionManager.Client(PROTOCOLS[protocol](TTransport.TBufferedTransport(loop)))
        try:
            got: object = caller.query("SELECT 1")
        except TApplicationException as exc:
            got = (exc.type, exc.message)
        return loop.request + loop.reply, got

    fast = exchange(answer.QueryProcessor(_Handler(result)))  # type: ignore[arg-type]
    assert fast == exchange(ExtensionManager.Processor(_Handler(result)))
    if isinstance(result, RuntimeError):
        assert fast[1] == (TApplicationException.INTERNAL_ERROR, "Internal error")


# -- end to end: a client process's bytes through a real core and extension -------------


def raw_query(socket_path: str, sql: str) -> bytes:
    """The core's reply to one `query` call, every byte as it came off the socket."""
    request = TTransport.TMemoryBuffer()
    ExtensionManager.Client(transport.binary_protocol(request)).send_query(sql)
    with contextlib.closing(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)) as sock:
        sock.settimeout(60)
        sock.connect(socket_path)
        sock.sendall(request.getvalue())
        sock.shutdown(socket.SHUT_WR)  # the core answers, then sees the end and hangs up
        reply = bytearray()
        while chunk := sock.recv(1 << 20):
            reply += chunk
    return bytes(reply)


@pytest.fixture(scope="module")
def core_and_extension() -> Iterator[EmbeddedCore]:
    with core_with_fixture() as (core, _log, _process):
        yield core


_MANY = (
    "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 20000) "
    "SELECT i, 'row ' || i AS t, i * 0.5 AS h, NULL AS z, i AS i FROM c"
)
E2E_QUERIES = {
    "extension": "SELECT * FROM fixture_values",
    "extension_twice": "SELECT v.label, v.i, e.note, v.label AS note FROM fixture_values v, "
    "fixture_errors e",
    "values": "SELECT 1 AS a, 2 AS b, 3 AS a, 'é€\U0001f600' AS \"ü\", NULL AS n, 1.5 AS f, "
    "x'41004200' AS b, -9223372036854775808 AS lo",
    "many": _MANY,
    "statements": "SELECT 1 AS a; SELECT 'x' AS b, 2 AS b; SELECT 3 AS a WHERE 0; SELECT 4 AS c",
    "empty": "SELECT 1 AS a WHERE 0",
    "error": "SELECT * FROM no_such_table",
}


@pytest.mark.parametrize("name", sorted(E2E_QUERIES))
def test_core_replies_the_same_bytes_with_and_without_the_encoder(
    core_and_extension: EmbeddedCore, name: str
) -> None:
    accel.require("compiled", COMPILED, "sdk/_answerfast.c")
    core = core_and_extension
    sql = E2E_QUERIES[name]
    fast = raw_query(core.socket_path, sql)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rows_reply, "_answerfast", None)
        slow = raw_query(core.socket_path, sql)
    assert fast == slow
    expected = (
        generated_reply(
            transport.binary_protocol, 0, failure_response("no such table: no_such_table")
        )
        if name == "error"
        else generated_reply(
            transport.binary_protocol,
            0,
            ExtensionResponse(status=ok_status(), response=as_dicts(core.query_statements(sql))),
        )
    )
    assert fast == expected


def test_a_client_gets_the_same_result_either_way(
    core_and_extension: EmbeddedCore, implementation: str
) -> None:
    core = core_and_extension
    got = client.query(core.socket_path, _MANY)
    assert len(got.rows) == 20000
    assert got.rows[0] == {"i": "1", "t": "row 1", "h": "0.5", "z": ""}
    assert got.rows == core.query(_MANY).rows
    multi = client.query(core.socket_path, E2E_QUERIES["statements"]).rows
    assert multi == [{"a": "1"}, {"b": "2"}, {"c": "4"}]
    with pytest.raises(client.QueryError, match="no such table"):
        client.query(core.socket_path, "SELECT * FROM no_such_table")


def test_the_encoder_streams_only_on_thrifts_c_protocol(implementation: str) -> None:
    fast = transport.binary_protocol(TTransport.TMemoryBuffer())
    assert answer.streams(fast) == (implementation == "compiled" and transport.accelerated())
    assert not answer.streams(TBinaryProtocol(TTransport.TMemoryBuffer()))


def test_the_core_serves_query_through_the_query_processor() -> None:
    core = EmbeddedCore(os.path.join("/tmp", "oae-unused.em"), builtin_tables=False)
    processor = core._server.processor
    assert isinstance(processor, answer.QueryProcessor)
    assert processor._processMap["query"] is answer.QueryProcessor.process_query


def test_a_client_that_leaves_mid_answer_ends_only_its_connection(
    core_and_extension: EmbeddedCore, implementation: str
) -> None:
    core = core_and_extension
    request = TTransport.TMemoryBuffer()
    ExtensionManager.Client(transport.binary_protocol(request)).send_query(_MANY)
    with contextlib.closing(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)) as sock:
        sock.settimeout(60)
        sock.connect(core.socket_path)
        sock.sendall(request.getvalue())
        assert sock.recv(100)  # the answer has begun; now hang up on it
    assert client.query(core.socket_path, "SELECT 1 AS a").rows == [{"a": "1"}]
