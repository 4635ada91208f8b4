"""osquery table plugins: the `Table` base, the generate context, and the Thrift handler.

A table declares its columns in a `TableSpec` and yields rows; this module turns them into
what osquery core expects on the wire (every value a string, numbers never zero-padded,
None as ""), parses core's generate context, and answers core's `call()` without ever
raising: every failure is a status code 1 with a one-line message.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable, NamedTuple, Union

from ..errors import AuditExtError
from .columns import TEXT, UNKNOWN
from .gcpause import gc_paused
from .osquery_thrift import Extension
from .osquery_thrift.ttypes import ExtensionResponse, ExtensionStatus
from .tablespec import TableSpec
from .values import column_text

log = logging.getLogger(__name__)

# osquery's ConstraintOperator codes (osquery/core/tables.h); SQLite's own for the first ten.
UNIQUE = 1
EQUALS = 2
GREATER_THAN = 4
LESS_THAN_OR_EQUALS = 8
LESS_THAN = 16
GREATER_THAN_OR_EQUALS = 32
MATCH = 64
LIKE = 65
GLOB = 66
REGEXP = 67

Row = Union[Mapping[str, object], Sequence[object]]


@dataclass(frozen=True)
class Constraint:
    """One `column OP expr` term; expr is always the text of the right-hand value."""

    op: int
    expr: str


@dataclass(frozen=True)
class ConstraintList:
    affinity: str = TEXT
    constraints: tuple[Constraint, ...] = ()


@dataclass(frozen=True)
class QueryContext:
    """The constraints osquery core forwarded for one generate call.

    Constraints are hints: SQLite re-checks every returned row, so a table may ignore any
    of them (and must ignore operators it does not know).
    """

    columns: Mapping[str, ConstraintList] = field(default_factory=dict)
    cols_used: frozenset[str] | None = None
    cols_used_bitset: int | None = None
    raw: str = ""  # the JSON exactly as core sent it

    @classmethod
    def from_json(cls, text: str) -> QueryContext:
        """Parse core's context JSON; raise ValueError when it is not that shape."""
        doc = json.loads(text) if text else {}
        if not isinstance(doc, dict):
            raise ValueError("generate context is not a JSON object")
        columns: dict[str, ConstraintList] = {}
        for entry in doc.get("constraints") or []:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise ValueError("generate context: constraint without a column name")
            terms = []
            for term in entry.get("list") or []:
                if not isinstance(term, dict):
                    raise ValueError("generate context: malformed constraint term")
                terms.append(Constraint(int(term.get("op", 0)), str(term.get("expr", ""))))
            affinity = entry.get("affinity")
            columns[entry["name"]] = ConstraintList(
                affinity if isinstance(affinity, str) else UNKNOWN, tuple(terms)
            )
        used = doc.get("colsUsed")
        bitset = doc.get("colsUsedBitset")
        return cls(
            columns=columns,
            cols_used=frozenset(str(c) for c in used) if isinstance(used, list) else None,
            cols_used_bitset=int(bitset) if isinstance(bitset, int) else None,
            raw=text,
        )

    def constraints(self, column: str) -> list[tuple[int, str]]:
        """(op, expr) pairs on a column, in the order core sent them."""
        found = self.columns.get(column)
        return [(c.op, c.expr) for c in found.constraints] if found else []

    def equals(self, column: str) -> list[str]:
        """Every `column = expr` (and each value of an IN list on an OPTIMIZED column)."""
        return [expr for op, expr in self.constraints(column) if op == EQUALS]

    def int_bounds(self, column: str) -> tuple[int | None, int | None]:
        """Inclusive integer (low, high) implied by =, >, >=, <, <= on a column.

        None means unbounded. Non-numeric expressions are skipped (a wider scan is always
        safe); low > high means nothing can match.
        """
        low: int | None = None
        high: int | None = None
        for op, expr in self.constraints(column):
            value = _number(expr)
            if value is None:
                continue
            lo = hi = None
            if op == EQUALS:
                lo, hi = math.ceil(value), math.floor(value)
            elif op == GREATER_THAN:
                lo = math.floor(value) + 1
            elif op == GREATER_THAN_OR_EQUALS:
                lo = math.ceil(value)
            elif op == LESS_THAN:
                hi = math.ceil(value) - 1
            elif op == LESS_THAN_OR_EQUALS:
                hi = math.floor(value)
            if lo is not None:
                low = lo if low is None else max(low, lo)
            if hi is not None:
                high = hi if high is None else min(high, hi)
        return low, high

    def is_column_used(self, column: str) -> bool:
        """False only when core said which columns the query reads and this is not one."""
        return self.cols_used is None or column in self.cols_used


def _number(expr: str) -> Fraction | None:
    try:
        return Fraction(expr.strip())
    except (ValueError, ZeroDivisionError):
        return None


NULL_TEXT = ""  # None (NULL) as osquery core reads it back
int_text: Callable[[int], str] = str  # an int as core reads it: plain decimal


def encode_value(value: object) -> str:
    """One value as osquery core parses it: "" is NULL, integers in plain decimal."""
    if value is None:
        return NULL_TEXT
    if value.__class__ is int:
        return int_text(value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return int_text(value)
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)  # strtod reads "inf" too
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", errors="replace")
    raise TypeError(f"cannot send a {type(value).__name__} value to osquery")


def encode_row(spec: TableSpec, row: Row) -> dict[str, str]:
    """A mapping (column -> value) or a sequence in spec column order, as core's string map."""
    if row.__class__ is dict:  # the common case, kept to one pass with no call per str
        return {
            k if k.__class__ is str else str(k): v if v.__class__ is str else encode_value(v)
            for k, v in row.items()  # type: ignore[union-attr]
        }
    if isinstance(row, Mapping):
        return {str(k): encode_value(v) for k, v in row.items()}
    if isinstance(row, (str, bytes)) or not isinstance(row, Sequence):
        raise TypeError(f"a row must be a mapping or a sequence, not {type(row).__name__}")
    names = spec.column_names
    if len(row) != len(names):
        raise ValueError(f"row has {len(row)} values, table {spec.name} has {len(names)} columns")
    return {name: encode_value(value) for name, value in zip(names, row)}


def encode_rows(spec: TableSpec, rows: Iterable[Row]) -> list[dict[str, str]]:
    """[encode_row(spec, row) ...]; rows that are dicts with the same keys in the same order
    (what a table's one row builder makes) are encoded a column at a time, by C loops."""
    rows = list(rows)
    if not rows or set(map(type, rows)) != _DICT:
        return [encode_row(spec, row) for row in rows]
    keys = list(rows[0])
    if set(map(type, keys)) - _STR or not all(map(keys.__eq__, map(list, rows))):
        return [encode_row(spec, row) for row in rows]
    if not keys:
        return [{} for _ in rows]
    columns = [column_text(values, "", encode_value) for values in zip(*map(dict.values, rows))]
    return list(map(dict, map(zip, itertools.repeat(keys), zip(*columns))))


_DICT = frozenset({dict})
_STR = frozenset({str})


class TextEncoding(NamedTuple):
    """encode_value with the two of its rules a builder of text rows applies directly, for
    tables that make their rows in the text form themselves (Table.encoded_rows)."""

    value: Callable[[object], str] = encode_value
    integer: Callable[[int], str] = int_text
    null: str = NULL_TEXT


TEXT_FORM = TextEncoding()  # osquery's text form, as encode_value writes it


class Table:
    """Base of every table an extension serves: set `spec`, implement `generate`."""

    spec: TableSpec

    @property
    def name(self) -> str:
        return self.spec.name

    def routes(self) -> list[dict[str, str]]:
        """Sent at registration and answered to "columns": always the same list."""
        return self.spec.routes()

    def generate(self, context: QueryContext) -> Iterable[Row]:
        raise NotImplementedError

    def encoded_rows(self, context: QueryContext) -> list[dict[str, str]]:
        """generate's rows in osquery's text form, as the handler sends them; a table that
        can build them in that form directly overrides this (the same rows, byte for byte)."""
        return encode_rows(self.spec, self.generate(context))


def ok_status() -> ExtensionStatus:
    """A call's success as osquery reports one (status code 0, "OK"); the embedded core's
    answers carry it too."""
    return ExtensionStatus(code=0, message="OK")


def failure_response(message: str) -> ExtensionResponse:
    """A call's failure as osquery reports one: status code 1, the message, no rows.

    Shared by the extension side and the embedded core, so both fail alike."""
    return ExtensionResponse(status=ExtensionStatus(code=1, message=message), response=[])


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    detail = text[0] if text else ""
    if isinstance(exc, AuditExtError):
        return detail or type(exc).__name__
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


class ExtensionHandler(Extension.Iface):
    """Answers osquery core's Thrift calls for a set of tables; never raises."""

    def __init__(
        self,
        tables: Sequence[Table],
        *,
        on_shutdown: Callable[[], None] | None = None,
    ) -> None:
        self.tables: dict[str, Table] = {}
        for table in tables:
            if table.name in self.tables:
                raise ValueError(f"two tables named {table.name}")
            self.tables[table.name] = table
        self.uuid = 0
        self._on_shutdown = on_shutdown

    def registry(self) -> dict[str, dict[str, list[dict[str, str]]]]:
        """The registry broadcast sent to registerExtension."""
        return {"table": {name: table.routes() for name, table in self.tables.items()}}

    def ping(self) -> ExtensionStatus:
        return ExtensionStatus(code=0, message="pong", uuid=self.uuid)

    def shutdown(self) -> None:
        if self._on_shutdown is not None:
            self._on_shutdown()

    def call(self, registry: str, item: str, request: Mapping[str, str]) -> ExtensionResponse:
        if registry != "table":
            return failure_response(f"this extension has no {registry!r} registry")
        table = self.tables.get(item)
        if table is None:
            return failure_response(f"this extension has no table {item!r}")
        action = (request or {}).get("action", "")
        if action == "columns":
            return ExtensionResponse(status=ok_status(), response=table.routes())
        if action == "generate":
            return self._generate(table, request.get("context", ""))
        if action in ("insert", "update", "delete"):
            return ExtensionResponse(status=ok_status(), response=[{"status": "readonly"}])
        return failure_response(f"Unknown table plugin action: {action}")

    def _generate(self, table: Table, context_json: str) -> ExtensionResponse:
        try:
            context = QueryContext.from_json(context_json)
        except (ValueError, TypeError) as exc:
            return failure_response(f"invalid generate context: {exc}")
        try:
            with gc_paused():  # 100k rows: millions of objects and no cycle among them
                rows = table.encoded_rows(context)
        except AuditExtError as exc:  # expected trouble: the SQL error carries the message
            log.info("table %s: %s", table.name, exc)
            return failure_response(_one_line(exc))
        except Exception as exc:
            message = _one_line(exc)
            log.error("table %s: generate failed: %s", table.name, message)
            log.debug("table %s: generate failed", table.name, exc_info=True)
            return failure_response(message)
        return ExtensionResponse(status=ok_status(), response=rows)
