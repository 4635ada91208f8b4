"""Large Thrift replies written from their rows as they are, in pieces, not by thrift.

A reply of 100k rows x 25 columns is a list<map<string,string>> of ~50-75 MB. The generated
Processors make every row a dict of text (if it is not one), encode the whole reply, and only
then send its first byte, so the reader waits for all of it. write_rows_reply writes the same
bytes (tests/core/test_answer.py, tests/sdk/test_answer.py) from the rows in C
(sdk/_answerfast.c) and sends them in pieces as they are encoded, so the reader decodes the
first rows while the rest are encoded: the core's answer to a `query` call from SQLite's
tuples (core/answer.py), and an extension's reply to a generate call from its table's dicts
(CallProcessor here).

Where the C module is not built (or OSQUERY_AUDIT_EXT_PURE_PYTHON is set), where thrift's C
protocol (fastbinary) is missing, or where the rows do not fit (a tuple not as wide as its
columns, dicts of other keys or non-text values), the generated Processor writes the reply.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from thrift.Thrift import TApplicationException, TMessageType, TType
from thrift.transport import TTransport

from ..accel import compiled
from .osquery_thrift import Extension
from .osquery_thrift.Extension import call_args, call_result
from .osquery_thrift.ttypes import ExtensionResponse, ExtensionStatus

log = logging.getLogger(__name__)

_answerfast = compiled(f"{__package__}._answerfast")
ACCELERATED = _answerfast is not None  # whether large replies are written from their rows

PIECE = 256 * 1024
"""Bytes per write while streaming: a few socket buffers' worth, so the reader starts
decoding early and a piece's Python call and copy stay negligible (~260 for 65 MB)."""

# A statement's (rows, columns): rows tuples as wide as columns, or dicts keyed by them.
Parts = Sequence[tuple[list, list[str]]]

# Where the rows go inside the reply, from the generated specs: the result struct's field
# 0 (success: ExtensionResponse), whose field 1 is the status and field 2 the rows,
# list<map<string,string>>: _answerfast writes exactly that map, so another spec would
# leave the generated path in charge.
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
    """Whether write_rows_reply can write on this protocol: the C encoder is built and the
    protocol is thrift's accelerated binary one with fastbinary loaded."""
    return (
        _answerfast is not None
        and _MAP_TYPES is not None
        and getattr(oprot, "_fast_encode", None) is not None
    )


def fits(parts: Parts) -> bool:
    """Whether write_rows_reply can write these rows (see Parts)."""
    return _answerfast is not None and bool(_answerfast.fits(parts))


def write_rows_reply(
    oprot: Any,
    method: str,
    result: type,
    seqid: int,
    status: ExtensionStatus,
    parts: Parts,
    nullvalue: str = "",
    as_text: Callable[[object], str] = str,
    piece: int = PIECE,
) -> None:
    """The reply to `method` (its generated result struct `result`, whose field 0 is an
    ExtensionResponse) with `status` and every row of `parts`, as the generated Processor
    writes it for the rows as {column: text} (None as nullvalue, an int in decimal, any
    other value as_text(value)), without making the rows' dicts.

    The struct and field headers come from the protocol's own writers, the status from its
    generated encoder; only the rows are _answerfast's. Everything before the rows is
    flushed with the first piece of them. A failure while writing (the reader went away)
    raises, as it does on the generated path: the connection ends."""
    success = result.thrift_spec[0]  # type: ignore[attr-defined]
    oprot.writeMessageBegin(method, TMessageType.REPLY, seqid)
    oprot.writeStructBegin(result.__name__)
    oprot.writeFieldBegin(success[2], success[1], success[0])
    oprot.writeStructBegin("ExtensionResponse")
    oprot.writeFieldBegin(_STATUS[2], _STATUS[1], _STATUS[0])
    status.write(oprot)
    oprot.writeFieldEnd()
    oprot.writeFieldBegin(_RESPONSE[2], _RESPONSE[1], _RESPONSE[0])
    oprot.writeListBegin(_ROW_SPEC[0], sum(len(rows) for rows, _columns in parts))
    trans = oprot.trans

    def send(data: bytes) -> None:
        trans.write(data)
        trans.flush()

    _answerfast.write_maps(list(parts), _MAP_TYPES, nullvalue, as_text, send, piece)
    oprot.writeListEnd()
    oprot.writeFieldEnd()
    oprot.writeFieldStop()
    oprot.writeStructEnd()
    oprot.writeFieldEnd()
    oprot.writeFieldStop()
    oprot.writeStructEnd()
    oprot.writeMessageEnd()
    trans.flush()


def dict_parts(rows: list) -> list[tuple[list, list[str]]] | None:
    """An ExtensionResponse's rows as write_rows_reply's one statement, keyed by the first
    row's keys (fits() then checks every row holds those, in that order); None unless every
    row is a dict (what thrift would do with anything else is thrift's to do)."""
    if not rows or set(map(type, rows)) != {dict}:
        return None
    return [(rows, list(rows[0]))]


def handler_answer(call: Callable[[], Any]) -> tuple[Any, int]:
    """call()'s answer and its message type, as a generated process_<method> takes its
    handler's: a TApplicationException, or any other exception (logged, "Internal error"),
    is the EXCEPTION reply; a transport error ends the connection."""
    try:
        return call(), TMessageType.REPLY
    except TTransport.TTransportException:
        raise
    except TApplicationException as exc:
        log.exception("TApplication exception in handler")
        return exc, TMessageType.EXCEPTION
    except Exception:
        log.exception("Unexpected exception in handler")
        error = TApplicationException(TApplicationException.INTERNAL_ERROR, "Internal error")
        return error, TMessageType.EXCEPTION


def write_reply(oprot: Any, method: str, seqid: int, msg_type: int, result: Any) -> None:
    """A whole reply, as a generated process_<method> writes it."""
    oprot.writeMessageBegin(method, msg_type, seqid)
    result.write(oprot)
    oprot.writeMessageEnd()
    oprot.trans.flush()


class CallProcessor(Extension.Processor):
    """The Extension Processor, with a `call`'s reply holding rows (a generate) written by
    write_rows_reply where it can; every other method is the generated one."""

    def __init__(self, handler: Any) -> None:
        super().__init__(handler)
        self._processMap["call"] = CallProcessor.process_call

    def process_call(self, seqid: int, iprot: Any, oprot: Any) -> None:
        if not streams(oprot):
            super().process_call(seqid, iprot, oprot)
            return
        args = call_args()
        args.read(iprot)
        iprot.readMessageEnd()
        response, msg_type = handler_answer(
            lambda: self._handler.call(args.registry, args.item, args.request)
        )
        if isinstance(response, ExtensionResponse) and response.status is not None:
            parts = dict_parts(response.response or [])
            if parts is not None and fits(parts):
                write_rows_reply(oprot, "call", call_result, seqid, response.status, parts)
                return
        result = response if msg_type == TMessageType.EXCEPTION else call_result(success=response)
        write_reply(oprot, "call", seqid, msg_type, result)
