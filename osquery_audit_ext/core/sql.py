"""SQL over plugin tables, with osquery core's virtual-table rules (osquery/sql/virtual_table.cpp).

Every query gets its own SQLite connection where each registered table is an eponymous
virtual table: it is only connected (one "columns" call) when a query names it. The
planner hook forwards constraints the way osquery's xBestIndex/xFilter do:

- only constraints on INDEX, REQUIRED or ADDITIONAL columns (extension columns with
  options 0 count as INDEX: extensions_default_index=true);
- never a range operator on a TEXT column, never a NULL or empty value;
- an IN list on an OPTIMIZED column arrives in one generate call as several EQUALS;
- a table with a REQUIRED column fails with "constraint failed" unless one is constrained.

Returned strings are cast by column type (values.column_value, column by column); plugin errors become SQL
errors carrying the plugin's message.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import operator
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter, methodcaller
from typing import Any, Callable, NamedTuple, Protocol

import apsw

from ..accel import compiled
from ..errors import AuditExtError
from ..sdk.columns import (
    ADDITIONAL,
    ATTRIBUTE_BITS,
    BIGINT,
    BLOB,
    DOUBLE,
    INDEX,
    INTEGER,
    OPTIMIZED,
    REQUIRED,
    TEXT,
    UNSIGNED_BIGINT,
)
from ..sdk.gcpause import gc_paused
from ..sdk.osquery_thrift.ttypes import ExtensionResponse, ExtensionStatus
from ..sdk.plugin import (
    EQUALS,
    GREATER_THAN,
    GREATER_THAN_OR_EQUALS,
    LESS_THAN,
    LESS_THAN_OR_EQUALS,
)
from ..sdk.result import QueryResult, Scan, ScannedResult
from ..sdk.values import (
    PLAIN_KINDS,
    PLAIN_RANGES,
    column_converter,
    column_text,
    column_type,
    convert_column,
    json_string,
    parse_rowid,
    result_text,
)
from .tabledef import TableDef

log = logging.getLogger(__name__)

_RANGE_OPS = (GREATER_THAN, GREATER_THAN_OR_EQUALS, LESS_THAN, LESS_THAN_OR_EQUALS)
_MAX_COST = 1000000.0


class SQLError(AuditExtError):
    """A query failed; the message is the one osquery would report."""


class TableSource(Protocol):
    """Something that answers osquery table plugin calls (an extension, or a local table).

    An extension's source may also have generate_typed(request, decode) (sources.py's
    ExtensionTableSource): a generate call whose reply `decode` reads straight into rows."""

    name: str
    is_extension: bool
    definition: TableDef  # from the routes given at registration

    def call(self, request: dict[str, str]) -> ExtensionResponse:
        """Never raises: failures are a status code != 0 with a message."""
        ...


@dataclass(frozen=True)
class _Plan:
    """What xBestIndex chose: the (column, op) forwarded for each xFilter argument."""

    terms: tuple[tuple[str, int], ...] = ()
    cols_used: tuple[str, ...] = ()
    cols_used_bitset: int = 0


_text_local = threading.local()


def _real_text(value: float) -> str:
    """A REAL as SQLite itself renders it to text (sqlite3_value_text)."""
    conn = getattr(_text_local, "conn", None)
    if conn is None:
        conn = _text_local.conn = apsw.Connection(":memory:")
    return conn.execute("SELECT CAST(? AS TEXT)", (value,)).fetchall()[0][0] or ""


def expression_text(value: object) -> str | None:
    """sqlite3_value_text() of a constraint's right-hand value; None for NULL."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _real_text(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _in_list_order(value: object) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, (int, float)):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    return (3, bytes(value))  # type: ignore[call-overload]


def generate_context(
    definition: TableDef,
    constraints: Mapping[str, Sequence[tuple[int, str]]],
    cols_used: Sequence[str] | None,
    cols_used_bitset: int,
) -> str:
    """The "context" JSON of a generate request, byte for byte as osquery writes it."""
    parts = []
    for column in sorted(definition.columns, key=lambda c: c.name):
        terms = ",".join(
            f'{{"op":{op},"expr":{json_string(expr)}}}'
            for op, expr in constraints.get(column.name, ())
        )
        parts.append(
            f'{{"name":{json_string(column.name)},"list":[{terms}],"affinity":{json_string(column.type)}}}'
        )
    text = '{"constraints":[' + ",".join(parts) + "]"
    if cols_used is not None:
        text += ',"colsUsed":[' + ",".join(json_string(c) for c in cols_used) + "]"
    return text + f',"colsUsedBitset":{cols_used_bitset}}}'


def _value_array(definition: TableDef, fields: Sequence[object]) -> str:
    """The json_value_array of an insert/update request (serializeUpdateParameters)."""
    columns = definition.columns
    if len(fields) != len(columns):
        raise SQLError("column index out of range")
    items = []
    for column, value in zip(columns, fields):
        if value is None:
            if column.options in (INDEX, REQUIRED):
                raise SQLError("datatype mismatch")
            items.append("null")
        elif isinstance(value, int):
            if column.type not in (INTEGER, BIGINT, UNSIGNED_BIGINT):
                raise SQLError("datatype mismatch")
            items.append(str(value))
        elif isinstance(value, float):
            if column.type != DOUBLE:
                raise SQLError("datatype mismatch")
            items.append(json.dumps(value))
        elif isinstance(value, str):
            if column.type != TEXT:
                raise SQLError("datatype mismatch")
            items.append(json_string(value))
        else:
            if column.type != BLOB:
                raise SQLError("datatype mismatch")
            items.append(json_string(bytes(value).decode("utf-8", errors="replace")))  # type: ignore[arg-type]
    return "[" + ",".join(items) + "]"


_EVENT_BASED = ATTRIBUTE_BITS["event_based"]


class _VirtualTable:
    """One plugin table inside one query's connection."""

    def __init__(self, source: TableSource, definition: TableDef, scans: list[Scan]) -> None:
        self.source = source
        self.definition = definition
        self.scans = scans  # the query's record of its generate calls
        self.plans: dict[int, _Plan] = {}
        self._ids = itertools.count()
        self.has_required = any(c.options & REQUIRED for c in definition.columns)

    # -- planning -----------------------------------------------------------------------
    def BestIndexObject(self, info: apsw.IndexInfo) -> bool:
        columns = self.definition.columns
        terms: list[tuple[str, int]] = []
        cost = _MAX_COST
        required_constrained = False
        for i in range(info.nConstraint):
            if not info.get_aConstraint_usable(i):
                continue
            index = info.get_aConstraint_iColumn(i)
            if index < 0 or index >= len(columns):
                continue
            column = columns[index]
            op = info.get_aConstraint_op(i)
            if column.type == TEXT and op in _RANGE_OPS:
                cost += 10
                continue
            if column.options & REQUIRED:
                required_constrained = True
                cost = 1
            elif column.options & (INDEX | ADDITIONAL):
                cost = 1
            else:
                continue  # not indexed: SQLite filters it
            terms.append((column.name, op))
            info.set_aConstraintUsage_argvIndex(i, len(terms))
            if column.options & OPTIMIZED and info.get_aConstraintUsage_in(i):
                info.set_aConstraintUsage_in(i, True)
        used: list[str] = []
        bitset = 0
        required_used = False
        position = {c.name: i for i, c in enumerate(columns)}
        for i, column in enumerate(columns):
            if min(i, 63) not in info.colUsed:
                continue
            name = column.alias_of or column.name
            bitset |= 1 << min(position.get(name, i), 63)
            if name not in used:
                used.append(name)
            if column.options & REQUIRED:
                required_used = True
        if required_used and not required_constrained:
            cost = _MAX_COST
        plan_id = next(self._ids) & 0x7FFFFFFF
        self.plans[plan_id] = _Plan(tuple(terms), tuple(sorted(used)), bitset)
        info.idxNum = plan_id
        info.estimatedCost = cost
        return True

    def Open(self) -> _Cursor:
        return _Cursor(self)

    def Disconnect(self) -> None:
        self.plans.clear()

    Destroy = Disconnect

    # -- writes: forwarded so the plugin decides (ours answer "readonly") ---------------
    def _write(self, request: dict[str, str]) -> dict[str, str]:
        request["context"] = generate_context(self.definition, {}, None, 0)
        response = self.source.call(request)
        rows = response.response or []
        if response.status is None or response.status.code != 0 or len(rows) != 1:
            message = response.status.message if response.status else ""
            raise SQLError(message or "SQL logic error")
        result = rows[0]
        status = result.get("status")
        if status == "readonly":
            raise SQLError(f"table {self.definition.name} may not be modified")
        if status == "failure":
            raise SQLError(result.get("message") or "SQL logic error")
        if status == "constraint":
            raise SQLError("constraint failed")
        if status != "success":
            raise SQLError("SQL logic error")
        return result

    def UpdateInsertRow(self, rowid: int | None, fields: Sequence[object]) -> int:
        request = {"action": "insert", "json_value_array": _value_array(self.definition, fields)}
        request["auto_rowid"] = "false" if rowid is None else "true"
        if rowid is not None:
            request["id"] = str(rowid)
        result = self._write(request)
        if rowid is not None:
            return rowid
        new_id = parse_rowid(result.get("id", ""))
        if new_id is None:
            raise SQLError("SQL logic error")
        return new_id

    def UpdateDeleteRow(self, rowid: int) -> None:
        self._write({"action": "delete", "id": str(rowid)})

    def UpdateChangeRow(self, rowid: int, newrowid: int, fields: Sequence[object]) -> None:
        request = {"action": "update", "id": str(rowid)}
        if newrowid != rowid:
            request["new_id"] = str(newrowid)
        request["json_value_array"] = _value_array(self.definition, fields)
        self._write(request)


class _Cursor:
    """Rows of one generate call, converted to SQLite values before SQLite reads them.

    SQLite calls Next and Eof once a row and Column once a cell; all three are C callables
    here, never a Python frame. `_current` is one list holding the row SQLite is on: Column
    is its __getitem__; Next is next() on a map that copies the next row tuple into it
    (list slice assignment); Eof is `not _current`, as the rows end with an empty tuple.
    Each row tuple ends with the row's position, for Rowid, which reads the row's "rowid"
    key through `_rowid_text(position)`.
    """

    def __init__(self, table: _VirtualTable) -> None:
        self.table = table
        self._count = 0
        self._rowid_text: Callable[[int], str | None] = _no_rowid
        self._current: list[object] = []
        self.Column: Callable[[int], object] = self._current.__getitem__
        self.Eof: Callable[[], bool] = functools.partial(operator.not_, self._current)
        self.Next: Callable[[], object] = functools.partial(next, iter(()), None)

    def Filter(
        self, indexnum: int, indexname: str | None, constraintargs: Sequence[object]
    ) -> None:
        self.Close()  # a failed Filter leaves no row of an earlier one behind
        table = self.table
        definition = table.definition
        plan = table.plans.get(indexnum, _Plan())
        constraints: dict[str, list[tuple[int, str]]] = {c.name: [] for c in definition.columns}
        for (name, op), value in zip(plan.terms, constraintargs):
            if isinstance(value, (set, frozenset)):  # IN on an OPTIMIZED column: all values
                values = sorted(value, key=_in_list_order)
                terms = [(EQUALS, expression_text(v)) for v in values]
            else:
                terms = [(op, expression_text(value))]
            constraints[name].extend((o, e) for o, e in terms if e)
        options = {c.name: c.options for c in definition.columns}
        if table.has_required and not any(options[name] & REQUIRED for name, _ in plan.terms):
            log.warning(
                "Table %s was queried without a required column in the WHERE clause",
                definition.name,
            )
            raise SQLError("constraint failed")
        context = generate_context(definition, constraints, plan.cols_used, plan.cols_used_bitset)
        table.scans.append(
            Scan(
                definition.name,
                bool(definition.attributes & _EVENT_BASED),
                frozenset(name for name, terms in constraints.items() if terms),
            )
        )
        used = plan.cols_used if indexnum in table.plans else None
        typed = self._generate({"action": "generate", "context": context}, used)
        rows = itertools.chain(typed, [()])
        loads = map(self._current.__setitem__, itertools.repeat(slice(None)), rows)
        self.Next = functools.partial(next, loads, None)
        self.Next()

    def _generate(
        self, request: dict[str, str], used: Sequence[str] | None
    ) -> Iterable[tuple[object, ...]]:
        """The generate call's rows as _converted gives them. An extension's reply is read
        straight into them where _sqlfast is built (sources.ExtensionTableSource
        .generate_typed with _sqlfast.reply_rows: no dict per row); else call() and
        _converted over the dicts."""
        table = self.table
        definition = table.definition
        generate_typed = getattr(table.source, "generate_typed", None)
        if generate_typed is not None and _sqlfast is not None:
            plan = _column_plan(definition, None if used is None else set(used))
            typed = generate_typed(request, functools.partial(_sqlfast.reply_rows, plan))
            _check_status(typed.status)
            self._count = len(typed.rows)
            if typed.rowids is not None:
                self._rowid_text = typed.rowids.__getitem__
            return typed.rows  # type: ignore[no-any-return]
        response = table.source.call(request)
        _check_status(response.status)
        raw = list(response.response or [])
        self._count = len(raw)
        self._rowid_text = lambda position: raw[position].get("rowid")
        return _converted(definition, raw, used)

    def Rowid(self) -> int:
        position = self._current[-1] if self._current else self._count
        if position >= self._count:  # type: ignore[operator]
            return position  # type: ignore[return-value]
        text = self._rowid_text(position)  # type: ignore[arg-type]
        if text is None:
            return position  # type: ignore[return-value]
        rowid = parse_rowid(text)
        if rowid is None:
            raise SQLError(f"table {self.table.definition.name}: invalid rowid {text!r}")
        return rowid

    def Close(self) -> None:
        self._count = 0
        self._rowid_text = _no_rowid
        self._current.clear()
        self.Next = functools.partial(next, iter(()), None)


def _no_rowid(_position: int) -> None:
    return None


def _check_status(status: ExtensionStatus | None) -> None:
    """A generate call's failure as the query's error (the plugin's message)."""
    if status is None or status.code != 0:
        raise SQLError(status.message if status else "no status")


def _converted(
    definition: TableDef, rows: list[dict[str, str]], used: Sequence[str] | None
) -> Iterator[tuple[object, ...]]:
    """Each row as a tuple in column order, every used column (all when None) cast by its
    type (values.column_value); columns the query does not use stay None. The last item is
    the row's position (SQLite asks Rowid() for the rowid, never Column(-1)).

    Rows that hold every used key (what an extension sends) are gathered row-major by one
    C call each (itemgetter) and converted a column at a time on strided slices of one flat
    list: walking 100k dicts once is ~7x cheaper than once per column. Any other row (a key
    missing) sends the whole batch down _careful_rows."""
    if not rows:
        return iter(())
    columns = definition.columns
    keys = [column.alias_of or column.name for column in columns]
    wanted = None if used is None else set(used)
    positions = [i for i, key in enumerate(keys) if wanted is None or key in wanted]
    if not positions:  # e.g. count(*): SQLite reads no column
        return zip(*[itertools.repeat(None)] * len(columns), range(len(rows)))
    if _sqlfast is not None:
        typed = _sqlfast.typed_rows(rows, _column_plan(definition, wanted))
        return _careful_rows(definition, rows, wanted) if typed is None else iter(typed)
    width = len(positions)
    getter = itemgetter(*(keys[i] for i in positions))
    try:
        gathered = map(getter, rows)
        flat = list(itertools.chain.from_iterable(gathered) if width > 1 else gathered)
    except (KeyError, TypeError):
        return _careful_rows(definition, rows, wanted)
    for slot, i in enumerate(positions):
        ctype = columns[i].type
        if ctype not in _AS_IS:
            flat[slot::width] = convert_column(ctype, flat[slot::width])
    if width == len(columns):  # consecutive runs of `width` cells: the rows
        return zip(*[iter(flat)] * width, range(len(rows)))
    table: list[Iterable[object]] = [itertools.repeat(None)] * len(columns)
    for slot, i in enumerate(positions):
        table[i] = flat[slot::width]
    return zip(*table, range(len(rows)))


_AS_IS = frozenset({TEXT, BLOB})

# core/_sqlfast.c (scripts/build_accel.py): _converted's and _statement_rows' loops in C,
# and reply_rows (an extension's generate reply read straight into _converted's tuples);
# the values' rules still sdk/values.py's (PLAIN_RANGES, column_converter, result_text).
_sqlfast = compiled(f"{__package__}._sqlfast")
ACCELERATED = _sqlfast is not None  # whether the above run compiled


def _column_plan(definition: TableDef, wanted: set[str] | None) -> list[tuple]:
    """_sqlfast.typed_rows' and reply_rows' columns: (key, low, high, convert) each; key
    None when unused, convert None for a value taken as it is, low/high where a plain
    decimal is the value."""
    plan: list[tuple] = []
    for column in definition.columns:
        key = column.alias_of or column.name
        if wanted is not None and key not in wanted:
            plan.append((None, None, None, None))
        elif column.type in _AS_IS:
            plan.append((key, None, None, None))
        else:
            low, high = PLAIN_RANGES.get(column.type, (None, None))
            plan.append((key, low, high, column_converter(column.type)))
    return plan


def _careful_rows(
    definition: TableDef, rows: list[dict[str, str]], wanted: set[str] | None
) -> Iterator[tuple[object, ...]]:
    """_converted by one .get per cell. A key the row lacks reads as "", as in osquery's core
    (DynamicTableRow::get_column looks the column up with std::map's operator[], which adds
    it empty): empty text in a TEXT or BLOB column, NULL in any other."""
    columns: list[Iterable[object]] = []
    for column in definition.columns:
        key = column.alias_of or column.name
        if wanted is not None and key not in wanted:
            columns.append(itertools.repeat(None))
            continue
        columns.append(convert_column(column.type, list(map(methodcaller("get", key, ""), rows))))
    return zip(*columns, range(len(rows)))


class _Module:
    def __init__(self, source: TableSource, default_index: bool, scans: list[Scan]) -> None:
        self.source = source
        self.default_index = default_index
        self.scans = scans

    def Connect(
        self, connection: Any, modulename: str, databasename: str, tablename: str, *args: str
    ):
        response = self.source.call({"action": "columns"})
        if response.status is None or response.status.code != 0 or not response.response:
            message = response.status.message if response.status else "no status"
            raise SQLError(f"table {self.source.name}: {message or 'no columns'}")
        definition = TableDef.from_routes(
            self.source.name,
            response.response,
            is_extension=self.source.is_extension,
            default_index=self.default_index,
        )
        statement = definition.create_statement(is_extension=self.source.is_extension)
        return statement, _VirtualTable(self.source, definition, self.scans)

    Create = Connect


@dataclass
class SQLEngine:
    """Runs SQL over whatever tables `sources()` returns at the time of each query."""

    sources: Callable[[], Mapping[str, TableSource]]
    default_index: bool = True
    nullvalue: str = ""

    def _connect(self, scans: list[Scan] | None = None) -> apsw.Connection:
        conn = apsw.Connection(":memory:")
        sources = self.sources()
        scans = [] if scans is None else scans
        for name, source in sources.items():
            conn.create_module(
                name,
                _Module(source, self.default_index, scans),
                use_bestindex_object=True,
                eponymous=True,
                read_only=not source.is_extension,
            )
        for name, source in sources.items():
            for alias in source.definition.aliases:
                if alias not in sources:
                    conn.execute(
                        f'CREATE TEMP VIEW "{_quote(alias)}" AS SELECT * FROM "{_quote(name)}"'
                    )
        return conn

    def query(self, sql: str) -> QueryResult:
        """Every statement of `sql`; rows map column names to strings (NULL as nullvalue)."""
        return self.query_scanned(sql).result

    def query_scanned(self, sql: str) -> ScannedResult:
        """query(), and the generate calls it made (table, event-based, constrained columns)."""
        return self.query_statements(sql).scanned()

    def query_statements(self, sql: str) -> Statements:
        """Every statement's result as SQLite gives it, not yet text: the core's Thrift
        answer encodes these tuples itself (core/answer.py) instead of dicts of them."""
        scans: list[Scan] = []
        conn = self._connect(scans)
        try:
            cursor = conn.cursor()
            names: list[list[str]] = []

            def remember_columns(cur: apsw.Cursor, _sql: str, _bindings: object) -> bool:
                names.append([d[0] for d in cur.description])
                if len(names) == 2:  # rows of the second statement on come tagged with it
                    cur.row_trace = lambda _cur, row: _Later((len(names) - 1, row))
                return True

            cursor.exec_trace = remember_columns
            with gc_paused():  # 100k-row results: millions of objects, no cycles
                results = list(cursor.execute(sql))
            return Statements(_split_statements(results, names), self.nullvalue, tuple(scans))
        except SQLError:
            raise
        except apsw.Error as exc:
            raise SQLError(str(exc)) from None
        finally:
            conn.close()

    def query_columns(self, sql: str) -> list[tuple[str, str]]:
        """(name, osquery type) of the first statement's result columns, without running it."""
        conn = self._connect()
        try:
            cursor = conn.cursor()
            found: list[tuple[str, str]] = []

            def capture(cur: apsw.Cursor, _sql: str, _bindings: object) -> bool:
                found.extend((d[0], column_type((d[1] or "").upper())) for d in cur.description)
                return False

            cursor.exec_trace = capture
            try:
                cursor.execute(sql)
            except apsw.ExecTraceAbort:
                pass
            return found
        except SQLError:
            raise
        except apsw.Error as exc:
            raise SQLError(str(exc)) from None
        finally:
            conn.close()


class _Later(tuple):  # type: ignore[type-arg]
    """(statement index, row): a result row of a statement after the first."""


class Statements(NamedTuple):
    """A query's result before it becomes text: each statement's rows (SQLite's tuples) with
    its column names, in order, and the generate calls the query made."""

    parts: list[tuple[list[tuple[object, ...]], list[str]]]
    nullvalue: str
    scans: tuple[Scan, ...]

    def as_text(self, value: object) -> str:
        """A value other than str, int or None as result text (values.result_text)."""
        return result_text(value, self.nullvalue)

    def rows(self) -> list[dict[str, str]]:
        """Every result row as {column: text}: what query() returns and osquery answers."""
        with gc_paused():
            out: list[dict[str, str]] = []
            for rows, columns in self.parts:
                texts = _statement_rows(rows, columns, self.nullvalue)
                if out:
                    out.extend(texts)
                else:
                    out = texts
            return out

    def scanned(self) -> ScannedResult:
        """The rows with the first statement's column order and the scans, as the shell,
        the scheduler and query() take a result."""
        columns = self.parts[0][1] if self.parts else []
        return ScannedResult(QueryResult(self.rows(), columns), self.scans)


def _split_statements(
    results: list[Any], names: list[list[str]]
) -> list[tuple[list[tuple[object, ...]], list[str]]]:
    """(rows, columns) of the first statement, then of each later one that gave rows. The
    first statement's rows are plain tuples, fetched by a C loop; later ones' are _Later."""
    if not names:
        return []
    low, high = 0, len(results)
    while low < high:  # the first _Later: every row before it is the first statement's
        middle = (low + high) // 2
        if results[middle].__class__ is _Later:
            high = middle
        else:
            low = middle + 1
    parts = [(results[:low] if low < len(results) else results, names[0])]
    for index, tagged in itertools.groupby(results[low:], key=itemgetter(0)):
        parts.append(([row for _i, row in tagged], names[index]))
    return parts


def _statement_rows(
    rows: list[tuple[object, ...]], columns: list[str], nullvalue: str
) -> list[dict[str, str]]:
    """One statement's rows as {column: text}. Values that are all str, int or None (the
    common result) are converted in one C pass over a flat row-major list; otherwise a
    column at a time, so only the columns holding floats or blobs pay a call per value."""
    if not rows:
        return []

    def as_text(value: object) -> str:
        return result_text(value, nullvalue)

    if _sqlfast is not None:
        texts = _sqlfast.text_rows(rows, columns, nullvalue, as_text)
        if texts is not None:
            return texts  # type: ignore[no-any-return]

    width = len(rows[0])
    flat = list(itertools.chain.from_iterable(rows))
    kinds = set(map(type, flat))
    if kinds <= PLAIN_KINDS and len(flat) == width * len(rows):
        texts = column_text(flat, nullvalue, as_text, kinds)
        table: Iterable[tuple[str, ...]] = zip(*[iter(texts)] * width)
    else:
        table = zip(*(column_text(values, nullvalue, as_text) for values in zip(*rows)))
    return list(map(dict, map(zip, itertools.repeat(columns), table)))


def _quote(identifier: str) -> str:
    return identifier.replace('"', '""')
