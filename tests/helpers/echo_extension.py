"""A generic test extension, launched as osquery launches one (`--socket S --timeout T ...`).

It knows nothing about audit. Every generate context it receives, its argv and its exit
are appended as JSON lines to $FIXTURE_LOG, so tests can pin exactly what core forwarded
(independent of SQLite re-checking the rows).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from osquery_audit_ext.errors import AuditUnavailable
from osquery_audit_ext.sdk.plugin import QueryContext, Row, Table
from osquery_audit_ext.sdk.runtime import run_extension
from osquery_audit_ext.sdk.tablespec import TableSpec, parse_spec

HERE = Path(__file__).resolve().parent
_log_lock = threading.Lock()

# Raw strings a typed column receives; core must cast each as osquery does.
RAW_VALUES = {
    "octal": "010",
    "hex": "0x1f",
    "empty": "",
    "text": "abc",
    "decimal": "12",
    "negative": "-5",
    "leading_space": " 7",
    "trailing_space": "7 ",
    "int64_overflow": "9223372036854775808",
    "int32_wrap": "4294967297",
    "real": "1.5",
    "bad_octal": "08",
}


def log_event(**event: object) -> None:
    path = os.environ.get("FIXTURE_LOG")
    if not path:
        return
    with _log_lock, open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(event) + "\n")


def fixture_spec(name: str) -> TableSpec:
    path = HERE / "tables" / f"{name}.table"
    return parse_spec(path.read_text(encoding="utf-8"), str(path))


class EchoTable(Table):
    spec = fixture_spec("fixture_echo")

    def generate(self, context: QueryContext) -> Iterable[Row]:
        log_event(table=self.name, context=context.raw)
        return [("a", 1, 1, "p", "e", "l", "s", "x")]


class RequiredTable(Table):
    spec = fixture_spec("fixture_required")

    def generate(self, context: QueryContext) -> Iterable[Row]:
        return [{"path": path, "size": len(path)} for path in context.equals("path")]


class ValuesTable(Table):
    spec = fixture_spec("fixture_values")

    def generate(self, context: QueryContext) -> Iterable[Row]:
        return [
            {"label": label, "raw": raw, "i": raw, "b": raw, "d": raw, "t": raw}
            for label, raw in RAW_VALUES.items()
        ]


class RowsTable(Table):
    """Enough rows for a reply of many socket reads (~0.5 MB), each raw value in every
    typed column; some rows lack "i" or carry an unknown key or a "rowid", so the keys'
    order changes from row to row."""

    spec = fixture_spec("fixture_rows")
    COUNT = 6000

    def generate(self, context: QueryContext) -> Iterable[Row]:
        raws = [*RAW_VALUES.values(), "é ☃", "\U0001f600", "18446744073709551615", "-0"]
        rows = []
        for k in range(self.COUNT):
            raw = raws[k % len(raws)]
            row = {"label": f"row {k} é", "n": str(k * 7919 - 10**6), "i": raw, "d": raw}
            row.update(t=raw * (k % 3), u=raw)
            if k % 5 == 0:
                del row["i"]  # a key missing: "" as osquery reads it
            if k % 7 == 0:
                row["zz_unknown"] = "x"
            if k % 11 == 0:
                row["rowid"] = str(10**6 + k)
            rows.append(row)
        return rows


class ErrorsTable(Table):
    spec = fixture_spec("fixture_errors")

    def generate(self, context: QueryContext) -> Iterable[Row]:
        kinds = context.equals("kind")
        if "audit" in kinds:
            raise AuditUnavailable("kernel audit is not available here")
        if "bug" in kinds:
            return [{"kind": "bug", "note": str(1 // len(kinds[1:]))}]
        if "slow" in kinds:
            time.sleep(float(os.environ.get("FIXTURE_SLOW", "3")))
            return [{"kind": "slow", "note": "done"}]
        return [{"kind": "ok", "note": "fine"}]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True)
    parser.add_argument("--timeout", type=float, default=3)
    parser.add_argument("--interval", type=float, default=3)
    parser.add_argument("--verbose", action="store_true")
    args, _unknown = parser.parse_known_args()
    log_event(argv=sys.argv[1:])
    return run_extension(
        os.environ.get("FIXTURE_NAME", "fixture"),
        "1.0.0",
        [EchoTable(), RequiredTable(), ValuesTable(), RowsTable(), ErrorsTable()],
        socket_path=args.socket,
        timeout=args.timeout,
        interval=args.interval,
        verbose=args.verbose,
        on_exit=lambda: log_event(exit=True),
    )


if __name__ == "__main__":
    sys.exit(main())
