"""An extension's reply to a generate call written from its table's rows in pieces
(sdk/answer.py CallProcessor, sdk/_answerfast.c) against the generated Extension Processor:
the same bytes for every handler answer, on both implementations (the compiled encoder, and
without it the generated path)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from helpers import accel
from hypothesis import given
from hypothesis import strategies as st
from thrift.protocol.TBinaryProtocol import TBinaryProtocol
from thrift.Thrift import TApplicationException, TMessageType
from thrift.transport import TTransport

from osquery_audit_ext.sdk import answer as rows_reply
from osquery_audit_ext.sdk import transport
from osquery_audit_ext.sdk.osquery_thrift import Extension
from osquery_audit_ext.sdk.osquery_thrift.Extension import call_args, call_result
from osquery_audit_ext.sdk.osquery_thrift.ttypes import ExtensionResponse, ExtensionStatus
from osquery_audit_ext.sdk.plugin import ok_status

COMPILED = rows_reply._answerfast


@pytest.fixture(scope="module", params=accel.IMPLEMENTATIONS)
def implementation(request: pytest.FixtureRequest) -> Iterator[str]:
    accel.require(request.param, COMPILED, "sdk/_answerfast.c")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rows_reply, "_answerfast", COMPILED if request.param == "compiled" else None)
        yield request.param


class _Handler:
    """Answers every call with `answer` (or raises it)."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def call(self, registry: str, item: str, request: dict) -> Any:
        if isinstance(answer := self.answer, Exception):
            raise answer
        return answer


def _reply(processor_class: type, answer: Any, protocol: Any = None) -> bytes:
    """The bytes `processor_class` writes for one `call` whose handler gives `answer`."""
    protocol = protocol or transport.binary_protocol
    request = TTransport.TMemoryBuffer()
    out = protocol(request)
    out.writeMessageBegin("call", TMessageType.CALL, 7)
    call_args("table", "t", {"action": "generate", "context": "{}"}).write(out)
    out.writeMessageEnd()
    reply = TTransport.TMemoryBuffer()
    processor_class(_Handler(answer)).process(
        protocol(TTransport.TMemoryBuffer(request.getvalue())), protocol(reply)
    )
    return reply.getvalue()


_NAMES = st.lists(st.sampled_from(["pid", "path", "é", "", "eid", "a b"]), unique=True)


@st.composite
def _uniform_rows(draw: Any) -> list[dict[str, str]]:
    """Rows as a table's text form gives them: every row the same keys in the same order."""
    names = draw(_NAMES)
    count = draw(st.integers(0, 6))
    return [{name: draw(st.text(max_size=5)) for name in names} for _ in range(count)]


_ANY_ROWS = _uniform_rows() | st.lists(
    st.dictionaries(st.sampled_from(["pid", "path", "x"]), st.text(max_size=3)), max_size=4
)


@given(rows=_ANY_ROWS, code=st.integers(0, 2), message=st.text(max_size=4))
def test_generate_replies_are_the_generated_processors_bytes(
    implementation: str, rows: list[dict[str, str]], code: int, message: str
) -> None:
    response = ExtensionResponse(ExtensionStatus(code, message), rows)
    assert _reply(rows_reply.CallProcessor, response) == _reply(Extension.Processor, response)
    pure = TBinaryProtocol  # no fastbinary: always the generated way
    assert _reply(rows_reply.CallProcessor, response, pure) == _reply(
        Extension.Processor, response, pure
    )


@given(rows=_uniform_rows(), piece=st.integers(1, 300))
def test_rows_written_in_pieces_are_the_same_bytes(
    implementation: str, rows: list[dict[str, str]], piece: int
) -> None:
    if implementation != "compiled" or not transport.accelerated() or not rows:
        return
    pieces: list[bytes] = []

    class Recording(TTransport.TMemoryBuffer):
        def flush(self) -> None:
            pieces.append(self.getvalue()[sum(map(len, pieces)) :])

    buffer = Recording()
    protocol = transport.binary_protocol(buffer)
    rows_reply.write_rows_reply(
        protocol, "call", call_result, 3, ok_status(), rows_reply.dict_parts(rows), piece=piece
    )
    expected = TTransport.TMemoryBuffer()
    out = transport.binary_protocol(expected)
    out.writeMessageBegin("call", TMessageType.REPLY, 3)
    call_result(success=ExtensionResponse(ok_status(), rows)).write(out)
    out.writeMessageEnd()
    assert b"".join(pieces) == buffer.getvalue() == expected.getvalue()
    assert len(pieces) > 1


@pytest.mark.parametrize(
    "answer",
    [
        ExtensionResponse(ok_status(), [{"a": "1", "b": "2"}, {"b": "2", "a": "1"}]),  # key order
        ExtensionResponse(ok_status(), []),
        ExtensionResponse(ok_status(), None),
        ExtensionResponse(None, [{"a": "1"}]),
        TApplicationException(TApplicationException.UNKNOWN, "from the handler"),
        RuntimeError("a bug"),
    ],
)
def test_other_answers_go_the_generated_way(implementation: str, answer: Any) -> None:
    assert _reply(rows_reply.CallProcessor, answer) == _reply(Extension.Processor, answer)


@pytest.mark.parametrize("rows", [[{"a": None}], [{"a": "1"}, ("1",)]])
def test_rows_that_are_not_text_dicts_are_left_to_thrift(implementation: str, rows) -> None:
    """A None value, a row that is no dict: not the encoder's to write; thrift's own encoder
    fails on it the same way on both processors."""
    answer = ExtensionResponse(ok_status(), rows)
    errors = []
    for processor in (rows_reply.CallProcessor, Extension.Processor):
        with pytest.raises(Exception) as caught:
            _reply(processor, answer)
        errors.append(type(caught.value))
    assert errors[0] is errors[1]
    assert not rows_reply.fits(rows_reply.dict_parts([{"a": 1}]))
    assert rows_reply.dict_parts([{"a": "1"}, ("1",)]) is None
