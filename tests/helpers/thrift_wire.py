"""Every extension-protocol message our code sends or answers, as wire bytes.

`exchanges(bindings, protocol)` plays each call through a bindings package's Client and
Processor over in-memory transports and returns {name: request bytes + reply bytes}. The
golden files in tests/sdk/golden/thrift were written by it with osquery-python 3.1.1's
bindings and thrift's pure-Python binary protocol (what this project used before its own
bindings); ours must give the same bytes with either protocol.
"""

from __future__ import annotations

from types import ModuleType, SimpleNamespace
from typing import Any, Callable

from thrift.transport import TTransport

CONTEXT = (
    '{"constraints":[{"name":"pid","list":[{"op":2,"expr":"42"}],"affinity":"BIGINT"}],'
    '"colsUsed":["cmdline","pid"],"colsUsedBitset":5}'
)
ROWS = [
    {"pid": "42", "cmdline": 'bash -c "echo \\u00e9"', "path": ""},
    {"pid": "-1", "cmdline": "caf\u00e9 \U0001f600", "path": "/usr/bin/x"},
    {},
]
ROUTES = [
    {"id": "column", "name": "pid", "type": "BIGINT", "op": "1"},
    {"id": "column", "name": "cmdline", "type": "TEXT", "op": "0"},
    {"id": "attributes", "attributes": "4"},
]


def _handler(types: ModuleType) -> Any:
    """Fixed answers for every method of ExtensionManager (a superset of Extension)."""
    status = types.ExtensionStatus(code=0, message="OK", uuid=17425)
    response = types.ExtensionResponse(status=status, response=ROWS)
    info = types.InternalExtensionInfo(
        name="audit", version="0.1.0", sdk_version="5.0.0", min_sdk_version="1.8.0"
    )
    return SimpleNamespace(
        ping=lambda: types.ExtensionStatus(code=0, message="pong", uuid=0),
        call=lambda registry, item, request: response,
        shutdown=lambda: None,
        extensions=lambda: {17425: info, 1: types.InternalExtensionInfo(name="x")},
        options=lambda: {
            "verbose": types.InternalOptionInfo(value="false", default_value="false", type="bool"),
            "extensions_socket": types.InternalOptionInfo(
                value="/var/osquery/osquery.em", default_value="", type="string"
            ),
        },
        registerExtension=lambda info, registry: status,
        deregisterExtension=lambda uuid: types.ExtensionStatus(
            code=1, message="No extension UUID found"
        ),
        query=lambda sql: response,
        getQueryColumns=lambda sql: types.ExtensionResponse(
            status=status, response=[{"pid": "BIGINT"}, {"cmdline": "TEXT"}]
        ),
    )


def calls(types: ModuleType) -> dict[str, Callable[[Any], Any]]:
    """name -> a call on a Client, with the arguments our code sends."""
    info = types.InternalExtensionInfo(
        name="audit", version="0.1.0", sdk_version="5.0.0", min_sdk_version="1.8.0"
    )
    return {
        "ping": lambda c: c.ping(),
        "call_generate": lambda c: c.call(
            "table", "process_events", {"action": "generate", "context": CONTEXT}
        ),
        "call_columns": lambda c: c.call("table", "process_events", {"action": "columns"}),
        "shutdown": lambda c: c.shutdown(),
        "extensions": lambda c: c.extensions(),
        "options": lambda c: c.options(),
        "register": lambda c: c.registerExtension(
            info, {"table": {"process_events": ROUTES, "socket_events": ROUTES[:1]}}
        ),
        "deregister": lambda c: c.deregisterExtension(17425),
        "query": lambda c: c.query("SELECT pid, cmdline FROM process_events;"),
        "query_columns": lambda c: c.getQueryColumns("SELECT pid FROM process_events"),
    }


class _Loopback(TTransport.TTransportBase):
    """A client transport whose flush hands the request to a processor and keeps the reply."""

    def __init__(self, processor: Any, protocol: Callable[[Any], Any]) -> None:
        self.processor = processor
        self.protocol = protocol
        self.request = b""
        self.reply = b""
        self._out = TTransport.TMemoryBuffer()
        self._in = TTransport.TMemoryBuffer()

    def write(self, buf: bytes) -> None:
        self._out.write(buf)

    def flush(self) -> None:
        self.request = self._out.getvalue()
        self._out = TTransport.TMemoryBuffer()
        server_in = TTransport.TMemoryBuffer(self.request)
        server_out = TTransport.TMemoryBuffer()
        self.processor.process(self.protocol(server_in), self.protocol(server_out))
        self.reply = server_out.getvalue()
        self._in = TTransport.TMemoryBuffer(self.reply)

    def read(self, sz: int) -> bytes:
        return self._in.read(sz)


def exchanges(
    bindings: ModuleType,
    client_protocol: Callable[[Any], Any],
    server_protocol: Callable[[Any], Any] | None = None,
) -> dict[str, tuple[bytes, Any]]:
    """{call name: (request bytes + reply bytes, what the client's call returned)}."""
    types = bindings.ttypes
    manager = bindings.ExtensionManager
    out = {}
    for name, call in calls(types).items():
        loop = _Loopback(manager.Processor(_handler(types)), server_protocol or client_protocol)
        client = manager.Client(client_protocol(TTransport.TBufferedTransport(loop)))
        result = call(client)
        out[name] = (loop.request + loop.reply, result)
    return out


def answers(types: ModuleType) -> dict[str, Any]:
    """What each call of `calls` returns to the client: the handler's answer."""
    handler = _handler(types)
    return {
        "ping": handler.ping(),
        "call_generate": handler.call("", "", {}),
        "call_columns": handler.call("", "", {}),
        "shutdown": None,
        "extensions": handler.extensions(),
        "options": handler.options(),
        "register": handler.registerExtension(None, None),
        "deregister": handler.deregisterExtension(0),
        "query": handler.query(""),
        "query_columns": handler.getQueryColumns(""),
    }
