"""Records made while no run read them: the serial gap between two runs on one boot."""

from __future__ import annotations

from osquery_audit_ext.app.serials import DOCUMENT, SerialWatch, boot_id
from osquery_audit_ext.app.state import StateDir
from osquery_audit_ext.events.coalesce import Coalescer


def read(serials: list[int]) -> Coalescer:
    coalescer = Coalescer()
    for serial in serials:
        coalescer.add(1300, f"audit(1700000000.000:{serial}): arch=c000003e".encode(), 0.0)
    return coalescer


def test_gap_between_runs_wraps_and_needs_the_same_boot(tmp_path):
    with StateDir(tmp_path) as state:
        first = SerialWatch(state)
        first.load()
        first.checkpoint(read([4294967290, 4294967295]))
        assert first.missed is None  # no run before it
        assert state.load(DOCUMENT) == {"boot_id": boot_id(), "serial": 4294967295}
        second = SerialWatch(state)
        second.load()
        second.checkpoint(read([3, 4]))  # serials 0, 1, 2 were made while nobody read
        assert second.missed == 3
        behind = SerialWatch(state)
        behind.load()
        behind.checkpoint(read([2]))  # before the last one saved: no claim
        assert behind.missed is None
        state.save(DOCUMENT, {"boot_id": "another boot", "serial": 1})
        other = SerialWatch(state)
        other.load()
        other.checkpoint(read([100]))
        assert other.missed is None
