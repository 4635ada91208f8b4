"""The durable ring through the service, without the kernel: what one run routed is in the
next run's rings with the same eids, after the eid mark a reservation left, and bounded."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from osquery_audit_ext.app.eids import load_eid_marks, save_eid_marks
from osquery_audit_ext.app.service import AuditService
from osquery_audit_ext.app.settings import RingSettings, Settings
from osquery_audit_ext.app.state import StateDir, StateSettings
from osquery_audit_ext.bench.ringbench import connect_event_records, exec_event_records, fill


def service(directory: Path, capacity: int = 1000, **state: object) -> AuditService:
    """A service whose durable ring is open (not started: no kernel)."""
    settings = replace(
        Settings(),
        ring=RingSettings(capacity=capacity, expiry=0),
        state=StateSettings(str(directory), **state),  # type: ignore[arg-type]
    )
    run = AuditService(settings)
    run.state.open()
    run.open_durable_ring()
    return run


def stop(run: AuditService) -> None:
    run.close_durable_ring()
    run.state.close()


def rows(run: AuditService, table: str) -> list[tuple[int, dict]]:
    build = run.router.builder(table)
    return [(eid, build(item)) for eid, _t, _p, item in run.router.rings()[table].query()]


def test_events_come_back_with_their_eids_and_new_ones_follow_the_mark(tmp_path):
    first = service(tmp_path)
    fill(first, exec_event_records, 30)
    fill(first, connect_event_records, 20)
    before = {t: rows(first, t) for t in ("process_events", "socket_events")}
    stop(first)
    marks = load_eid_marks_of(tmp_path)  # reserved ahead, in blocks (eids.py)
    assert marks["process_events"] > 30 and marks["socket_events"] > 20
    # A reservation (consumer cursors) left the marks further on: new eids start there.
    with_state(tmp_path, lambda state: save_eid_marks(state, {"process_events": 5000}))
    second = service(tmp_path)
    try:
        assert second.events_recovered == 50 and second.ring_torn == 0
        for table, expected in before.items():
            assert rows(second, table) == expected
        fill(second, exec_event_records, 2)
        eids = [eid for eid, _row in rows(second, "process_events")]
        assert eids[:30] == list(range(1, 31)) and eids[30:] == [5000, 5001]
        assert second.process_ring.query(eid_min=31, eid_max=4999) == []
    finally:
        stop(second)
    assert load_eid_marks_of(tmp_path)["process_events"] >= 5002


def test_disk_stays_bounded_by_the_ring(tmp_path):
    run = service(tmp_path, capacity=100)
    try:
        for journal in (run.router.journals or {}).values():
            journal.segment_bytes = 4096  # small segments, so eviction deletes some
        fill(run, connect_event_records, 3000)
        segments = list((tmp_path / "ring" / "socket_events").glob("*.seg"))
        kept = sum(p.stat().st_size for p in segments)
        assert len(run.socket_ring) == 100
        assert kept < 3 * 4096 + 4096  # the ring's 100 events plus the segment being written
    finally:
        stop(run)
    again = service(tmp_path, capacity=100)
    try:
        assert len(again.socket_ring) == 100
        assert [e[0] for e in again.socket_ring.query()] == list(range(2901, 3001))
    finally:
        stop(again)


def test_ring_off_writes_nothing(tmp_path):
    run = service(tmp_path, ring=False)
    fill(run, exec_event_records, 5)
    stop(run)
    assert not (tmp_path / "ring").exists()


def with_state(directory: Path, action) -> None:
    with StateDir(directory) as state:
        action(state)


def load_eid_marks_of(directory: Path) -> dict[str, int]:
    with StateDir(directory) as state:
        return load_eid_marks(state)
