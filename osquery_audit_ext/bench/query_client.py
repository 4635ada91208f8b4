"""One timed query from a process of its own, as `osquery-audit-ext query` runs beside osqueryd.

The end-to-end figures time a query the way a user meets it: a client process asks the core's
socket, the core calls the extension, and the client decodes the reply. Run in the bench's own
process the client would share the embedded core's interpreter (and its GIL), which no user's
client does. Prints one JSON line: the query's wall and CPU seconds in this process (the
interpreter's start and the imports excluded) and the rows it got.

    python -m osquery_audit_ext.bench.query_client SOCKET SQL
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence

from ..sdk.client import QueryError, query


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m osquery_audit_ext.bench.query_client SOCKET SQL", file=sys.stderr)
        return 2
    socket_path, sql = args
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        rows = query(socket_path, sql).rows
    except QueryError as exc:
        print(json.dumps({"error": str(exc)}))
        return 1
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    first = rows[0] if rows else {}
    print(json.dumps({"wall": wall, "cpu": cpu, "rows": len(rows), "first": first}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
