"""Golden data shared by the test folders: record logs (events/golden) and netlink captures
(audit/golden), and the events a coalescer makes of a record log."""

from __future__ import annotations

import json
from pathlib import Path

from osquery_audit_ext.events.coalesce import Coalescer, Event

TESTS = Path(__file__).resolve().parents[1]
RECORDS_GOLDEN = TESTS / "events" / "golden"  # audit record logs -> rows
AUDIT_GOLDEN = TESTS / "audit" / "golden"  # netlink frames and status replies


def audit_golden(name: str) -> dict:
    return json.loads((AUDIT_GOLDEN / name).read_text())


def read_log(path: Path) -> list[tuple[int, bytes]]:
    """(type, payload) of each record line of a golden log (`TYPE audit(...): body`)."""
    out = []
    for line in path.read_bytes().splitlines():
        if line and not line.startswith(b"#"):
            msg_type, _, payload = line.partition(b" ")
            out.append((int(msg_type), payload))
    return out


def events_of(lines: list[tuple[int, bytes]]) -> list[Event]:
    """The events a coalescer makes of these records, then of what it holds at the end."""
    coalescer = Coalescer()
    events: list[Event] = []
    for msg_type, payload in lines:
        events.extend(coalescer.add(msg_type, payload, 0.0))
    return events + coalescer.flush()
