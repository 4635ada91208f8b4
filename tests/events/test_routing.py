"""Events into ring entries and back into rows: the fast classification agrees with building
the row, and what the ring keeps rebuilds exactly the row the event gives."""

from __future__ import annotations

import sys

import pytest
from helpers import accel
from helpers.goldens import RECORDS_GOLDEN as GOLDEN
from helpers.goldens import events_of, read_log
from hypothesis import given, settings
from hypothesis import strategies as st

from osquery_audit_ext.audit.consts import AF_INET, AF_INET6, AF_NETLINK, AF_UNIX, AUDIT_SYSCALL
from osquery_audit_ext.events import routing
from osquery_audit_ext.events.blocks import BLOCK_ITEMS, Block, is_block_item
from osquery_audit_ext.events.coalesce import Event
from osquery_audit_ext.events.ring import EventRing
from osquery_audit_ext.events.routing import (
    PROCESS_EVENTS,
    SOCKET_EVENTS,
    EventRouter,
    pack_payloads,
    stored_event,
    unpack_payloads,
)
from osquery_audit_ext.events.rows import process_row, socket_row
from osquery_audit_ext.events.user_rows import USER_EVENTS

BOOT = 1699990000.5
OUR_KEY = "oae-test"
B64, B32 = "c000003e", "40000003"
# (audit arch, syscall number) pairs worth routing: each table's calls, and calls of neither.
SYSCALLS = [
    (B64, 59),  # execve
    (B64, 322),  # execveat
    (B64, 42),  # connect
    (B64, 49),  # bind
    (B64, 43),  # accept
    (B64, 288),  # accept4
    (B64, 56),  # clone
    (B64, 57),  # fork
    (B64, 62),  # kill
    (B64, 0),  # read: neither table
    (B64, 99999),  # unknown number
    (B32, 11),  # i386 execve
    (B32, 102),  # i386 socketcall
    (B32, 362),  # i386 connect
    ("ffffffff", 59),  # unknown audit arch
]


@pytest.fixture(scope="module", params=accel.IMPLEMENTATIONS, autouse=True)
def routing_loop(request: pytest.FixtureRequest) -> object:
    """classify and route run in Python or compiled (events/_ingestfast.c)."""
    with accel.running(request.param, routing, "_ingestfast", "events/_ingestfast.c") as loop:
        yield loop


def router(drop_unix: bool = True) -> EventRouter:
    return EventRouter(
        EventRing(1000, 0),
        EventRing(1000, 0),
        BOOT,
        drop_unix_key=OUR_KEY if drop_unix else None,
    )


def golden_events() -> list[Event]:
    return events_of([line for path in sorted(GOLDEN.glob("*.log")) for line in read_log(path)])


def by_row(r: EventRouter, event: Event) -> tuple[str, int | None] | None:
    return r._classify_by_row(event)


def sockaddr_hex(family: int, rest: bytes) -> str:
    return (family.to_bytes(2, sys.byteorder) + rest).hex().upper()


@st.composite
def syscall_events(draw: st.DrawFn) -> Event:
    """A syscall event in the kernel's record layout, with the odd cases mixed in."""
    audit_arch, nr = draw(st.sampled_from(SYSCALLS))
    serial = draw(st.integers(1, 10**6))
    head = f"audit(1700000000.{draw(st.integers(0, 999)):03d}:{serial}): "
    pid = draw(st.integers(1, 4_000_000))
    result = draw(
        st.sampled_from(["success=yes exit=0", "success=no exit=-111", "success=yes exit=77", ""])
    )
    per = draw(st.sampled_from(["", " per=400000"]))
    a0 = draw(st.sampled_from(["3", "10000", "3d0f00", "1200011", "ffffff9c"]))
    key = draw(st.sampled_from([f'"{OUR_KEY}"', '"other"', "(null)"]))
    syscall = (
        f"arch={audit_arch} syscall={nr}{per}{' ' + result if result else ''} a0={a0} a1=7ffd a2=10 "
        f"a3=0 items=1 ppid=10 pid={pid} auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 "
        f'fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts1 ses=2 comm="x" exe="/usr/bin/x" '
        f"key={key}"
    )
    records = [(1300, head + syscall)]
    sockaddr = draw(
        st.sampled_from(
            [
                None,
                sockaddr_hex(AF_INET, bytes.fromhex("1F907F000001") + bytes(8)),
                sockaddr_hex(AF_INET6, bytes(26)),
                sockaddr_hex(AF_UNIX, b"/run/x.sock\x00"),
                sockaddr_hex(AF_UNIX, b"\x00abstract"),
                sockaddr_hex(AF_NETLINK, bytes(10)),
            ]
        )
    )
    if sockaddr is not None:
        records.append((1306, head + f"saddr={sockaddr}"))
    if draw(st.booleans()):
        records.append((1309, head + 'argc=2 a0="x" a1="y"'))
        records.append((1302, head + 'item=0 name="/usr/bin/x" inode=1 dev=08:01 mode=0100755'))
    if draw(st.booleans()):
        records.append((1327, head + "proctitle=7800"))
    if draw(st.booleans()):
        records.insert(0, (1335, head + "pid=1 nl-mcgrp=1 op=connect res=1"))
    (event,) = events_of([(t, text.encode()) for t, text in [*records, (1320, head)]])
    return event


@pytest.mark.parametrize("drop_unix", [True, False])
def test_golden_events_classify_as_their_rows_say(drop_unix: bool) -> None:
    r = router(drop_unix)
    events = golden_events()
    assert len(events) > 30
    routed = 0
    for event in events:
        got = r.classify(event)
        assert got == by_row(r, event), event
        routed += got is not None
    assert routed > 20


@settings(max_examples=400, deadline=None)
@given(syscall_events(), st.booleans())
def test_fast_classification_equals_building_the_row(event: Event, drop_unix: bool) -> None:
    r = router(drop_unix)
    assert r.classify(event) == by_row(r, event)


@settings(max_examples=200, deadline=None)
@given(syscall_events())
def test_the_ring_rebuilds_the_row_the_event_gives(event: Event) -> None:
    r = router()
    r.route([event])
    found = r.classify(event)
    entries = {table: ring.query() for table, ring in r.rings().items()}  # eid, time, pid, item
    if found is None:
        assert entries == {PROCESS_EVENTS: [], SOCKET_EVENTS: []}
        return
    table, pid = found
    ((eid, when, stored_pid, item),) = entries[table]
    build = process_row if table == PROCESS_EVENTS else socket_row
    want = build(event, BOOT)
    assert want is not None
    assert r.builder(table)(item) == want
    assert (eid, when, stored_pid) == (1, want["time"], want["pid"]) == (1, event.sec, pid)


def test_items_are_kept_in_blocks_sealed_when_full_and_rebuild_every_row() -> None:
    """More events than a block holds: the first blocks sealed (one zlib blob, the payloads
    dropped), the last open; every item rebuilds its event's payloads and row exactly."""
    events = [e for e in golden_events() if e.types and e.types[0] == AUDIT_SYSCALL]
    r = router()
    routed = []
    while len(routed) < 2 * BLOCK_ITEMS + 5:  # the goldens again and again
        r.route(events)
        routed += [e for e in events if r.classify(e) is not None]
    for table, ring in r.rings().items():
        entries = ring.query()
        built = [r.builder(table)(item) for *_, item in entries]
        blocks = list(dict.fromkeys(item[0] for *_, item in entries))
        assert all(is_block_item(item) for *_, item in entries)
        assert all(isinstance(b, Block) for b in blocks)
        wanted = [e for e in routed if r.classify(e)[0] == table][-len(entries) :]
        build = process_row if table == PROCESS_EVENTS else socket_row
        assert built == [build(e, BOOT) for e in wanted]
        assert [stored_event(item).payloads for *_, item in entries] == [e.payloads for e in wanted]
        sealed = [b for b in blocks if b.open is None]
        assert sealed and all(isinstance(b.blob, bytes) for b in sealed)
        assert blocks[-1].open is not None or len(entries) % BLOCK_ITEMS == 0


def test_items_of_earlier_versions_read_back_into_blocks() -> None:
    """The durable ring's items (a payload tuple, or one zlib blob as earlier versions kept
    process events) go into blocks on restore and give the same rows."""
    r = router()
    events = golden_events()
    r.route(events)
    for table, ring in r.rings().items():
        entries = ring.query()
        build = r.builder(table)
        want = [build(item) for *_, item in entries]
        old = []
        for number, (eid, when, pid, item) in enumerate(entries):
            event = stored_event(item)
            kept = pack_payloads(event.payloads) if number % 2 else tuple(event.payloads)
            old.append((eid, when, pid, (event.types, kept)))
        fresh = router()
        restored = list(fresh.ring_items(table, old))
        assert [e[:3] for e in restored] == [e[:3] for e in entries]
        assert all(is_block_item(item) for *_, item in restored)
        assert [fresh.builder(table)(item) for *_, item in restored] == want


@pytest.mark.parametrize("nr", [42, 49, 43])  # connect, bind, accept
def test_unix_socket_rows_of_our_rule_alone_are_dropped(nr: int) -> None:
    head = "audit(1700000000.100:5): "

    def accept(key: str) -> Event:
        syscall = (
            f"arch={B64} syscall={nr} success=yes exit=4 a0=3 a1=0 a2=0 a3=0 items=0 ppid=1 "
            f"pid=2 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) "
            f'ses=1 comm="s" exe="/s" key="{key}"'
        )
        saddr = sockaddr_hex(AF_UNIX, b"/run/s.sock\x00")
        (event,) = events_of(
            [(1300, (head + syscall).encode()), (1306, (head + f"saddr={saddr}").encode())]
        )
        return event

    assert router(drop_unix=True).classify(accept(OUR_KEY)) is None
    assert router(drop_unix=True).classify(accept("theirs")) == (SOCKET_EVENTS, 2)
    assert router(drop_unix=False).classify(accept(OUR_KEY)) == (SOCKET_EVENTS, 2)


@given(st.lists(st.binary(max_size=300), min_size=1, max_size=8))
def test_packed_payloads_come_back_exactly(payloads: list[bytes]) -> None:
    assert unpack_payloads(pack_payloads(payloads), len(payloads)) == payloads


def test_other_tables_leave_process_and_socket_rows_as_they_were() -> None:
    """Turning every other table on changes nothing in process_events and socket_events."""
    from osquery_audit_ext.events.file_rows import FilePaths
    from osquery_audit_ext.events.routing import OTHER_TABLE_SWITCHES

    plain = router()
    full = EventRouter(
        EventRing(1000, 0),
        EventRing(1000, 0),
        BOOT,
        drop_unix_key=OUR_KEY,
        other_rings={name: EventRing(1000, 0) for name in OTHER_TABLE_SWITCHES},
        file_paths=FilePaths({"all": ["/%%"]}),
        fim_accesses=True,
    )
    events = golden_events()
    plain.route(events)
    full.route(events)
    for table in (PROCESS_EVENTS, SOCKET_EVENTS):
        build_plain, build_full = plain.builder(table), full.builder(table)
        want = [build_plain(item) for *_, item in plain.rings()[table].query()]
        got = [build_full(item) for *_, item in full.rings()[table].query()]
        assert got == want and want
    assert all(len(full.rings()[table]) for table in OTHER_TABLE_SWITCHES)


# -- the compiled classify and route loop against the Python ones ---------------------------


@st.composite
def odd_syscall_events(draw: st.DrawFn) -> Event:
    """syscall_events with the SYSCALL record's fixed start bent: pid not plain digits,
    fields missing, doubled spaces, other separators, a SOCKADDR's saddr anywhere."""
    event = draw(syscall_events())
    types, payloads = list(event.types), list(event.payloads)
    at = types.index(1300)
    head, _, body = payloads[at].partition(b"): ")
    fields = body.split(b" ")
    pid = draw(
        st.sampled_from(
            [b"+5", b"1_0", b"-3", b"", b"0x1f", b"007", b"9" * 25, "\u0663".encode(), b"5\n"]
        )
    )
    bend = draw(st.integers(0, 4))
    if bend == 0:
        fields = [b"pid=" + pid if f.startswith(b"pid=") else f for f in fields]
    elif bend == 1 and fields:
        del fields[draw(st.integers(0, len(fields) - 1))]
    elif bend == 2 and fields:
        fields.insert(draw(st.integers(0, len(fields))), b"")  # a doubled space
    elif bend == 3:
        fields = [f.replace(b"=", b":", 1) if draw(st.booleans()) else f for f in fields]
    payloads[at] = head + b"): " + b" ".join(fields)
    if 1306 in types and draw(st.booleans()):
        where = types.index(1306)
        saddr = payloads[where].partition(b"saddr=")[2]
        prefix = draw(st.sampled_from([b"x saddr=", b"x:saddr=", b"saddr=", b"x saddr"]))
        payloads[where] = b"audit(1.000:1): " + prefix + saddr[: draw(st.integers(0, 8))]
    return Event(tuple(types), payloads, True, (event.sec, event.msec, event.serial))


@st.composite
def address_events(draw: st.DrawFn) -> Event:
    """A connect or bind whose SOCKADDR record is bent: saddr after a space, a colon (the
    header's, with no space after it) or nothing, its family cut short or of either byte
    order."""
    nr = draw(st.sampled_from([42, 49]))
    pid = draw(st.sampled_from([b"77", b"+5", b"", b"1_0"]))
    head = b"audit(1700000000.001:9): "
    syscall = (
        (
            f"arch={B64} syscall={nr} success=yes exit=0 a0=3 a1=7ffd a2=10 a3=0 items=1 "
            "ppid=10 pid="
        ).encode()
        + pid
        + b' auid=1000 uid=1000 comm="x" exe="/x" key="oae-test"'
    )
    family = draw(st.sampled_from([b"0100", b"0001", b"0200", b"01"]))
    prefix = draw(st.sampled_from([b"saddr=", b"x:saddr=", b" saddr"]))
    before = draw(st.sampled_from([head, head.rstrip()]))
    sockaddr = before + prefix + family + b"2F7200"
    return Event((1300, 1306), [head + syscall, sockaddr], True, (1700000000, 1, 9))


@settings(max_examples=400, deadline=None)
@given(st.one_of(syscall_events(), odd_syscall_events(), address_events()), st.booleans())
def test_classify_equals_classify_python(event: Event, drop_unix: bool) -> None:
    r = router(drop_unix)
    assert r.classify(event) == r.classify_python(event)


@settings(max_examples=200, deadline=None)
@given(address_events())
def test_classify_reads_the_address_family_as_classify_python(event: Event) -> None:
    r = router(drop_unix=True)
    assert r.classify(event) == r.classify_python(event)


def block_state(r: EventRouter) -> list[tuple]:
    return [
        (list(w.block.types), w.block.stamps.tolist(), w.block.open) for w in r._blocks.values()
    ]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.one_of(syscall_events(), odd_syscall_events()), max_size=2 * BLOCK_ITEMS + 9),
    st.booleans(),
)
def test_route_equals_its_python_loop(events: list[Event], drop_unix: bool) -> None:
    """route (its loop compiled or not) against split_python: the same entries, events,
    block items and sealed blobs."""
    fast, careful = router(drop_unix), router(drop_unix)
    fast.route(events)
    process, process_events, sockets, socket_events = careful.split_python(events, None)
    careful.process_ring.append_many(process)
    careful.socket_ring.append_many(sockets)
    for table, routed in ((PROCESS_EVENTS, process_events), (SOCKET_EVENTS, socket_events)):
        got = fast.rings()[table].query()
        want = careful.rings()[table].query()
        assert [e[:3] for e in got] == [e[:3] for e in want]
        assert [item[1] for *_, item in got] == [item[1] for *_, item in want]
        assert [stored_event(item).payloads for *_, item in got] == [e.payloads for e in routed]
        blobs = [item[0].blob for *_, item in got]
        assert blobs == [item[0].blob for *_, item in want]
    assert block_state(fast) == block_state(careful)


def _user_message(serial: int, text: str) -> Event:
    payload = (
        f"audit(1700000000.{serial % 1000:03d}:{serial}): pid=7 uid=0 auid=1000 ses=3 msg='{text}'"
    )
    return Event((1112,), [payload.encode()], True, (1700000000, serial % 1000, serial))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            syscall_events(),
            st.builds(
                _user_message, st.integers(1, 10**6), st.sampled_from(["op=login res=success", "x"])
            ),
        ),
        max_size=BLOCK_ITEMS + 9,
    )
)
def test_route_with_user_events_equals_its_python_loop(events: list[Event]) -> None:
    """With the user_events ring on (the default), route's loop (compiled where built) and
    its user messages give the rings and the journal's entries split_python gives."""

    def with_users() -> EventRouter:
        return EventRouter(
            EventRing(1000, 0),
            EventRing(1000, 0),
            BOOT,
            drop_unix_key=OUR_KEY,
            other_rings={USER_EVENTS: EventRing(1000, 0)},
        )

    fast, careful = with_users(), with_users()
    fast.route(events)
    written: dict = {}
    process, _pe, sockets, _se = careful.split_python(events, written)
    careful.process_ring.append_many(process)
    careful.socket_ring.append_many(sockets)
    for table in (PROCESS_EVENTS, SOCKET_EVENTS, USER_EVENTS):
        got, want = fast.rings()[table].query(), careful.rings()[table].query()
        assert [e[:3] for e in got] == [e[:3] for e in want]
        assert [stored_event(e[3]).payloads for e in got] == [
            stored_event(e[3]).payloads for e in want
        ]
    assert len(fast.rings()[USER_EVENTS]) == sum(1 for e in events if e.types == (1112,))
