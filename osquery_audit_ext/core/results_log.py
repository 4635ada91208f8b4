"""osqueryd's filesystem logger: result and snapshot lines, field for field.

From osquery's source (osquery/core/query.cpp serializeQueryLogItem*, osquery/logger/
logger.cpp, plugins/logger/filesystem_logger.cpp):

- differential and event results go to `<logger_path>/osqueryd.results.log`; with
  logger_event_type (the default) one line per row: name, hostIdentifier, calendarTime,
  unixTime, epoch, counter, numerics, decorations (only when there are some), columns,
  action; "removed" rows before "added" ones;
- snapshot results go to `<logger_path>/osqueryd.snapshots.log`, by default one line per
  run: snapshot (the rows), action "snapshot", then the same fields;
- with logger_event_type off a differential run is one line: diffResults {removed, added}
  then the fields;
- unixTime, epoch and counter are JSON numbers, numerics a boolean, every column value a
  string (logger_numerics off), columns and decorations sorted by name (osquery's rows
  are ordered maps); compact JSON, UTF-8 unescaped, one object per line;
- calendarTime is asctime() in UTC with " UTC" appended ("Tue Dec  1 14:16:44 2026 UTC").
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AuditExtError

RESULTS_LOG = "osqueryd.results.log"
SNAPSHOTS_LOG = "osqueryd.snapshots.log"
LOG_MODE = 0o640  # osquery's logger_mode default

Row = Mapping[str, str]


@dataclass(frozen=True)
class LogItem:
    """osquery's QueryLogItem: one scheduled run's results and where they came from."""

    name: str
    host_identifier: str
    unix_time: int
    epoch: int = 0
    counter: int = 0
    decorations: Mapping[str, str] = field(default_factory=dict)
    added: Sequence[Row] = ()
    removed: Sequence[Row] = ()
    snapshot: Sequence[Row] | None = None  # set for snapshot queries


def calendar_time(unix_time: float) -> str:
    return time.asctime(time.gmtime(unix_time)) + " UTC"


def _dumps(document: object) -> str:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def _sorted(row: Row) -> dict[str, str]:
    return {name: row[name] for name in sorted(row)}


def _fields(item: LogItem, document: dict[str, object], top_level: bool) -> None:
    """osquery's addLegacyFieldsAndDecorations, in its order."""
    document["name"] = item.name
    document["hostIdentifier"] = item.host_identifier
    document["calendarTime"] = calendar_time(item.unix_time)
    document["unixTime"] = item.unix_time
    document["epoch"] = item.epoch
    document["counter"] = item.counter
    document["numerics"] = False
    if item.decorations:
        decorations = _sorted(item.decorations)
        if top_level:
            document.update(decorations)
        else:
            document["decorations"] = decorations


def result_lines(item: LogItem, *, event_type: bool = True, top_level: bool = False) -> list[str]:
    """The lines osqueryd writes for a run: event format (one per row) or one batch line."""
    if item.snapshot is not None:
        if event_type:
            actions: list[tuple[str, Sequence[Row]]] = [("snapshot", item.snapshot)]
        else:
            document: dict[str, object] = {
                "snapshot": [_sorted(r) for r in item.snapshot],
                "action": "snapshot",
            }
            _fields(item, document, top_level)
            return [_dumps(document)]
    elif event_type:
        actions = [("removed", item.removed), ("added", item.added)]
    else:
        if not item.added and not item.removed and item.counter != 0:
            return []
        document = {
            "diffResults": {
                "removed": [_sorted(r) for r in item.removed],
                "added": [_sorted(r) for r in item.added],
            }
        }
        _fields(item, document, top_level)
        return [_dumps(document)]
    lines = []
    for action, rows in actions:
        for row in rows:
            event: dict[str, object] = {}
            _fields(item, event, top_level)
            event["columns"] = _sorted(row)
            event["action"] = action
            lines.append(_dumps(event))
    return lines


def escape_nonprintable(text: str) -> str:
    """osquery's escapeNonPrintableBytes on a result value: control bytes as \\xHH."""
    if not any(ord(c) < 0x20 for c in text):
        return text
    return "".join(f"\\x{ord(c):02X}" if ord(c) < 0x20 else c for c in text)


class FilesystemLogger:
    """Appends lines to the results and snapshots logs in `directory` (created 0750)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(mode=0o750, parents=True, exist_ok=True)
        except OSError as exc:
            raise AuditExtError(f"cannot create logger_path {directory}: {exc.strerror}") from None
        if not self.directory.is_dir():
            raise AuditExtError(f"logger_path {directory} is not a directory")
        self._lock = threading.Lock()

    @property
    def results_path(self) -> Path:
        return self.directory / RESULTS_LOG

    @property
    def snapshots_path(self) -> Path:
        return self.directory / SNAPSHOTS_LOG

    def write(self, lines: Sequence[str], *, snapshot: bool = False) -> None:
        if not lines:
            return
        path = self.snapshots_path if snapshot else self.results_path
        data = "".join(line + "\n" for line in lines).encode("utf-8")
        with self._lock:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, LOG_MODE)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                finally:
                    os.close(fd)
            except OSError as exc:
                raise AuditExtError(f"cannot write {path}: {exc.strerror}") from None
