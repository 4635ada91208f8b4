"""The result of one query, as osquery's query() API gives it plus the column order."""

from __future__ import annotations

from typing import NamedTuple


class Scan(NamedTuple):
    """One generate call a query made: which table, and which columns had constraints."""

    table: str
    event_based: bool  # the table has osquery's EVENT_BASED attribute
    constrained: frozenset[str]  # columns with a constraint forwarded to the table


class QueryResult(NamedTuple):
    """Rows map column names to strings (NULL as ""); columns is the SELECT order."""

    rows: list[dict[str, str]]
    columns: list[str]


class ScannedResult(NamedTuple):
    """A result and the table scans that made it (osqueryd logs the results of a query that
    scanned an event-based table without a diff)."""

    result: QueryResult
    scans: tuple[Scan, ...]

    @property
    def event_based(self) -> bool:
        return any(scan.event_based for scan in self.scans)
