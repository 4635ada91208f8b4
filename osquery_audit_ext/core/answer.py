"""The core's answer to a Thrift `query` call, written from SQLite's result tuples.

The generated Processor answers `query` with an ExtensionResponse whose rows are dicts
{column: text}: for a full ring (100k rows x 25 columns) making those dicts, encoding them
and freeing them is about a second of the core's time before the client has its first row.
QueryProcessor writes the same bytes (tests/core/test_answer.py) from the tuples and the
column names, in C (core/_answerfast.c), and sends them in pieces as they are encoded, so
the client decodes the first rows while the core encodes the rest.

Where the C module is not built (or OSQUERY_AUDIT_EXT_PURE_PYTHON is set), where thrift's
C protocol (fastbinary) is missing, or where a result does not fit (a row not as wide as
its columns), the answer goes the generated way, with dicts.
"""

from __future__ import annotations

import logging
from typing import Any

from thrift.Thrift import TApplicationException, TMessageType, TType
from thrift.transport import TTransport

from ..accel import compiled
from ..sdk.osquery_thrift import ExtensionManager
from ..sdk.osquery_thrift.ExtensionManager import query_args, query_result
from ..sdk.osquery_thrift.ttypes import ExtensionResponse
from ..sdk.plugin import ok_status
from .sql import Statements

log = logging.getLogger(__name__)

_answerfast = compiled(f"{__package__}._answerfast")
ACCELERATED = _answerfast is not None  # whether a query answer can be written from tuples

PIECE = 256 * 1024
"""Bytes per write while streaming: a few socket buffers' worth, so the client starts
decoding early and a piece's Python call and copy stay negligible (~260 for 65 MB)."""

# Where the rows go inside the reply, from the generated specs: query_result's field 0
# (success: ExtensionResponse), whose field 1 is the status and field 2 the rows,
# list<map<string,string>>: _answerfast writes exactly that map, so another spec would
# leave the generated path in charge.
_SUCCESS = query_result.thrift_spec[0]
_STATUS = ExtensionResponse.thrift_spec[1]
_RESPONSE = ExtensionResponse.thrift_spec[2]
_ROW_SPEC = _RESPONSE[3]
_MAP_TYPES = (
    bytes((_ROW_SPEC[1][0], _ROW_SPEC[1][2]))
    if _ROW_SPEC[0] == TType.MAP
    and _ROW_SPEC[1][:4] == (TType.STRING, "UTF8", TType.STRING, "UTF8")
    else None
)


def streams(oprot: Any) -> bool:
    """Whether QueryProcessor writes a `query` answer itself on this protocol: the C encoder
    is built and the protocol is thrift's accelerated binary one with fastbinary loaded."""
    return (
        _answerfast is not None
        and _MAP_TYPES is not None
        and getattr(oprot, "_fast_encode", None) is not None
    )


def fits(statements: Statements) -> bool:
    """Whether write_answer can write these rows (each a tuple as wide as its columns)."""
    return _answerfast is not None and bool(_answerfast.fits(statements.parts))


def write_answer(oprot: Any, seqid: int, statements: Statements, piece: int = PIECE) -> None:
    """The `query` reply (status OK, every row) as the generated Processor writes it for
    ExtensionResponse(ok_status(), statements.rows()), without making the rows' dicts.

    The struct and field headers come from the protocol's own writers, the status from its
    generated encoder; only the rows are _answerfast's. Everything before the rows is
    flushed with the first piece of them. A failure while writing (the client went away)
    raises, as it does on the generated path: the connection ends."""
    oprot.writeMessageBegin("query", TMessageType.REPLY, seqid)
    oprot.writeStructBegin("query_result")
    oprot.writeFieldBegin(_SUCCESS[2], _SUCCESS[1], _SUCCESS[0])
    oprot.writeStructBegin("ExtensionResponse")
    oprot.writeFieldBegin(_STATUS[2], _STATUS[1], _STATUS[0])
    ok_status().write(oprot)
    oprot.writeFieldEnd()
    oprot.writeFieldBegin(_RESPONSE[2], _RESPONSE[1], _RESPONSE[0])
    oprot.writeListBegin(_ROW_SPEC[0], sum(len(rows) for rows, _columns in statements.parts))
    trans = oprot.trans

    def send(data: bytes) -> None:
        trans.write(data)
        trans.flush()

    _answerfast.write_maps(
        statements.parts, _MAP_TYPES, statements.nullvalue, statements.as_text, send, piece
    )
    oprot.writeListEnd()
    oprot.writeFieldEnd()
    oprot.writeFieldStop()
    oprot.writeStructEnd()
    oprot.writeFieldEnd()
    oprot.writeFieldStop()
    oprot.writeStructEnd()
    oprot.writeMessageEnd()
    trans.flush()


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
        try:
            answer = self._handler.query_answer(args.sql)
            if isinstance(answer, Statements) and not fits(answer):
                answer = self._handler.respond(answer)
            msg_type = TMessageType.REPLY
        except TTransport.TTransportException:
            raise
        except Exception:  # as the generated process_query answers a handler's exception
            log.exception("Unexpected exception in handler")
            answer = TApplicationException(TApplicationException.INTERNAL_ERROR, "Internal error")
            msg_type = TMessageType.EXCEPTION
        if isinstance(answer, Statements):
            write_answer(oprot, seqid, answer)  # outside the try: once begun, it must not
            return  # be followed by an exception reply in the same stream
        result = answer if msg_type == TMessageType.EXCEPTION else query_result(success=answer)
        oprot.writeMessageBegin("query", msg_type, seqid)
        result.write(oprot)
        oprot.writeMessageEnd()
        oprot.trans.flush()
