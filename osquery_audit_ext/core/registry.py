"""The extension registry of the embedded core: who registered which tables, under which uuid.

Registration follows osquery's ExtensionManagerInterface::registerExtension: duplicate
extension names and duplicate table names are refused, every registration gets a fresh
non-zero 16-bit uuid, and the extension then serves on `<manager socket>.<uuid>`.
"""

from __future__ import annotations

import logging
import random
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Callable

from ..sdk.osquery_thrift.ttypes import ExtensionStatus, InternalExtensionInfo
from .sources import ExtensionTableSource
from .tabledef import TableDef

log = logging.getLogger(__name__)

# osquery refuses extensions built with an SDK older than its last API change.
MIN_SDK_VERSION = (1, 7, 7)

Routes = Sequence[Mapping[str, str]]


@dataclass(frozen=True)
class Registration:
    uuid: int
    info: InternalExtensionInfo
    tables: Mapping[str, Routes]


def _sdk_too_old(sdk_version: str | None) -> bool:
    """True only for a dotted version below 1.7.7; unknown spellings are let through."""
    if not sdk_version or not re.fullmatch(r"\d+(\.\d+)*", sdk_version):
        return False
    parts = tuple(int(p) for p in sdk_version.split("."))
    return parts < MIN_SDK_VERSION


class ExtensionRegistry:
    def __init__(self, reserved_tables: Callable[[], set[str]]) -> None:
        self._reserved_tables = reserved_tables
        self._lock = threading.Lock()
        self._entries: dict[int, Registration] = {}
        self._random = random.Random()

    def register(
        self, info: InternalExtensionInfo, broadcast: Mapping[str, Mapping[str, Routes]]
    ) -> ExtensionStatus:
        tables = dict((broadcast or {}).get("table") or {})
        with self._lock:
            if any(e.info.name == info.name for e in self._entries.values()):
                log.warning("Refusing to register duplicate extension %s", info.name)
                return ExtensionStatus(code=1, message="Duplicate extension registered")
            if _sdk_too_old(info.sdk_version):
                return ExtensionStatus(code=1, message="Incompatible extension SDK version")
            taken = set(self._reserved_tables())
            for entry in self._entries.values():
                taken.update(entry.tables)
            for name, routes in tables.items():
                if name in taken:
                    message = f"Failed adding registry: Duplicate registry item exists: {name}"
                    log.warning("Could not add extension %s: %s", info.name, message)
                    return ExtensionStatus(code=1, message=message)
                if not routes:
                    message = "Failed adding registry: Invalid route info"
                    return ExtensionStatus(code=1, message=message)
            uuid = self._random.randint(1, 0xFFFF)
            while uuid in self._entries:
                uuid = self._random.randint(1, 0xFFFF)
            self._entries[uuid] = Registration(uuid, info, tables)
        log.info(
            "Registering extension (%s, %d, version=%s, sdk=%s)",
            info.name,
            uuid,
            info.version,
            info.sdk_version,
        )
        return ExtensionStatus(code=0, message="OK", uuid=uuid)

    def deregister(self, uuid: int) -> ExtensionStatus:
        with self._lock:
            if self._entries.pop(uuid, None) is None:
                return ExtensionStatus(code=1, message="No extension UUID found")
        return ExtensionStatus(code=0, message="OK", uuid=uuid)

    def remove(self, uuid: int) -> None:
        with self._lock:
            self._entries.pop(uuid, None)

    def snapshot(self) -> list[Registration]:
        with self._lock:
            return list(self._entries.values())

    def find(self, name: str) -> Registration | None:
        return next((e for e in self.snapshot() if e.info.name == name), None)

    def table_sources(self, manager_socket: str, timeout: float) -> dict[str, ExtensionTableSource]:
        """Each registered table, described by its registration routes as sent (raw options)."""
        sources = {}
        for entry in self.snapshot():
            path = f"{manager_socket}.{entry.uuid}"
            for name, routes in entry.tables.items():
                definition = TableDef.from_routes(
                    name, routes, is_extension=True, default_index=False
                )
                sources[name] = ExtensionTableSource(name, definition, path, timeout)
        return sources
