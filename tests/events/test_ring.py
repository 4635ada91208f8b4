"""The event ring: eids, eviction by count and age, and queries equal to a brute-force scan."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from osquery_audit_ext.events.ring import EventRing

FIELDS = ("eid", "time", "pid", "item")  # what a query returns per entry


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def put(ring: EventRing, pid: int, when: int | None, item: object = "x") -> int:
    return ring.append(when, pid, item)


def field(entries: list[tuple], name: str) -> list[object]:
    index = FIELDS.index(name)
    return [e[index] for e in entries]


def test_entries_come_back_with_monotonic_eids() -> None:
    ring = EventRing(capacity=10, expiry=3600, clock=Clock())
    assert put(ring, 1, 1000, ("a",)) == 1
    assert put(ring, 2, 1000, ("b",)) == 2
    assert ring.query() == [(1, 1000, 1, ("a",)), (2, 1000, 2, ("b",))]
    assert len(ring) == 2 and ring.capacity == 10 and ring.last_eid == 2


def test_repeated_times_and_pids_are_shared() -> None:
    ring = EventRing(capacity=10, expiry=3600, clock=Clock(10**9))
    put(ring, int("123456"), int("999999999"))
    put(ring, int("123456"), int("999999999"))
    a, b = ring.query()
    assert a[1] is b[1]  # time shared (above the small-int cache)
    assert a[2] is b[2]  # pid


def test_count_eviction_drops_the_oldest() -> None:
    ring = EventRing(capacity=3, expiry=3600, clock=Clock())
    for pid in range(1, 6):
        put(ring, pid, 1000)
    assert field(ring.query(), "eid") == [3, 4, 5]
    assert ring.evicted == 2 and ring.evicted_by_age == 0 and len(ring) == 3


def test_age_eviction_uses_the_rows_own_time() -> None:
    clock = Clock(1000.0)
    ring = EventRing(capacity=100, expiry=60, clock=clock)
    put(ring, 1, 900)  # already older than 60 s: evicted at once
    put(ring, 2, 950)
    put(ring, 3, 990)
    assert field(ring.query(), "pid") == [2, 3]
    clock.now = 1011.0
    assert field(ring.query(), "pid") == [3]
    ring.expire(1051.0)
    assert ring.query() == [] and len(ring) == 0
    assert ring.evicted == 3 and ring.evicted_by_age == 3
    assert put(ring, 4, 1050) == 4  # eids keep counting after the ring emptied


def test_zero_expiry_keeps_rows_of_any_age() -> None:
    ring = EventRing(capacity=2, expiry=0, clock=Clock(10**9))
    put(ring, 1, 1)
    ring.expire()
    assert field(ring.query(), "pid") == [1] and ring.evicted == 0


def test_eid_bounds() -> None:
    ring = EventRing(capacity=5, expiry=3600, clock=Clock())
    for pid in range(1, 9):
        put(ring, pid, 1000)
    assert field(ring.query(eid_min=5), "eid") == [5, 6, 7, 8]
    assert field(ring.query(eid_min=1, eid_max=5), "eid") == [4, 5]
    assert field(ring.query(eid_min=7, eid_max=7), "eid") == [7]
    assert ring.query(eid_min=9) == [] and ring.query(eid_max=3) == []
    assert ring.query(eid_min=6, eid_max=5) == []


def test_time_bounds_with_rows_out_of_time_order() -> None:
    ring = EventRing(capacity=100, expiry=10**9, clock=Clock(2000.0))
    for pid, when in enumerate([1000, 1001, 1500, 1002, 1003, 1600, 1004], start=1):
        put(ring, pid, when)  # 1002 after 1500: a blocking accept, say
    assert field(ring.query(time_min=1003), "time") == [1500, 1003, 1600, 1004]
    assert field(ring.query(time_max=1002), "time") == [1000, 1001, 1002]
    assert field(ring.query(time_min=1001, time_max=1003), "time") == [1001, 1002, 1003]
    assert field(ring.query(time_min=1500, time_max=1500), "pid") == [3]


def test_rows_without_time_never_match_time_bounds() -> None:
    ring = EventRing(capacity=10, expiry=3600, clock=Clock())
    put(ring, 1, None)
    put(ring, 2, 999)
    assert field(ring.query(), "pid") == [1, 2]
    assert field(ring.query(time_min=0), "pid") == [2]


def test_pid_filter() -> None:
    ring = EventRing(capacity=10, expiry=3600, clock=Clock())
    for pid in (5, 6, 5, 7):
        put(ring, pid, 1000)
    assert field(ring.query(pids={5, 7}), "eid") == [1, 3, 4]
    assert ring.query(pids=set()) == []


def test_compaction_keeps_eids_and_order() -> None:
    ring = EventRing(capacity=50, expiry=10**9, clock=Clock())
    for i in range(5000):
        put(ring, i, 1000 + i)
    rows = ring.query()
    assert field(rows, "eid") == list(range(4951, 5001))
    assert field(ring.query(time_min=5990), "eid") == list(range(4991, 5001))


def test_eids_continue_from_next_eid() -> None:
    ring = EventRing(capacity=3, expiry=10**9, clock=Clock(), next_eid=70_000)
    assert ring.next_eid == 70_000 and ring.last_eid == 0 and ring.query() == []
    for pid in range(5):
        put(ring, pid, 1000)
    assert field(ring.query(), "eid") == [70_002, 70_003, 70_004]
    assert field(ring.query(eid_min=70_003, eid_max=70_003), "pid") == [3]
    assert ring.query(eid_max=70_001) == [] and ring.last_eid == 70_004


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        EventRing(capacity=0, expiry=1)
    with pytest.raises(ValueError):
        EventRing(capacity=1, expiry=1, next_eid=0)


@st.composite
def ring_script(draw: st.DrawFn) -> tuple[int, int, list[tuple[int, int, float]]]:
    """Capacity, expiry, and (pid, time, clock) appends with times mostly rising."""
    capacity = draw(st.integers(1, 30))
    expiry = draw(st.integers(5, 200))
    appends = []
    clock = 1000.0
    base = 1000
    for _ in range(draw(st.integers(0, 80))):
        clock += draw(st.sampled_from([0, 0, 1, 2, 5]))
        base += draw(st.sampled_from([0, 0, 1, 3]))
        lag = draw(st.sampled_from([0, 0, 0, 0, 1, 7, 40]))  # some rows are older
        appends.append((draw(st.integers(1, 6)), base - lag, clock))
    return capacity, expiry, appends


bound = st.none() | st.integers(900, 1300)


def scan(model, time_min, time_max, eid_min, eid_max, pids) -> list[tuple]:
    """The brute-force answer: every model entry inside each bound (inclusive)."""
    return [
        r
        for r in model
        if (time_min is None or r[1] >= time_min)
        and (time_max is None or r[1] <= time_max)
        and (eid_min is None or r[0] >= eid_min)
        and (eid_max is None or r[0] <= eid_max)
        and (pids is None or r[2] in pids)
    ]


@settings(max_examples=300, deadline=None)
@given(
    ring_script(),
    bound,
    bound,
    st.none() | st.integers(-2, 90),
    st.none() | st.integers(-2, 90),
    st.none() | st.sets(st.integers(0, 7), max_size=4),
)
def test_query_equals_brute_force(
    script: tuple[int, int, list[tuple[int, int, float]]],
    time_min: int | None,
    time_max: int | None,
    eid_min: int | None,
    eid_max: int | None,
    pids: set[int] | None,
) -> None:
    capacity, expiry, appends = script
    clock = Clock(1000.0)
    ring = EventRing(capacity=capacity, expiry=expiry, clock=clock)
    model: list[tuple] = []  # what the ring must hold: a plain list, evicted by the rules
    for eid, (pid, when, now) in enumerate(appends, start=1):
        clock.now = now
        assert put(ring, pid, when) == eid
        model.append((eid, when, pid, "x"))
        model = model[-capacity:]
        while model and model[0][1] < now - expiry:
            model.pop(0)
    assert ring.query() == model
    got = ring.query(
        time_min=time_min, time_max=time_max, eid_min=eid_min, eid_max=eid_max, pids=pids
    )
    want = scan(model, time_min, time_max, eid_min, eid_max, pids)
    assert got == want
    assert ring.evicted == len(appends) - len(model)


@settings(max_examples=300, deadline=None)
@given(
    ring_script(),
    st.lists(st.sampled_from([0, 0, 0, 0, 0, 0, 1, 2, 30]), min_size=80, max_size=80),
    st.integers(1, 40),
    bound,
    bound,
    st.none() | st.integers(-2, 400),
    st.none() | st.integers(-2, 400),
)
def test_restarts_keep_eids_and_leave_gaps(
    script: tuple[int, int, list[tuple[int, int, float]]],
    restarts: list[int],
    first: int,
    time_min: int | None,
    time_max: int | None,
    eid_min: int | None,
    eid_max: int | None,
) -> None:
    """Before some appends the ring is rebuilt as a restart does: its entries restored with
    their eids, the next eid `gap` further on (a reserved block); queries still equal a scan."""
    capacity, expiry, appends = script
    clock = Clock(1000.0)
    ring = EventRing(capacity=capacity, expiry=expiry, clock=clock, next_eid=first)
    model: list[tuple] = []
    next_eid = first
    for (pid, when, now), gap in zip(appends, restarts):
        clock.now = now
        while model and model[0][1] < now - expiry:
            model.pop(0)
        if gap:
            reserved = ring.next_eid + gap - 1
            ring = EventRing(capacity=capacity, expiry=expiry, clock=clock, next_eid=1)
            assert ring.restore(model, next_eid=reserved) == len(model)
            next_eid = max(next_eid, reserved)
            assert ring.next_eid == next_eid and ring.query() == model
        assert put(ring, pid, when) == next_eid
        model.append((next_eid, when, pid, "x"))
        next_eid += 1
        model = model[-capacity:]
        while model and model[0][1] < now - expiry:
            model.pop(0)
        ring.expire()  # appends check age only every half second
        assert ring.first_eid == (model[0][0] if model else next_eid)
    assert ring.query() == model
    got = ring.query(time_min=time_min, time_max=time_max, eid_min=eid_min, eid_max=eid_max)
    want = scan(model, time_min, time_max, eid_min, eid_max, None)
    assert got == want
    for eid, *_rest in model:
        assert ring.query(eid_min=eid, eid_max=eid)[0][0] == eid


def test_restore_skips_entries_not_newer_and_compacts_across_a_gap() -> None:
    ring = EventRing(capacity=3000, expiry=0, clock=Clock(), next_eid=500)
    assert (
        ring.restore([(10, 1, 1, "a"), (11, 1, 1, "b"), (11, 1, 1, "dup"), (5, 1, 1, "old")]) == 2
    )
    assert ring.next_eid == 500 and ring.last_eid == 11 and ring.first_eid == 10
    for _ in range(2500):  # past the compaction threshold, across the gap
        put(ring, 1, 2)
    got = ring.query()
    assert [e[0] for e in got[:3]] == [10, 11, 500] and got[-1][0] == 2999
    assert ring.query(eid_min=12, eid_max=499) == []
    small = EventRing(capacity=2, expiry=0, clock=Clock())
    small.restore([(7, 1, 1, "a"), (8, 1, 1, "b")], next_eid=100)
    put(small, 1, 1)
    put(small, 1, 1)
    assert [e[0] for e in small.query()] == [100, 101] and small.first_eid == 100
    with pytest.raises(ValueError, match="eids start at 1"):
        EventRing(capacity=1, expiry=0, next_eid=0)


def test_queries_run_while_the_reader_appends() -> None:
    ring = EventRing(capacity=500, expiry=10**9, clock=Clock())
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for i in range(20000):
                put(ring, i % 50, 1000 + i // 10)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            stop.set()

    thread = threading.Thread(target=writer)
    thread.start()
    queries = 0
    while not stop.is_set() or queries == 0:
        rows = ring.query(time_min=1100, pids={1, 2, 3})
        eids = field(rows, "eid")
        assert eids == sorted(eids) and len(set(eids)) == len(eids)
        assert all(r[2] in (1, 2, 3) and r[1] >= 1100 for r in rows)
        everything = field(ring.query(), "eid")
        if everything:  # contiguous: eviction only ever removes the oldest
            assert everything == list(range(everything[0], everything[0] + len(everything)))
        queries += 1
    thread.join()
    assert not errors
    assert ring.last_eid == 20000 and len(ring) == 500


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(
            st.tuples(
                st.one_of(st.none(), st.integers(990, 1010)),
                st.one_of(st.none(), st.integers(1, 5)),
            ),
            max_size=8,
        ),
        max_size=6,
    ),
    st.integers(1, 12),
    st.sampled_from([0, 5]),
    st.integers(1, 50),
)
def test_append_many_equals_one_append_each(
    batches: list, capacity: int, expiry: int, next_eid: int
) -> None:
    """A batch appended in one go gives the eids, entries and counters one append each does."""
    clock = Clock()
    one, many = (EventRing(capacity, expiry, clock=clock, next_eid=next_eid) for _ in range(2))
    for number, batch in enumerate(batches):
        clock.now = 1000.0 + 2 * number
        items = [(when, pid, f"item {number}.{i}") for i, (when, pid) in enumerate(batch)]
        eids = [one.append(when, pid, item) for when, pid, item in items]
        if items:
            first = many.append_many(items)
            assert eids == list(range(first, first + len(items)))
        else:
            assert many.append_many(items) == many.next_eid
        assert many.query() == one.query()
        for ring in (one, many):
            ring.expire()
        assert many.query(time_min=995, pids={1, 2}) == one.query(time_min=995, pids={1, 2})
        assert (many.evicted, many.evicted_by_age, many.first_eid, many.last_eid) == (
            one.evicted,
            one.evicted_by_age,
            one.first_eid,
            one.last_eid,
        )
        assert (len(many), many.next_eid) == (len(one), one.next_eid)
