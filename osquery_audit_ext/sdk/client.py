"""Query any osquery-compatible extension manager socket (the embedded core or a real
osqueryd at `/var/osquery/osquery.em`); `formats` prints the result as osqueryi does."""

from __future__ import annotations

import itertools

from ..errors import AuditExtError
from .result import QueryResult
from .transport import ThriftConnectError, connect

DEFAULT_SOCKET = "/var/osquery/osquery.em"


class QueryError(AuditExtError):
    """The manager answered with an SQL error, or could not be reached."""


def query(socket_path: str, sql: str, *, timeout: float | None = 600.0) -> QueryResult:
    """Run `sql` on the manager at `socket_path`: (rows, column order)."""
    try:
        with connect(socket_path, timeout) as client:
            response = client.query(sql)
            status = response.status if response is not None else None
            if status is None or status.code != 0:
                raise QueryError(status.message if status else "no status in the query reply")
            rows = list(response.response or [])
            if set(map(type, rows)) - {dict}:
                rows = [row if row.__class__ is dict else dict(row) for row in rows]
            described = client.getQueryColumns(sql)
    except ThriftConnectError as exc:
        raise QueryError(f"cannot reach the osquery extension manager: {exc}") from None
    columns: list[str] = []
    if described is not None and described.status is not None and described.status.code == 0:
        columns = [name for entry in described.response or [] for name in entry]
    # Keys getQueryColumns did not name (e.g. a later statement's), in order of first row;
    # rows whose keys are all named (a C test against a set per row) add none.
    named = set(columns)
    for row in itertools.filterfalse(named.issuperset, rows):
        extra = sorted(k for k in row if k not in named)
        columns.extend(extra)
        named.update(extra)
    return QueryResult(rows, columns)
