"""The result of one query, as osquery's query() API gives it plus the column order."""

from __future__ import annotations

from typing import NamedTuple


class QueryResult(NamedTuple):
    """Rows map column names to strings (NULL as ""); columns is the SELECT order."""

    rows: list[dict[str, str]]
    columns: list[str]
