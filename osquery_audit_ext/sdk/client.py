"""Query any osquery-compatible extension manager socket (the embedded core or a real
osqueryd at `/var/osquery/osquery.em`); `formats` prints the result as osqueryi does."""

from __future__ import annotations

import itertools
from typing import Any

from ..accel import compiled
from ..errors import AuditExtError
from ..keysharing import key_sharing_view
from .result import QueryResult
from .transport import ThriftConnectError, accelerated, connect, read_reply

# sdk/_thriftfast.c (scripts/build_accel.py): the answer's rows read off the socket into
# key-sharing dicts; thrift's own decoder otherwise. Used where thrift's fastbinary is
# there too (the decoder it stands in for, and is tested against).
_thriftfast = compiled(f"{__package__}._thriftfast")
ACCELERATED = _thriftfast is not None  # whether answers are read by text_reply

DEFAULT_SOCKET = "/var/osquery/osquery.em"


class QueryError(AuditExtError):
    """The manager answered with an SQL error, or could not be reached."""


def query(socket_path: str, sql: str, *, timeout: float | None = 600.0) -> QueryResult:
    """Run `sql` on the manager at `socket_path`: (rows, column order)."""
    try:
        with connect(socket_path, timeout) as client:
            code, message, rows = _answer(client, sql)
            if code != 0:
                raise QueryError(message if code is not None else "no status in the query reply")
            described = client.getQueryColumns(sql)
    except ThriftConnectError as exc:
        raise QueryError(f"cannot reach the osquery extension manager: {exc}") from None
    except ValueError as exc:  # text_reply: bytes that are no query answer
        raise QueryError(f"cannot read the answer of {socket_path}: {exc}") from None
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


def _answer(client: Any, sql: str) -> tuple[int | None, str, list[dict[str, str]]]:
    """(status code, status message, rows) of the query; code None without a status."""
    if _thriftfast is not None and accelerated():
        client.send_query(sql)
        status, rows = read_reply(
            client._iprot, lambda read: _thriftfast.text_reply(read, key_sharing_view)
        )
        code, message, _uuid = status or (None, None, None)
        return code, message or "", rows or []
    response = client.query(sql)
    status = response.status if response is not None else None
    if status is None:
        return None, "", []
    rows = list(response.response or [])
    if set(map(type, rows)) - {dict}:
        rows = [row if row.__class__ is dict else dict(row) for row in rows]
    return status.code, status.message or "", rows
