"""Where a table's rows come from: an extension over Thrift, or a table inside the core."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..sdk.osquery_thrift.ttypes import ExtensionResponse, ExtensionStatus
from ..sdk.plugin import ExtensionHandler, Table, failure_response
from ..sdk.transport import ThriftConnectError, connect, read_reply
from .tabledef import TableDef

# decode(read) -> None (the reply has no result) or (status, rows, rowids), status being
# (code, message, uuid) or None: core/_sqlfast.c's reply_rows, given its columns.
ReplyDecoder = Callable[[Callable[[int], bytes]], Any]  # sdk/transport.read_reply's decode


@dataclass(frozen=True)
class TypedResponse:
    """A generate call's answer with its rows already typed (core/_sqlfast.c reply_rows):
    one tuple per row, and each row's "rowid" text (None: the row has none; the whole list
    None when no row has one)."""

    status: ExtensionStatus
    rows: list[tuple[object, ...]]
    rowids: list[str | None] | None = None


def _failure(message: str) -> TypedResponse:
    return TypedResponse(failure_response(message).status, [])


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

    def generate_typed(self, request: dict[str, str], decode: ReplyDecoder) -> TypedResponse:
        """call(request), but the reply's body goes to `decode` as it arrives, not through
        thrift's decoder: 100k rows would otherwise become 100k dicts of str only to be
        typed and dropped. Same connection, same failures as call()."""
        if not os.path.exists(self.socket_path):
            return _failure(f"Extension socket not available: {self.socket_path}")
        try:
            with connect(self.socket_path, self.timeout) as client:
                client.send_call("table", self.name, request)
                decoded = read_reply(client._iprot, decode)
        except ThriftConnectError as exc:
            return _failure(f"Extension call failed: {exc}")
        except ValueError as exc:  # reply_rows: bytes that are no ExtensionResponse
            return _failure(f"Extension call failed: {self.socket_path}: {exc}")
        status, rows, rowids = decoded
        if status is None:
            return _failure(f"Extension call failed: no status from {self.socket_path}")
        return TypedResponse(ExtensionStatus(*status), rows or [], rowids)


class LocalTableSource:
    """A table living in the core process, answered through the same plugin handler."""

    is_extension = False

    def __init__(self, table: Table) -> None:
        self.name = table.name
        self.definition = TableDef.from_routes(table.name, table.routes(), is_extension=False)
        self._handler = ExtensionHandler([table])

    def call(self, request: dict[str, str]) -> ExtensionResponse:
        return self._handler.call("table", self.name, request)
