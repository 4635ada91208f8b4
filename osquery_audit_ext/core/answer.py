"""The core's answer to a Thrift `query` call, written from SQLite's result tuples.

The generated Processor answers `query` with an ExtensionResponse whose rows are dicts
{column: text}: for a full ring (100k rows x 25 columns) making those dicts, encoding them
and freeing them is about a second of the core's time before the client has its first row.
QueryProcessor writes the same bytes (tests/core/test_answer.py) from the tuples and the
column names, in C (sdk/answer.py write_rows_reply), and sends them in pieces as they are encoded, so
the client decodes the first rows while the core encodes the rest.

Where the C module is not built (or OSQUERY_AUDIT_EXT_PURE_PYTHON is set), where thrift's
C protocol (fastbinary) is missing, or where a result does not fit (a row not as wide as
its columns), the answer goes the generated way, with dicts.
"""

from __future__ import annotations

from typing import Any

from thrift.Thrift import TMessageType

from ..sdk import answer as reply
from ..sdk.osquery_thrift import ExtensionManager
from ..sdk.osquery_thrift.ExtensionManager import query_args, query_result
from ..sdk.plugin import ok_status
from .sql import Statements

streams = reply.streams  # whether write_answer can write on a protocol


def fits(statements: Statements) -> bool:
    """Whether write_answer can write these rows (each a tuple as wide as its columns)."""
    return reply.fits(statements.parts)


def write_answer(oprot: Any, seqid: int, statements: Statements, piece: int = reply.PIECE) -> None:
    """The `query` reply (status OK, every row) as the generated Processor writes it for
    ExtensionResponse(ok_status(), statements.rows()), without making the rows' dicts."""
    reply.write_rows_reply(
        oprot,
        "query",
        query_result,
        seqid,
        ok_status(),
        statements.parts,
        statements.nullvalue,
        statements.as_text,
        piece,
    )


class QueryProcessor(ExtensionManager.Processor):
    """The ExtensionManager Processor, with `query` answered by write_answer where it can.

    Its handler also has query_answer(sql) (the result as Statements, or a failure as an
    ExtensionResponse) and respond(statements) (the ExtensionResponse with dicts), as
    core/manager.py's ManagerHandler does; every other method is the generated one."""

    def __init__(self, handler: Any) -> None:
        super().__init__(handler)
        self._processMap["query"] = QueryProcessor.process_query

    def process_query(self, seqid: int, iprot: Any, oprot: Any) -> None:
        if not streams(oprot):
            super().process_query(seqid, iprot, oprot)
            return
        args = query_args()
        args.read(iprot)
        iprot.readMessageEnd()

        def answered() -> Any:
            answer = self._handler.query_answer(args.sql)
            if isinstance(answer, Statements) and not fits(answer):
                return self._handler.respond(answer)
            return answer

        answer, msg_type = reply.handler_answer(answered)
        if isinstance(answer, Statements):
            write_answer(oprot, seqid, answer)  # outside handler_answer: once begun, it must
            return  # not be followed by an exception reply in the same stream
        result = answer if msg_type == TMessageType.EXCEPTION else query_result(success=answer)
        reply.write_reply(oprot, "query", seqid, msg_type, result)
