"""Core's own tables that query packs commonly lean on: osquery_extensions and time.

Their specs sit next to this module in core/tables/*.table, in the same format as the
audit tables.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from importlib import resources
from typing import Callable

from ..sdk.osquery_thrift.ttypes import InternalExtensionInfo
from ..sdk.plugin import QueryContext, Row, Table
from ..sdk.tablespec import TableSpec, parse_spec


def builtin_spec(name: str) -> TableSpec:
    text = (resources.files(__package__) / "tables" / f"{name}.table").read_text("utf-8")
    return parse_spec(text, f"core/tables/{name}.table")


class OsqueryExtensionsTable(Table):
    """The core (uuid 0) and every registered extension, as osquery lists them."""

    spec = builtin_spec("osquery_extensions")

    def __init__(
        self,
        socket_path: str,
        core_version: str,
        extensions: Callable[[], dict[int, InternalExtensionInfo]],
    ) -> None:
        self.socket_path = socket_path
        self.core_version = core_version
        self.extensions = extensions

    def generate(self, context: QueryContext) -> Iterable[Row]:
        rows: list[Row] = [(0, "core", self.core_version, "0.0.0", self.socket_path, "core")]
        for uuid, info in sorted(self.extensions().items()):
            path = f"{self.socket_path}.{uuid}"
            rows.append((uuid, info.name, info.version, info.sdk_version, path, "extension"))
        return rows


class TimeTable(Table):
    """The current time in UTC, as osquery's `time` table reports it."""

    spec = builtin_spec("time")

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

    def generate(self, context: QueryContext) -> Iterable[Row]:
        now = int(self.clock())
        utc = time.gmtime(now)
        iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", utc)
        return [
            {
                "weekday": time.strftime("%A", utc),
                "year": utc.tm_year,
                "month": utc.tm_mon,
                "day": utc.tm_mday,
                "hour": utc.tm_hour,
                "minutes": utc.tm_min,
                "seconds": utc.tm_sec,
                "timezone": "UTC",
                "local_timezone": time.strftime("%Z", time.localtime(now)),
                "unix_time": now,
                "timestamp": time.strftime("%a %b %d %H:%M:%S %Y UTC", utc),
                "datetime": iso,
                "iso_8601": iso,
            }
        ]
