"""A benchmark extension: process_events and socket_events over rings filled with synthetic
events (ringbench's record text, through the real coalescer, router and ring), served as
osquery autoloads an extension. The end-to-end query figures are timed against it: client
-> core -> Thrift -> this process -> Thrift -> core's SQLite -> client. Needs no kernel audit.

    python -m osquery_audit_ext.bench.ring_extension --events N --socket S --state-dir D [...]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..app.service import AuditService
from ..app.tables import EventTable
from ..sdk.runtime import run_extension
from .ringbench import (
    RING_EXTENSION,
    connect_event_records,
    exec_event_records,
    fill,
    ring_settings,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m osquery_audit_ext.bench.ring_extension")
    parser.add_argument("--events", type=int, required=True, help="events per table")
    parser.add_argument("--socket", required=True)
    parser.add_argument(
        "--state-dir", type=Path, required=True, help="the extension's state dir (a temporary one)"
    )
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--interval", type=float, default=3.0)
    parser.add_argument("--verbose", action="store_true")
    args, _unknown = parser.parse_known_args(argv)  # as osquery's autoload may add flags
    service = AuditService(ring_settings(args.events, args.state_dir))
    fill(service, exec_event_records, args.events)
    fill(service, connect_event_records, args.events)
    tables = [
        EventTable(name, ring, service.router.builder(name))
        for name, ring in service.router.rings().items()
    ]
    return run_extension(
        RING_EXTENSION,
        "bench",
        tables,
        socket_path=args.socket,
        timeout=args.timeout,
        interval=args.interval,
        verbose=args.verbose,
    )


if __name__ == "__main__":
    sys.exit(main())
