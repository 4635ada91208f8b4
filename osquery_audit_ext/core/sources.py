"""Where a table's rows come from: an extension over Thrift, or a table inside the core."""

from __future__ import annotations

import os

from ..sdk.osquery_thrift.ttypes import ExtensionResponse
from ..sdk.plugin import ExtensionHandler, Table, failure_response
from ..sdk.transport import ThriftConnectError, connect
from .tabledef import TableDef


class ExtensionTableSource:
    """A table served by a registered extension: one new connection per call."""

    is_extension = True

    def __init__(self, name: str, definition: TableDef, socket_path: str, timeout: float) -> None:
        self.name = name
        self.definition = definition
        self.socket_path = socket_path
        self.timeout = timeout

    def call(self, request: dict[str, str]) -> ExtensionResponse:
        if not os.path.exists(self.socket_path):
            return failure_response(f"Extension socket not available: {self.socket_path}")
        try:
            with connect(self.socket_path, self.timeout) as client:
                response = client.call("table", self.name, request)
        except ThriftConnectError as exc:
            return failure_response(f"Extension call failed: {exc}")
        if response is None or response.status is None:
            return failure_response(f"Extension call failed: no status from {self.socket_path}")
        return response


class LocalTableSource:
    """A table living in the core process, answered through the same plugin handler."""

    is_extension = False

    def __init__(self, table: Table) -> None:
        self.name = table.name
        self.definition = TableDef.from_routes(table.name, table.routes(), is_extension=False)
        self._handler = ExtensionHandler([table])

    def call(self, request: dict[str, str]) -> ExtensionResponse:
        return self._handler.call("table", self.name, request)
