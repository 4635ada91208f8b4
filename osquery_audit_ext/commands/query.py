"""`query [--socket PATH] [--json|--csv|--line] SQL`: one query on an osquery manager socket.

Works against osqueryd's own socket as well as against `daemon`. Exits non-zero on SQL
and connection errors.
"""

from __future__ import annotations

import argparse
import sys

from ..sdk.client import DEFAULT_SOCKET, query
from ..sdk.formats import render


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--socket",
        default=DEFAULT_SOCKET,
        help=f"extension manager socket (default {DEFAULT_SOCKET})",
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait for the answer"
    )
    mode = parser.add_mutually_exclusive_group()
    for name in ("json", "csv", "line"):
        mode.add_argument(
            f"--{name}", dest="mode", action="store_const", const=name, help=f"{name} output"
        )
    parser.set_defaults(mode="pretty")
    parser.add_argument("sql", metavar="SQL", help="the query")


def run(args: argparse.Namespace) -> int:
    result = query(args.socket, args.sql, timeout=args.timeout)
    sys.stdout.write(render(result, args.mode))
    return 0
