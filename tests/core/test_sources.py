"""ExtensionTableSource's two ways of asking an extension for rows, against a peer on a real
Unix socket that answers "columns" properly and "generate" with the reply bytes a test
chooses (as a broken or hostile extension could): generate_typed fails as call() fails, and
where call() has no clean answer (bytes that are no reply) it names what is wrong."""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import threading
from collections.abc import Iterator

import pytest
from helpers import accel
from helpers.harness import short_dir
from thrift.protocol.TBinaryProtocol import TBinaryProtocol
from thrift.Thrift import TApplicationException, TMessageType
from thrift.transport import TSocket, TTransport

from osquery_audit_ext.core import sql as sql_module
from osquery_audit_ext.core.sources import ExtensionTableSource
from osquery_audit_ext.core.sql import SQLEngine, SQLError
from osquery_audit_ext.core.tabledef import TableDef
from osquery_audit_ext.sdk.osquery_thrift.Extension import call_args, call_result
from osquery_audit_ext.sdk.osquery_thrift.ttypes import ExtensionResponse, ExtensionStatus

ROUTES = [
    {"id": "column", "name": "a", "type": "TEXT", "op": "0"},
    {"id": "column", "name": "n", "type": "BIGINT", "op": "0"},
]
DEFINITION = TableDef.from_routes("t", ROUTES, is_extension=True)


@pytest.fixture(autouse=True)
def compiled() -> None:
    accel.require("compiled", sql_module._sqlfast, "core/_sqlfast.c")


def _body(response: ExtensionResponse | None) -> bytes:
    buffer = TTransport.TMemoryBuffer()
    call_result(success=response).write(TBinaryProtocol(buffer))
    return buffer.getvalue()


@contextlib.contextmanager
def peer(generate_reply: bytes, kind: int = TMessageType.REPLY) -> Iterator[str]:
    """A socket answering each call on its own connection: "columns" with ROUTES, anything
    else with the message header of `kind` then `generate_reply`; it keeps the connection
    open until the caller closes it, as an extension does."""
    with short_dir() as directory:
        path = os.path.join(directory, "x.em")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(8)

        def serve(conn: socket.socket) -> None:
            handle = TSocket.TSocket()
            handle.setHandle(conn)
            transport = TTransport.TBufferedTransport(handle)
            protocol = TBinaryProtocol(transport)
            with contextlib.suppress(Exception), conn:
                _name, _kind, seqid = protocol.readMessageBegin()
                args = call_args()
                args.read(protocol)
                protocol.writeMessageBegin("call", kind, seqid)
                if args.request.get("action") == "columns":
                    response = ExtensionResponse(ExtensionStatus(0, "OK"), ROUTES)
                    transport.write(_body(response))
                else:
                    transport.write(generate_reply)
                transport.flush()
                conn.recv(1)  # the caller closes; nothing else comes

        def accept() -> None:
            with contextlib.suppress(OSError):
                while True:
                    conn, _ = listener.accept()
                    threading.Thread(target=serve, args=(conn,), daemon=True).start()

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        try:
            yield path
        finally:
            listener.shutdown(socket.SHUT_RDWR)
            listener.close()
            thread.join(5)


def _generate(path: str) -> tuple[object, object]:
    """(call()'s status or its exception's type, generate_typed's status)."""
    source = ExtensionTableSource("t", DEFINITION, path, timeout=1)
    request = {"action": "generate", "context": "{}"}
    try:
        called: object = source.call(request).status
    except Exception as exc:  # fastbinary's own errors escape call()
        called = type(exc)
    plan = sql_module._column_plan(DEFINITION, None)
    decode = functools.partial(sql_module._sqlfast.reply_rows, plan)
    return called, source.generate_typed(request, decode).status


def test_rows_over_a_connection_left_open() -> None:
    """The reply is read to its end, not to the end of the stream (which never comes)."""
    response = ExtensionResponse(ExtensionStatus(0, "OK", 4), [{"a": "é", "n": "5"}] * 3000)
    with peer(_body(response)) as path:
        source = ExtensionTableSource("t", DEFINITION, path, timeout=5)
        plan = sql_module._column_plan(DEFINITION, {"n"})
        typed = source.generate_typed({}, functools.partial(sql_module._sqlfast.reply_rows, plan))
        assert typed.status == ExtensionStatus(0, "OK", 4) and typed.rowids is None
        assert typed.rows == [(None, 5, i) for i in range(3000)]
        assert SQLEngine(lambda: {"t": source}).query("SELECT sum(n) AS s FROM t").rows == [
            {"s": "15000"}
        ]


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (_body(None), TMessageType.REPLY),  # no result: "unknown result"
        (_body(ExtensionResponse(None, [{"a": "x"}])), TMessageType.REPLY),  # no status
        (_body(ExtensionResponse(ExtensionStatus(1, "nope"), [])), TMessageType.REPLY),
        (b"\x0c\x00\x00\x0c\x00\x01\x08\x00\x01", TMessageType.REPLY),  # cut: times out
    ],
    ids=["no result", "no status", "failed", "cut short"],
)
def test_failures_read_as_calls_failures(reply: bytes, kind: int) -> None:
    with peer(reply, kind) as path:
        called, typed = _generate(path)
    assert typed == called and typed.code == 1


def test_application_exception_reads_as_calls() -> None:
    buffer = TTransport.TMemoryBuffer()
    error = TApplicationException(TApplicationException.INTERNAL_ERROR, "it broke")
    error.write(TBinaryProtocol(buffer))
    with peer(buffer.getvalue(), TMessageType.EXCEPTION) as path:
        called, typed = _generate(path)
    assert typed == called
    assert typed.message == f"Extension call failed: {path}: it broke"


def test_bytes_that_are_no_reply_become_the_querys_error() -> None:
    """Rows that are strings, not maps: thrift's decoder raises a bare TypeError out of
    call(); the typed path answers a failure naming the socket and the fault."""
    rows_of_strings = b"\x0c\x00\x00\x0f\x00\x02\x0b\x00\x00\x00\x01\x00\x00\x00\x01x\x00\x00"
    with peer(rows_of_strings) as path:
        called, typed = _generate(path)
        assert called is TypeError
        message = (
            f"Extension call failed: {path}: malformed reply: the rows are of type 11, not maps"
        )
        assert (typed.code, typed.message) == (1, message)
        source = ExtensionTableSource("t", DEFINITION, path, timeout=5)
        with pytest.raises(SQLError) as failed:
            SQLEngine(lambda: {"t": source}).query("SELECT * FROM t")
        assert str(failed.value) == message


def test_missing_socket_reads_as_calls() -> None:
    with short_dir() as directory:
        called, typed = _generate(os.path.join(directory, "gone.em"))
    assert typed == called and "not available" in typed.message
