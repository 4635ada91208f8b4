"""Reassembling records into events: EOE, lone records, timeouts, the cap, duplicates, gaps."""

from __future__ import annotations

import random
from pathlib import Path
from typing import NamedTuple

import pytest
from helpers import accel
from helpers.goldens import read_log
from hypothesis import given, settings
from hypothesis import strategies as st

from osquery_audit_ext.events import coalesce
from osquery_audit_ext.events.coalesce import SERIAL_WINDOW, Coalescer, Event, completes_alone
from osquery_audit_ext.events.records import Record, RecordParseError, parse_record

GOLDEN = Path(__file__).parent / "golden"


class Raw(NamedTuple):
    """A record as the reader hands it to the coalescer: its type and payload."""

    type: int
    payload: bytes

    @property
    def record(self) -> Record:
        return parse_record(self.type, self.payload)

    @property
    def serial(self) -> int:
        return self.record.serial

    @property
    def sec(self) -> int:
        return self.record.sec

    @property
    def msec(self) -> int:
        return self.record.msec

    @property
    def body(self) -> str:
        return self.record.body


def parsed(raws: list[Raw]) -> list[Raw]:
    return [raw.record for raw in raws]


def rec(msg_type: int, serial: int, body: str = "", stamp: str = "1700000000.500") -> Raw:
    return Raw(msg_type, f"audit({stamp}:{serial}): {body}".encode())


def syscall_event(serial: int, stamp: str = "1700000000.500") -> list[Raw]:
    """SYSCALL, CWD, two PATHs, PROCTITLE and EOE, as the kernel sends one syscall's event."""
    return [
        rec(1300, serial, f"arch=c000003e syscall=59 success=yes exit=0 pid={serial}", stamp),
        rec(1307, serial, ' cwd="/"', stamp),
        rec(1302, serial, 'item=0 name="/bin/true"', stamp),
        rec(1302, serial, 'item=1 name="/lib64/ld-linux-x86-64.so.2"', stamp),
        rec(1327, serial, "proctitle=74727565", stamp),
        rec(1320, serial, "", stamp),
    ]


def feed(coalescer: Coalescer, records: list[Raw], now: float | None = None) -> list[Event]:
    out: list[Event] = []
    for record in records:
        out.extend(coalescer.add(record.type, record.payload, now))
    return out


def read_raw_log(path: Path) -> list[Raw]:
    return [Raw(msg_type, payload) for msg_type, payload in read_log(path)]


def test_eoe_completes_the_event_with_its_records_in_order() -> None:
    coalescer = Coalescer(timeout=2)
    records = syscall_event(10)
    assert feed(coalescer, records[:-1]) == []
    assert len(coalescer) == 1
    (event,) = coalescer.add(*records[-1])
    assert event.records == parsed(records[:-1])  # EOE itself is not kept
    assert (event.sec, event.msec, event.serial, event.ended) == (1700000000, 500, 10, True)
    assert event.time_ms == 1700000000500
    assert event.first(1302) == records[2].record
    assert event.all(1302) == parsed(records[2:4])
    assert event.first(1309) is None
    assert len(coalescer) == 0
    assert (coalescer.timed_out, coalescer.duplicates, coalescer.late) == (0, 0, 0)


def test_same_serial_with_another_timestamp_is_another_event() -> None:
    coalescer = Coalescer()
    a = rec(1300, 5, "pid=1", "1700000000.500")
    b = rec(1300, 5, "pid=2", "1700000001.500")
    feed(coalescer, [a, b])
    assert len(coalescer) == 2


@pytest.mark.parametrize(
    "msg_type", [1005, 1100, 1112, 1124, 1199, 1200, 1299, 2000, 2100, 2404, 2999]
)
def test_records_logged_without_task_context_complete_alone(msg_type: int) -> None:
    assert completes_alone(msg_type)
    coalescer = Coalescer()
    record = rec(msg_type, 3, "pid=1 uid=0 msg='op=x res=success'")
    (event,) = coalescer.add(*record)
    assert event.records == [record.record] and event.ended
    assert len(coalescer) == 0


@pytest.mark.parametrize("msg_type", [1006, 1300, 1302, 1305, 1309, 1327, 1335, 1400, 1700, 2001])
def test_records_that_may_share_a_syscall_context_wait_for_eoe(msg_type: int) -> None:
    assert not completes_alone(msg_type)
    coalescer = Coalescer()
    assert coalescer.add(*rec(msg_type, 3, "pid=1")) == []
    assert len(coalescer) == 1


def test_real_event_listener_and_user_records() -> None:
    """Captured on this machine: 1335 is followed by SYSCALL, PROCTITLE and EOE."""
    records = read_raw_log(GOLDEN / "real.log")
    coalescer = Coalescer(timeout=2)
    done = feed(coalescer, records, now=100.0)
    assert [[r.type for r in e.records] for e in done] == [[1335, 1300, 1327], [1005]]
    assert all(e.ended for e in done)
    assert done[0].serial == 100030 and done[1].serial == 100031
    # The kernel-log records have no EOE: a lone CONFIG_CHANGE and one with its syscall.
    assert coalescer.expire(101.9) == []
    late = coalescer.expire(102.0)
    assert [[r.type for r in e.records] for e in late] == [[1305], [1305, 1300, 1327]]
    assert not any(e.ended for e in late)
    assert coalescer.timed_out == 2


def test_timeout_is_measured_on_the_callers_clock() -> None:
    coalescer = Coalescer(timeout=2)
    first = syscall_event(1)[:-1]
    second = syscall_event(2)[:-1]
    feed(coalescer, first, now=10.0)
    feed(coalescer, second, now=11.0)
    assert coalescer.expire(11.999) == []
    (event,) = coalescer.expire(12.0)
    assert event.serial == 1 and not event.ended
    (event,) = coalescer.expire(13.0)
    assert event.serial == 2
    assert coalescer.timed_out == 2
    assert len(coalescer) == 0


def test_without_add_time_the_last_expire_time_stamps_new_events() -> None:
    coalescer = Coalescer(timeout=2)
    coalescer.add(*rec(1300, 1))  # before any clock value: counted from the first expire
    assert coalescer.expire(50.0) == []
    coalescer.add(*rec(1300, 2))  # stamped 50.0
    assert [e.serial for e in coalescer.expire(51.0)] == []
    assert [e.serial for e in coalescer.expire(52.0)] == [1, 2]


def test_the_cap_pushes_out_the_oldest_event_as_it_is() -> None:
    coalescer = Coalescer(max_inflight=2)
    assert feed(coalescer, [rec(1300, 1), rec(1300, 2)]) == []
    assert coalescer.add(*rec(1302, 1)) == []  # more records for an event in flight: no push
    (pushed,) = coalescer.add(*rec(1300, 3))
    assert pushed.serial == 1 and not pushed.ended
    assert [r.type for r in pushed.records] == [1300, 1302]
    assert coalescer.dropped_inflight == 1
    assert len(coalescer) == 2


def test_replace_probe_is_ignored() -> None:
    coalescer = Coalescer()
    assert coalescer.add(*rec(1329, 9, "audit_pid=1 old=1 auid=0 ses=1 res=1")) == []
    assert len(coalescer) == 0


def test_eoe_for_an_unknown_event_is_ignored() -> None:
    coalescer = Coalescer()
    assert coalescer.add(*rec(1320, 77)) == []
    assert coalescer.duplicates == 0 and len(coalescer) == 0


def test_duplicate_records_are_dropped_and_counted() -> None:
    coalescer = Coalescer()
    records = syscall_event(4)
    done = feed(coalescer, [records[0], records[0], *records[1:3], records[2], *records[3:]])
    assert [e.records for e in done] == [parsed(records[:-1])]
    assert coalescer.duplicates == 2
    # After the EOE: the same EOE again, and a record type the event had, are duplicates.
    assert coalescer.add(*records[-1]) == []
    assert coalescer.add(*records[1]) == []
    assert coalescer.duplicates == 4 and len(coalescer) == 0


def test_a_record_type_new_to_an_ended_event_starts_a_late_event() -> None:
    coalescer = Coalescer()
    assert len(coalescer.add(*rec(1107, 8, "pid=1 msg='x'"))) == 1
    assert coalescer.add(*rec(1420, 8, "subj_selinux=a subj_apparmor=b")) == []
    assert coalescer.late == 1 and len(coalescer) == 1


def test_records_after_a_timeout_start_a_late_event() -> None:
    coalescer = Coalescer(timeout=1)
    records = syscall_event(6)
    feed(coalescer, records[:2], now=0.0)
    (cut,) = coalescer.expire(5.0)
    assert cut.records == parsed(records[:2])
    feed(coalescer, records[2:-1], now=5.0)
    assert coalescer.late == 1
    (rest,) = coalescer.add(*records[-1])
    assert rest.records == parsed(records[2:-1]) and rest.ended


def test_flush_returns_everything_in_flight() -> None:
    coalescer = Coalescer()
    feed(coalescer, syscall_event(1)[:-1] + syscall_event(2)[:2])
    assert [e.serial for e in coalescer.flush()] == [1, 2]
    assert len(coalescer) == 0
    assert coalescer.timed_out == 0


def test_invalid_settings_are_rejected() -> None:
    with pytest.raises(ValueError):
        Coalescer(timeout=0)
    with pytest.raises(ValueError):
        Coalescer(max_inflight=0)


# -- serial gaps -------------------------------------------------------------------------


def gaps_after(serials: list[int]) -> int:
    coalescer = Coalescer()
    for serial in serials:
        coalescer.add(*rec(1005, serial, "msg='x'"))
    coalescer.flush()
    return coalescer.serial_gaps


def test_serial_gaps() -> None:
    assert gaps_after([1, 2, 3, 4]) == 0
    assert gaps_after([1, 2, 4, 5]) == 1
    assert gaps_after([10, 20]) == 9
    assert gaps_after([1, 3, 2, 4]) == 0  # slightly out of order: not lost
    assert gaps_after([5, 5, 6]) == 0


def test_serial_gaps_across_the_32_bit_wrap() -> None:
    assert gaps_after([4294967294, 4294967295, 0, 1]) == 0
    assert gaps_after([4294967295, 1]) == 1
    assert gaps_after([4294967295, 0, 4294967294]) == 0


def test_a_serial_far_behind_restarts_counting() -> None:
    assert gaps_after([100000, 100001, 5, 6]) == 0


def test_holes_count_once_they_fall_out_of_the_window() -> None:
    coalescer = Coalescer()
    for serial in (1, 3):
        coalescer.add(*rec(1005, serial, "msg='x'"))
    assert coalescer.serial_gaps == 0  # 2 may still come
    coalescer.add(*rec(1005, 3 + SERIAL_WINDOW, "msg='x'"))
    assert coalescer.serial_gaps == 1  # 2 is now too old to be late; 4.. may still come
    coalescer.flush()
    assert coalescer.serial_gaps == 1 + (SERIAL_WINDOW - 1)


def test_a_huge_jump_counts_the_excess_at_once() -> None:
    coalescer = Coalescer()
    coalescer.add(*rec(1005, 1, "msg='x'"))
    coalescer.add(*rec(1005, 1 + 10 * SERIAL_WINDOW, "msg='x'"))
    assert coalescer.serial_gaps == 10 * SERIAL_WINDOW - 1 - SERIAL_WINDOW
    coalescer.flush()
    assert coalescer.serial_gaps == 10 * SERIAL_WINDOW - 1


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_gap_count_equals_serials_dropped(data: st.DataObject) -> None:
    count = data.draw(st.integers(3, 200))
    base = data.draw(st.sampled_from([1, 4294967295 - 50]))
    serials = [(base + i) & 0xFFFFFFFF for i in range(count)]
    interior = serials[1:-1]
    dropped = set(data.draw(st.lists(st.sampled_from(interior), unique=True)) if interior else [])
    kept = [s for s in serials if s not in dropped]
    # Local reordering: swap neighbours, as concurrent syscalls on two CPUs can.
    swaps = data.draw(st.lists(st.integers(1, len(kept) - 2), max_size=10)) if len(kept) > 2 else []
    for i in swaps:
        kept[i], kept[i + 1] = kept[i + 1], kept[i]
    assert gaps_after(kept) == len(dropped)


# -- any interleaving --------------------------------------------------------------------


def interleave(events: list[list[Raw]], rnd: random.Random) -> list[Raw]:
    """A random merge of the events' records keeping each event's own order."""
    queues = [list(records) for records in events]
    out = []
    while any(queues):
        queue = rnd.choice([q for q in queues if q])
        out.append(queue.pop(0))
    return out


@st.composite
def event_sets(draw: st.DrawFn) -> list[list[Raw]]:
    count = draw(st.integers(1, 12))
    first = draw(st.integers(1, 4294967295))
    events = []
    for i in range(count):
        serial = (first + i) & 0xFFFFFFFF
        stamp = f"1700000000.{draw(st.integers(0, 999)):03d}"
        types = draw(
            st.lists(st.sampled_from([1300, 1302, 1307, 1309, 1327, 1305]), min_size=1, max_size=6)
        )
        records = [rec(t, serial, f"n={n}", stamp) for n, t in enumerate(types)]
        events.append([*records, rec(1320, serial, "", stamp)])
    return events


@settings(max_examples=200, deadline=None)
@given(event_sets(), st.randoms())
def test_every_interleaving_completes_each_event_once(
    events: list[list[Raw]], rnd: random.Random
) -> None:
    coalescer = Coalescer(max_inflight=64)
    done = feed(coalescer, interleave(events, rnd))
    got = sorted(((e.serial, e.sec, e.msec), [r.body for r in e.records]) for e in done)
    want = sorted(((r[0].serial, r[0].sec, r[0].msec), [x.body for x in r[:-1]]) for r in events)
    assert got == want
    by_key = {(e.serial, e.sec, e.msec): e.records for e in done}
    for records in events:
        assert by_key[(records[0].serial, records[0].sec, records[0].msec)] == parsed(records[:-1])
    assert all(e.ended for e in done)
    assert len(coalescer) == 0
    assert (coalescer.duplicates, coalescer.late, coalescer.timed_out) == (0, 0, 0)
    assert coalescer.dropped_inflight == 0


@settings(max_examples=150, deadline=None)
@given(event_sets(), st.randoms(), st.data())
def test_missing_eoe_times_out_and_duplicates_change_nothing(
    events: list[list[Raw]], rnd: random.Random, data: st.DataObject
) -> None:
    without_eoe = set(data.draw(st.lists(st.integers(0, len(events) - 1), unique=True)))
    streams = [ev[:-1] if i in without_eoe else list(ev) for i, ev in enumerate(events)]
    duplicates = 0
    for stream in streams:
        body = stream[:-1] if stream[-1].type == 1320 else stream
        extra = data.draw(st.lists(st.integers(0, len(body) - 1), max_size=3))
        for index in sorted(extra, reverse=True):
            stream.insert(index + 1, body[index])  # a repeat right after the original
            duplicates += 1
    coalescer = Coalescer(timeout=2, max_inflight=64)
    done = feed(coalescer, interleave(streams, rnd), now=1000.0)
    assert {e.serial for e in done} == {
        ev[0].serial for i, ev in enumerate(events) if i not in without_eoe
    }
    assert coalescer.expire(1001.9) == []
    expired = coalescer.expire(1002.0)
    assert {e.serial for e in expired} == {events[i][0].serial for i in without_eoe}
    assert not any(e.ended for e in expired)
    assert coalescer.timed_out == len(without_eoe)
    assert coalescer.duplicates == duplicates
    by_serial = {e.serial: e.records for e in [*done, *expired]}
    for ev in events:
        assert by_serial[ev[0].serial] == parsed(ev[:-1])


def test_a_payload_that_is_not_a_record_is_refused_and_changes_nothing() -> None:
    coalescer = Coalescer()
    for payload in (b"hello", b"audit(1.000:1 a=1", b"audit(1.5:3): a=1", b"audit(1.000:x): a"):
        with pytest.raises(RecordParseError):
            coalescer.add(1300, payload)
    assert len(coalescer) == 0 and coalescer.serial_gaps == 0


def test_events_keep_the_payloads_and_parse_them_on_demand() -> None:
    coalescer = Coalescer()
    records = syscall_event(12)
    (event,) = feed(coalescer, records)
    assert event.types == tuple(r.type for r in records[:-1])
    assert event.payloads == [r.payload for r in records[:-1]]
    # Completed events of the same shape share one types tuple (the ring keeps it).
    (other,) = feed(coalescer, syscall_event(13))
    assert other.types is event.types
    rebuilt = Event(list(event.types), list(event.payloads))
    assert (rebuilt.sec, rebuilt.msec, rebuilt.serial) == (1700000000, 500, 12)
    assert rebuilt.records == event.records == parsed(records[:-1])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([1300, 1302, 1307, 1309, 1327]),
            st.text(max_size=40),
            st.sampled_from(["", " ", "\x00", "\n\x00"]),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_event_records_equal_parse_record_of_each_payload(parts: list) -> None:
    """An event parses its records from the stamp it checked once: the same Records as
    parse_record gives for each payload (bodies with any text, spaces, NULs, newlines)."""
    payloads = [
        f"audit(1700000000.042:77): {body}{tail}".encode("utf-8", "surrogateescape")
        for _, body, tail in parts
    ]
    types = [t for t, _, _ in parts]
    event = Event(types, payloads)
    assert event.records == [parse_record(t, p) for t, p in zip(types, payloads)]


# -- add_batch: the reader's fast path against add, record by record ------------------------


@pytest.fixture(scope="module", params=accel.IMPLEMENTATIONS)
def batch_loop(request: pytest.FixtureRequest) -> object:
    """add_batch runs its Python loop or the compiled one (events/_ingestfast.c)."""
    with accel.running(request.param, coalesce, "_ingestfast", "events/_ingestfast.c") as loop:
        yield loop


def add_one_by_one(
    coalescer: Coalescer, batch: list[Raw], now: float
) -> tuple[list[Event], int, int]:
    """What the reader did before add_batch: skip what is not a record, add the rest in turn,
    count and skip the ones add refuses."""
    out: list[Event] = []
    taken = errors = 0
    for msg_type, payload in batch:
        if (msg_type < 1100 and msg_type not in (1005, 1006)) or msg_type == 1329:
            continue
        taken += 1
        try:
            out.extend(coalescer.add(msg_type, payload, now))
        except RecordParseError:
            errors += 1
    return out, taken, errors


def coalescer_state(coalescer: Coalescer) -> tuple:
    counters = (
        coalescer.timed_out,
        coalescer.dropped_inflight,
        coalescer.serial_gaps,
        coalescer.duplicates,
        coalescer.late,
        coalescer.high_serial,
        coalescer.first_serial,
    )
    held = [(e.types, e.payloads, e.ended, e.since) for e in coalescer._inflight.values()]
    return counters, held, list(coalescer._recent.items())


def event_state(events: list[Event]) -> list[tuple]:
    return [(tuple(e.types), e.payloads, e.ended, e.sec, e.msec, e.serial) for e in events]


# Stamps that pass split_header but not always parse_stamp: parts missing, too short or long,
# not ASCII digits, separators repeated or swapped, numbers too long for 64 bits.
odd_stamps = st.one_of(
    st.builds(
        "".join,
        st.tuples(
            st.sampled_from(["1700000000", "", "17a", "0" * 25 + "1", "9" * 30, "\u0661", " 1"]),
            st.sampled_from([".", ":", "", ".."]),
            st.sampled_from(["500", "5", "5000", "50a", "", "+12", "\u0661\u0662\u0663"]),
            st.sampled_from([":", ".", "", "::"]),
            st.sampled_from(["4294967295", "", "x", "1" * 25, "-1", "7.5", "7:8", "0"]),
        ),
    ),
    st.text(alphabet="0123456789.:)a ", max_size=24),
)


@st.composite
def record_batches(draw: st.DrawFn) -> list[list[Raw]]:
    """Records of a few stamps in any order, with repeats, EOEs for unknown events, lone
    records, control replies, REPLACE probes, payloads that are not records and records
    with malformed or odd stamps, cut into receive batches."""
    first = draw(st.integers(0xFFFFFFF0, 0xFFFFFFFF))
    stamps = [
        (f"1700000000.{draw(st.integers(0, 2)):03d}", (first + n) & 0xFFFFFFFF)
        for n in range(draw(st.integers(1, 6)))
    ]
    types = st.sampled_from(
        [1300, 1302, 1302, 1307, 1320, 1320, 1327, 1305, 1005, 1006, 1100, 2100, 1000, 1329]
    )
    records: list[Raw] = []
    for _ in range(draw(st.integers(0, 40))):
        kind = draw(st.integers(0, 11))
        if kind == 0 and records:
            records.append(draw(st.sampled_from(records)))  # an exact repeat
        elif kind == 1:
            bad = draw(
                st.sampled_from(
                    [b"", b"audit(", b"audit(17.1:1", b"nope", b"audit(x):", b"audit()", b"):"]
                )
            )
            records.append(Raw(draw(types), bad))
        elif kind == 2:  # a header that splits, its stamp well formed or not
            stamp = draw(odd_stamps).encode()
            records.append(Raw(draw(types), b"audit(" + stamp + b"): n=1"))
        else:
            stamp, serial = draw(st.sampled_from(stamps))
            records.append(rec(draw(types), serial, f"n={draw(st.integers(0, 2))}", stamp))
    cuts = sorted(draw(st.lists(st.integers(0, len(records)), max_size=6)))
    edges = [0, *cuts, len(records)]
    return [records[a:b] for a, b in zip(edges, edges[1:])]


@settings(max_examples=300, deadline=None)
@given(record_batches(), st.integers(1, 4), st.booleans(), st.booleans())
def test_add_batch_equals_add_record_by_record(
    batch_loop: str,
    batches: list[list[Raw]],
    max_inflight: int,
    expire_between: bool,
    as_given: bool,
) -> None:
    """as_given: the records as the test made them (named tuples, which the compiled loop
    hands to the Python one) rather than the plain tuples the reader gives."""
    fast = Coalescer(timeout=2, max_inflight=max_inflight, recent=3)
    careful = Coalescer(timeout=2, max_inflight=max_inflight, recent=3)
    for number, batch in enumerate(batches):
        now = 1000.0 + number
        got = fast.add_batch(batch if as_given else [tuple(raw) for raw in batch], now)
        want = add_one_by_one(careful, batch, now)
        assert (event_state(got[0]), got[1:]) == (event_state(want[0]), want[1:])
        assert coalescer_state(fast) == coalescer_state(careful)
        # events of one shape share one types tuple, as the ring keeps them
        assert all(e.types is fast._type_sets[e.types] for e in got[0])
        if expire_between:
            assert event_state(fast.expire(now + 1.5)) == event_state(careful.expire(now + 1.5))
    assert event_state(fast.flush()) == event_state(careful.flush())
    assert coalescer_state(fast) == coalescer_state(careful)


def test_add_batch_skips_control_replies_and_counts_bad_payloads(batch_loop: str) -> None:
    coalescer = Coalescer()
    batch = [
        (1000, b"\x01\x00\x00\x00"),  # an AUDIT_GET reply: not a record, not counted
        (1329, b"audit(1700000000.500:7): "),  # AUDIT_REPLACE: the kernel's probe
        (1300, b"not an audit record"),
        *syscall_event(7),
    ]
    events, taken, errors = coalescer.add_batch(batch, 1.0)
    assert (taken, errors) == (len(batch) - 2, 1)
    assert [e.records for e in events] == [parsed(syscall_event(7)[:-1])]
    assert coalescer.high_serial == 7  # the probe's serial was not noted
