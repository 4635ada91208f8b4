"""Consumer cursors and eid reservations, pure: a real EventRing with eviction and expiry, a
real state directory, an injected clock. Each consumer gets each event once, across
restarts, whatever the other consumers and concurrent queries do."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from osquery_audit_ext.app.consumers import CURSORS_DOC, ConsumerCursors, Narrowing
from osquery_audit_ext.app.eids import (
    EID_BLOCK,
    EIDS_DOC,
    EidReservation,
    load_eid_marks,
    save_eid_marks,
)
from osquery_audit_ext.app.state import StateDir
from osquery_audit_ext.errors import StateError
from osquery_audit_ext.events.ring import EventRing

TABLE = "process_events"


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Run:
    """One run of the extension over a state directory: reservation, ring, cursors."""

    def __init__(
        self, path: Path, clock: Clock, capacity: int = 1000, expiry: float = 3600
    ) -> None:
        self.clock = clock
        self.state = StateDir(path).open()
        self.cursors = ConsumerCursors(self.state, expiry, clock)
        self.eids = EidReservation(self.state, floor=self.cursors.max_cursor)
        self.ring = EventRing(capacity, expiry, clock, next_eid=self.eids.start(TABLE))
        self.eids.reserve({TABLE: self.ring})

    def append(self, count: int, pid: int = 100, when: float | None = None) -> list[int]:
        self.eids.reserve({TABLE: self.ring}, count)
        stamp = int(self.clock.now if when is None else when)
        return [self.ring.append(stamp, pid, f"item{i}") for i in range(count)]

    def read(self, consumer: str, narrowing: Narrowing | None = None) -> list[int]:
        entries = self.cursors.read(
            TABLE,
            self.ring,
            consumer,
            run_start=self.eids.start(TABLE),
            narrowing=narrowing or Narrowing(),
        )
        return [eid for eid, *_ in entries]

    def consumer(self, name: str):
        return {row.consumer: row for row in self.cursors.rows({TABLE: self.ring})}.get(name)

    def close(self) -> None:
        self.state.close()


@pytest.fixture
def run(tmp_path: Path):
    r = Run(tmp_path / "state", Clock())
    yield r
    r.close()


def test_each_event_once_then_only_new_ones(run: Run):
    first = run.append(5)
    assert run.read("siem") == first
    assert run.read("siem") == []
    more = run.append(3)
    assert run.read("siem") == more
    row = run.consumer("siem")
    assert (row.state.cursor, row.state.delivered, row.state.missed, row.pending) == (8, 8, 0, 0)


def test_other_constraints_narrow_and_the_cursor_moves_past_everything_considered(run: Run):
    run.append(1, pid=1)
    run.append(1, pid=2)
    run.append(1, pid=1)
    assert run.read("pid1", Narrowing(pids={1})) == [1, 3]
    run.append(1, pid=2)
    assert run.read("pid1", Narrowing(pids={1})) == []
    # That pid 2 event was considered by the last query: never handed out later.
    (late,) = run.append(1, pid=2)
    assert run.read("pid1") == [late]
    run.append(2, when=run.clock.now - 100)
    (recent,) = run.append(1)
    assert run.read("recent", Narrowing(time_min=run.clock.now - 10)) == [1, 2, 3, 4, 5, recent]


def test_consumers_are_independent(run: Run):
    events = run.append(4)
    assert run.read("a") == events
    more = run.append(2)
    assert run.read("b") == events + more  # a new consumer starts at the oldest held
    assert run.read("a") == more
    assert run.read("b") == []
    assert run.consumer("a").state.delivered == run.consumer("b").state.delivered == 6


def test_events_evicted_by_count_before_the_read_are_counted_as_missed(tmp_path: Path):
    r = Run(tmp_path, Clock(), capacity=3)
    r.append(1)
    assert r.read("slow") == [1]
    r.append(5)  # eids 2..6; the ring keeps 4, 5, 6
    assert r.read("slow") == [4, 5, 6]
    row = r.consumer("slow")
    assert (row.state.missed, row.state.delivered, row.state.cursor) == (2, 4, 6)
    # A consumer's first read counts nothing missed: it was not waiting for those events.
    assert r.read("new") == [4, 5, 6]
    assert r.consumer("new").state.missed == 0
    r.close()


def test_events_expired_before_the_read_are_counted_as_missed(tmp_path: Path):
    clock = Clock()
    r = Run(tmp_path, clock, expiry=10)
    r.append(2, when=clock.now - 9)
    assert r.read("c") == [1, 2]
    # A late event (a blocking accept carries the time it started) expires before the
    # consumer, idle for less than the expiry, asks again.
    r.append(1, when=clock.now - 8)
    (kept,) = r.append(1)
    clock.now += 3
    assert r.read("c") == [kept]
    assert r.consumer("c").state.missed == 1
    r.close()


def test_idle_consumers_are_forgotten_after_the_expiry(tmp_path: Path):
    clock = Clock()
    r = Run(tmp_path, clock, expiry=10)
    r.append(1)
    r.read("gone")
    clock.now += 5
    r.read("kept")
    clock.now += 6
    assert [row.consumer for row in r.cursors.rows({TABLE: r.ring})] == ["kept"]
    saved = json.loads((tmp_path / f"{CURSORS_DOC}.json").read_text())
    assert list(saved[TABLE]) == ["kept"]
    r.close()


def test_restart_neither_redelivers_nor_skips(tmp_path: Path):
    clock = Clock()
    first = Run(tmp_path, clock)
    before = first.append(10)
    assert first.read("siem") == before
    first.append(3)  # buffered but not read: lost with the in-memory ring at the crash
    first.close()  # a crash: nothing but what was already saved survives

    second = Run(tmp_path, clock)
    assert second.eids.start(TABLE) > max(before) + 3  # eids never go back
    assert second.read("siem") == []  # nothing of the first run handed out again
    after = second.append(4)
    assert min(after) > max(before)
    assert second.read("siem") == after  # and nothing new skipped
    row = second.consumer("siem")
    # The 3 unread events of the first run cannot be counted: the state never held them.
    assert (row.state.delivered, row.state.missed) == (14, 0)
    second.close()


def test_cursors_above_lost_eid_marks_still_start_the_run_above_them(tmp_path: Path):
    clock = Clock()
    first = Run(tmp_path, clock)
    first.append(7)
    first.read("siem")
    first.close()
    (tmp_path / f"{EIDS_DOC}.json").unlink()  # the marks lost, the cursors not
    second = Run(tmp_path, clock)
    assert second.eids.start(TABLE) == 8
    assert second.read("siem") == []
    assert second.read("siem") == [] and second.append(2) == [8, 9]
    assert second.read("siem") == [8, 9]
    second.close()


def test_a_failed_save_fails_the_read_and_moves_no_cursor(tmp_path: Path):
    r = Run(tmp_path / "state", Clock())
    events = r.append(3)
    assert r.read("c") == events
    more = r.append(2)
    shutil.rmtree(tmp_path / "state")  # the directory vanished under us: writes fail
    with pytest.raises(StateError):
        r.read("c")
    (tmp_path / "state").mkdir()
    assert r.read("c") == more  # the same events, once the write succeeds
    r.close()


def test_concurrent_reads_of_one_consumer_never_share_an_event(run: Run):
    total = 20_000
    readers = 8
    got: list[list[int]] = [[] for _ in range(readers)]
    done = threading.Event()

    def append() -> None:
        for _ in range(total // 100):
            run.append(100)
        done.set()

    def read(slot: int) -> None:
        while not done.is_set():
            got[slot].extend(run.read("shared"))
        got[slot].extend(run.read("shared"))

    threads = [threading.Thread(target=append)]
    threads += [threading.Thread(target=read, args=(i,)) for i in range(readers)]
    run.ring = EventRing(total, 0, run.clock, next_eid=run.eids.start(TABLE))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    delivered = [eid for chunk in got for eid in chunk]
    assert len(delivered) == len(set(delivered)) == total
    assert sorted(delivered) == list(range(min(delivered), min(delivered) + total))
    assert all(chunk == sorted(chunk) for chunk in got)


def test_eid_marks_are_written_once_per_block(tmp_path: Path):
    state = StateDir(tmp_path).open()
    reservation = EidReservation(state, block=100)
    ring = EventRing(10, 0, next_eid=reservation.start(TABLE))
    reservation.reserve({TABLE: ring})
    assert load_eid_marks(state) == {TABLE: 101}
    file = tmp_path / f"{EIDS_DOC}.json"
    written = file.stat().st_mtime_ns
    for _ in range(98):
        reservation.reserve({TABLE: ring}, 1)
        ring.append(1, 1, None)
    assert file.stat().st_mtime_ns == written and load_eid_marks(state) == {TABLE: 101}
    reservation.reserve({TABLE: ring}, 5)  # eids 99..103 would pass the mark: reserve first
    assert load_eid_marks(state) == {TABLE: 99 + 5 + 100}
    state.close()


def test_eid_marks_keep_other_tables_and_ignore_junk(tmp_path: Path):
    state = StateDir(tmp_path).open()
    save_eid_marks(state, {"user_events": 500, TABLE: 7})
    (tmp_path / f"{EIDS_DOC}.json").write_text('{"process_events": 7, "bad": "x", "neg": -3}')
    assert load_eid_marks(state) == {TABLE: 7}
    save_eid_marks(state, {"user_events": 500, TABLE: 7})
    reservation = EidReservation(state, block=10)
    assert reservation.start(TABLE) == 7 and reservation.start("new_events") == 1
    reservation.reserve({TABLE: EventRing(1, 0, next_eid=7)})
    assert load_eid_marks(state) == {"user_events": 500, TABLE: 17}
    state.close()


def test_default_block_is_large_enough_to_write_rarely():
    assert EID_BLOCK >= 10_000


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("append"), st.integers(1, 40)),
            st.tuples(st.just("tick"), st.integers(1, 8)),
            st.tuples(st.just("read"), st.sampled_from(["a", "b"])),
            st.tuples(st.just("restart"), st.just(0)),
        ),
        max_size=40,
    )
)
def test_property_never_twice_and_every_event_delivered_or_missed(tmp_path_factory, steps):
    """Whatever the appends, clock, reads and restarts: no consumer gets an eid twice, eids
    only grow, and every event after a consumer's first read is delivered or counted missed
    (except those unread at a restart: the in-memory ring loses them)."""
    path = tmp_path_factory.mktemp("prop")
    clock = Clock()
    expiry = 20
    r = Run(path, clock, capacity=25, expiry=expiry)
    seen: dict[str, list[int]] = {"a": [], "b": []}
    first_head: dict[str, int] = {}
    last_read: dict[str, float] = {}
    forgotten: set[str] = set()
    lost: dict[str, set[int]] = {"a": set(), "b": set()}
    appended: list[int] = []

    def read(name: str) -> None:
        if name not in first_head:
            first_head[name] = r.ring.next_eid - 1
        elif last_read[name] < clock.now - expiry:
            forgotten.add(name)
        last_read[name] = clock.now
        seen[name].extend(r.read(name))

    for op, arg in steps:
        if op == "append":
            new = r.append(arg)
            assert not appended or min(new) > max(appended)
            appended += new
        elif op == "tick":
            clock.now += arg
        elif op == "read":
            read(arg)
        else:
            for name in first_head:
                row = r.consumer(name)
                cursor = row.state.cursor if row else 0
                # Unread at the restart: gone with the in-memory ring, evicted or not, and
                # not counted (the next run cannot know them) until the ring is durable.
                lost[name].update(e for e in appended if e > cursor)
            r.close()
            r = Run(path, clock, capacity=25, expiry=expiry)
    for name in list(first_head):
        read(name)
    for name, eids in seen.items():
        assert len(eids) == len(set(eids)) and eids == sorted(eids)
        if name not in first_head or name in forgotten:
            continue
        owed = {e for e in appended if e > first_head[name]} - lost[name]
        delivered = {e for e in eids if e > first_head[name]}
        assert delivered <= owed
        assert len(delivered) + r.consumer(name).state.missed == len(owed)
    r.close()
