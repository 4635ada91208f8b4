"""Rows a query's items at a time (TableRows.rows: rows.py's process_rows and socket_rows
over blocks.item_runs) against the careful builder an item at a time: the same rows, for
any column subset, typed or in osquery's text form, from open and sealed blocks. Every test
runs on the pure-Python builders and on the compiled ones (events/_rowsfast.c)."""

from __future__ import annotations

import sys
import threading

import pytest
from helpers import accel
from helpers.goldens import RECORDS_GOLDEN as GOLDEN
from helpers.goldens import events_of, read_log
from hypothesis import given, settings
from hypothesis import strategies as st

from osquery_audit_ext.app.tables import EventTable
from osquery_audit_ext.audit.consts import AF_INET, AF_INET6, AF_NETLINK, AF_UNIX
from osquery_audit_ext.events import blocks, routing
from osquery_audit_ext.events import rows as rows_module
from osquery_audit_ext.events.coalesce import Event
from osquery_audit_ext.events.ring import EventRing
from osquery_audit_ext.events.routing import (
    PROCESS_EVENTS,
    SOCKET_EVENTS,
    EventRouter,
    stored_event,
)
from osquery_audit_ext.events.rows import cut_row
from osquery_audit_ext.keysharing import key_sharing_dict
from osquery_audit_ext.sdk.plugin import (
    EQUALS,
    GREATER_THAN,
    TEXT_FORM,
    Constraint,
    ConstraintList,
    QueryContext,
    encode_row,
    encode_rows,
)
from osquery_audit_ext.sdk.tablespec import load_spec

BOOT = 1699990000.5
TABLES = (PROCESS_EVENTS, SOCKET_EVENTS)
BUILT = {  # the columns a row builder fills (EventTable adds eid and consumer)
    table: [c for c in load_spec(table).column_names if c not in ("eid", "consumer")]
    for table in TABLES
}
CAREFUL = {
    PROCESS_EVENTS: lambda event: rows_module._process_row(event, BOOT, False),
    SOCKET_EVENTS: lambda event: rows_module._socket_row(event, BOOT),
}


def kernel_text(data: bytes) -> str:
    """An untrusted string as the kernel logs it: quoted, or hex when it must be."""
    if not data or any(b == 0x22 or b < 0x21 or b > 0x7E for b in data):
        return data.hex().upper()
    return '"' + data.decode() + '"'


def sockaddr_hex(family: int, rest: bytes) -> str:
    return (family.to_bytes(2, sys.byteorder) + rest).hex()


ids = st.sampled_from(["1000", "0", "4294967295", "1000 pid=7", "1 a0=9"])
argument = st.one_of(
    st.sampled_from([b"ls", b"-la", b"/tmp/x y", b"caf\xc3\xa9", b"\xff", b"a\\b", b'"q"', b""]),
    st.binary(max_size=6),
)


@st.composite
def exec_records(draw: st.DrawFn) -> list[tuple[int, str]]:
    """An execve's records: plain ones mostly, odd EXECVE, PATH and SYSCALL shapes mixed in."""
    args = draw(st.lists(argument, max_size=5))
    execve = draw(
        st.sampled_from(
            [
                f"argc={len(args)} "
                + " ".join(
                    f"a{i}={kernel_text(a) if a else chr(34) * 2}" for i, a in enumerate(args)
                ),
                'argc=2 a0="ls" a1="-l" ',
                'argc=02 a0="ls" a1="-l"',
                "argc=0",
                'argc=1 a0="l s"',
                "argc=2 a0=6C73 a1=(null)",
                'argc=3 a0="ls" a2="x" a1="y"',
                # odd shapes the compiled reader must read as _fast_argv does
                'argc=1 a0="a\x01b"',
                'argc=2 a0="ls" a1=2D6C',
                "argc=3 a0=ABC a1=? a2=",
                'argc=2 a0="x a1="y"',
                'argc=1 a0=x"y"',
                'argc=1 a0="k=v"',
                'argc=99 a0="x"',
                'argc=1 a0="x',
                "argc=1 a0=22",
                "argc=1 a0=5C",
            ]
        )
    ).rstrip()
    name = draw(st.sampled_from([b"/usr/bin/ls", b"ls", b"./x y", b"", b"././a"]))
    items = draw(st.sampled_from([("0",), ("1", "0"), ("1",), ()]))
    cwd = draw(st.sampled_from([b"/home/a", b"/", b"/t m p", b"\xff"]))
    success = draw(st.sampled_from(["yes", "yes", "no"]))
    who = draw(ids)
    pid = draw(st.integers(1, 4_000_000))
    syscall = (
        f"arch=c000003e syscall={draw(st.sampled_from([59, 59, 322]))} success={success} exit=0 "
        f"a0=3 a1=7ffd a2=10 a3=0 items={len(items)} ppid={pid - 1} pid={pid} auid={who} "
        f"uid={who} gid=1 euid=1000 suid=1 fsuid=1 egid=1 sgid=1 fsgid=1 tty=pts1 ses=2 "
        f'comm="ls" exe="/usr/bin/ls" key={draw(st.sampled_from(["(null)", chr(34) + "k" + chr(34)]))}'
    )
    records = [(1300, syscall), (1309, execve)]
    if draw(st.booleans()):
        records.append((1307, f"{draw(st.sampled_from(['', ' ']))}cwd={kernel_text(cwd)}"))
    for item in items:
        named = kernel_text(name) if name else "(null)"
        records.append((1302, f"item={item} name={named} inode=5 mode=0100755 ouid={item} ogid=0"))
    if draw(st.booleans()):
        records.append((1327, "proctitle=6C73002D6C61"))
    return records


@st.composite
def socket_records(draw: st.DrawFn) -> list[tuple[int, str]]:
    """A socket call's records, of every family and outcome."""
    nr = draw(st.sampled_from([42, 49, 43, 288, 41]))
    who = draw(ids)
    pid = draw(st.integers(1, 4_000_000))
    outcome = draw(st.sampled_from(["yes exit=0", "no exit=-111", "no exit=-115", "no exit=-11"]))
    syscall = (
        f"arch=c000003e syscall={nr} success={outcome} a0={draw(st.integers(0, 2**72)):x} "
        f"a1=7ffd a2=10 a3=0 items=0 ppid=10 pid={pid} auid={who} uid={who} gid=1 euid={who} "
        f'suid=1 fsuid=1 egid=1 sgid=1 fsgid=1 tty=(none) ses=1 comm="curl" '
        f'exe="/usr/bin/curl" key="k"'
    )
    records = [(1300, syscall)]
    saddr = draw(
        st.one_of(
            st.none(),
            # Peers alike but for their last bytes, one after another: a cell reused from
            # the row before (_rowsfast's memos) must be that row's exactly.
            st.tuples(
                st.sampled_from([80, 443, 443 + 256]) | st.integers(0, 65535),
                st.sampled_from([b"\x7f\0\0\x01", b"\x7f\0\0\x02", b"\x7f\0\x01\x01"])
                | st.binary(min_size=4, max_size=4),
            ).map(lambda t: sockaddr_hex(AF_INET, t[0].to_bytes(2, "big") + t[1] + bytes(8))),
            st.tuples(st.integers(0, 65535), st.binary(min_size=16, max_size=16)).map(
                lambda t: sockaddr_hex(AF_INET6, t[0].to_bytes(2, "big") + bytes(4) + t[1])
            ),
            st.sampled_from(
                [
                    sockaddr_hex(AF_INET, b"\x00\x50\x7f\x00"),  # too short to hold an address
                    sockaddr_hex(AF_UNIX, b"/run/x.sock\x00"),
                    sockaddr_hex(AF_UNIX, b"\x00abstract"),
                    sockaddr_hex(AF_NETLINK, bytes(10)),
                    sockaddr_hex(AF_INET6, bytes(26)).upper(),
                    "0200",
                    "abc",
                ]
            ),
        )
    )
    if saddr is not None:
        records.append((1306, f"saddr={saddr}"))
    if draw(st.booleans()):
        records.append((1327, "proctitle=6162"))
    return records


@st.composite
def events(draw: st.DrawFn) -> list[Event]:
    """A run of exec and socket events (and a few of neither table), in serial order."""
    shapes = draw(st.lists(st.one_of(exec_records(), socket_records()), min_size=1, max_size=12))
    lines = []
    for serial, records in enumerate(shapes, start=draw(st.integers(1, 10**6))):
        msec = draw(st.integers(0, 999))
        head = f"audit({draw(st.integers(1699990000, 1700000000))}.{msec:03d}:{serial}): "
        lines += [(t, (head + body).encode()) for t, body in records]
        lines.append((1320, head.encode()))
    return events_of(lines)


@pytest.fixture(scope="module", params=accel.IMPLEMENTATIONS, autouse=True)
def row_builders(request: pytest.FixtureRequest) -> object:
    """The routers the tests make build their rows with one implementation or the other."""
    accel.require(request.param, rows_module._rowsfast, "events/_rowsfast.c")
    many = {
        PROCESS_EVENTS: getattr(rows_module, f"process_rows_{request.param}"),
        SOCKET_EVENTS: getattr(rows_module, f"socket_rows_{request.param}"),
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(routing, "_MANY_ROWS", many)
        if request.param == "python":  # item_runs' own loop too
            patch.setattr(blocks, "_rowsfast", None)
        yield request.param


def golden_events() -> list[Event]:
    return events_of([line for path in sorted(GOLDEN.glob("*.log")) for line in read_log(path)])


def routed(batch: list[Event], block_items: int) -> EventRouter:
    """A router that took the events, blocks sealed every `block_items` items."""
    router = EventRouter(EventRing(10_000, 0), EventRing(10_000, 0), BOOT, drop_unix_key=None)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(blocks, "BLOCK_ITEMS", block_items)
        router.route(batch)
    return router


def columns_of(table: str, picked: list[str]) -> list[str]:
    """A subset of the built columns, in spec order (as EventTable asks for them)."""
    return [c for c in BUILT[table] if c in picked]


def check_every_way(router: EventRouter, table: str, picked: list[str]) -> int:
    """The batch builder's rows (all columns, the picked ones; typed and text) against the
    careful builder an item at a time; how many rows there were."""
    build = router.builder(table)
    items = [item for *_, item in router.rings()[table].query()]
    careful = [CAREFUL[table](stored_event(item)) for item in items]
    assert [build(item) for item in items] == careful  # (the existing fast paths)
    spec = load_spec(table)
    for columns in (BUILT[table], columns_of(table, picked)):
        typed = build.rows(items, columns, None)
        assert typed == [cut_row(row, columns) for row in careful]
        assert [list(row) for row in typed if row is not None] == [columns] * len(
            [row for row in careful if row is not None]
        )
        text = build.rows(items, columns, TEXT_FORM)
        assert text == [None if row is None else encode_row(spec, row) for row in typed]
    return len([row for row in careful if row is not None])


@settings(max_examples=300, deadline=None)
@given(
    batch=events(),
    block_items=st.integers(1, 5),
    picked=st.lists(st.sampled_from(BUILT[PROCESS_EVENTS] + BUILT[SOCKET_EVENTS]), max_size=8),
)
def test_batched_rows_equal_the_careful_ones(
    batch: list[Event], block_items: int, picked: list[str]
) -> None:
    router = routed(batch, block_items)
    for table in TABLES:
        check_every_way(router, table, picked)


@pytest.mark.parametrize("block_items", [1, 7, blocks.BLOCK_ITEMS])
def test_batched_rows_of_the_goldens(block_items: int) -> None:
    router = routed(golden_events() * 3, block_items)
    for table in TABLES:
        ring_blocks = {item[0] for *_, item in router.rings()[table].query()}
        assert any(b.open is None for b in ring_blocks) or block_items == blocks.BLOCK_ITEMS
        assert check_every_way(router, table, ["path", "pid", "cmdline", "remote_port"]) > 3


def test_cells_reused_from_the_row_before_are_that_rows() -> None:
    """Rows in a row that repeat a value (uptime, pid, a peer's port or address) reuse the
    row before's cell (_rowsfast's memos): peers alike but for their last bytes, ports 256
    apart, pids and seconds that change back and forth, each row still its own."""
    peers = [b"\x7f\0\0\x01", b"\x7f\0\0\x02", b"\x7f\0\x01\x01", b"\x7f\0\0\x01"]
    lines = []
    for serial, (peer, port, pid, sec) in enumerate(
        zip(peers * 3, [80, 336, 80, 80] * 3, [7, 7, 70, 7] * 3, [5, 5, 6, 5] * 3), start=1
    ):
        head = f"audit(16999999{sec:02d}.100:{serial}): "
        syscall = (
            f"arch=c000003e syscall=42 success=no exit=-111 a0=3 a1=7ffd a2=10 a3=0 items=0 "
            f"ppid=1 pid={pid} auid=1000 uid=1000 gid=1 euid=1000 suid=1 fsuid=1 egid=1 sgid=1 "
            f'fsgid=1 tty=(none) ses=1 comm="curl" exe="/usr/bin/curl" key="k"'
        )
        address = sockaddr_hex(AF_INET, port.to_bytes(2, "big") + peer + bytes(8))
        lines += [
            (1300, (head + syscall).encode()),
            (1306, (head + f"saddr={address}").encode()),
            (1320, head.encode()),
        ]
    router = routed(events_of(lines), blocks.BLOCK_ITEMS)
    assert check_every_way(router, SOCKET_EVENTS, ["remote_address", "remote_port", "pid"]) == 12


def test_items_not_in_blocks_are_built_too() -> None:
    """An item restored as (types, payloads) (not yet in a block) goes the same way."""
    router = routed(golden_events(), 4)
    for table in TABLES:
        build = router.builder(table)
        items = [item for *_, item in router.rings()[table].query()]
        loose = [(stored_event(i).types, tuple(stored_event(i).payloads)) for i in items]
        mixed = [loose[n] if n % 3 == 0 else item for n, item in enumerate(items)]
        want = [build(item) for item in items]
        assert build.rows(mixed, BUILT[table], None) == want
        assert build.rows(mixed, BUILT[table], TEXT_FORM) == [
            None if row is None else encode_row(load_spec(table), row) for row in want
        ]


@settings(max_examples=100, deadline=None)
@given(
    batch=events(),
    used=st.one_of(
        st.none(),
        st.lists(
            st.sampled_from([*load_spec(PROCESS_EVENTS).column_names, "remote_port", "fd"]),
            max_size=6,
        ).map(frozenset),
    ),
    bounds=st.sampled_from([{}, {"pid": ["20"]}, {"eid": ["2"]}, {"time": [">1699995000"]}]),
)
def test_event_table_text_rows_are_its_rows_encoded(
    batch: list[Event], used: frozenset[str] | None, bounds: dict[str, list[str]]
) -> None:
    """What the handler sends (encoded_rows, made as text directly) is generate's rows
    encoded, for every column subset and pushed-down constraint."""
    router = routed(batch, 3)
    columns = {}
    for name, exprs in bounds.items():
        terms = tuple(
            Constraint(GREATER_THAN, e[1:]) if e[0] == ">" else Constraint(EQUALS, e) for e in exprs
        )
        columns[name] = ConstraintList("TEXT", terms)
    for table in TABLES:
        spec_names = set(load_spec(table).column_names)
        wanted = None if used is None else frozenset(c for c in used if c in spec_names)
        context = QueryContext(columns=columns, cols_used=wanted)
        event_table = EventTable(table, router.rings()[table], router.builder(table))
        plain = EventTable(table, router.rings()[table], router.builder(table).__call__)
        typed = list(event_table.generate(context))
        assert typed == list(plain.generate(context))  # the batch path as the item path
        assert event_table.encoded_rows(context) == encode_rows(event_table.spec, typed)


def test_rows_while_the_reader_appends_and_seals() -> None:
    """Queries running while another thread routes events (blocks filling and sealing under
    them) always get each item's own row."""
    events_ = [e for e in golden_events() if e.types]
    router = EventRouter(EventRing(500, 0), EventRing(500, 0), BOOT, drop_unix_key=None)
    router.route(events_)
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            router.route(events_)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(6):
            for table in TABLES:
                build = router.builder(table)
                items = [item for *_, item in router.rings()[table].query()]
                got = build.rows(items, BUILT[table], TEXT_FORM)
                want = [build(item) for item in items]
                assert got == [
                    None if row is None else encode_row(load_spec(table), row) for row in want
                ]
    finally:
        stop.set()
        thread.join()


# -- the views rows are copied from -------------------------------------------------------------


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["pid", "eid", "__class__", "__dict__", "path", "é", "", "a b"])
            | st.text(max_size=8),
            st.none() | st.integers() | st.text(max_size=4),
        ),
        max_size=40,
    )
)
def test_key_sharing_dict_is_the_dict_of_its_items(pairs: list[tuple[str, object]]) -> None:
    names, values = [n for n, _v in pairs], [v for _n, v in pairs]
    view = key_sharing_dict(names, values)
    assert type(view) is dict
    assert list(view.items()) == list(dict(zip(names, values)).items())
    copy = view.copy()
    copy["eid"] = "0000000001"  # EventTable adds eid to each row copied from a view
    assert list(copy.items()) == list({**dict(zip(names, values)), "eid": "0000000001"}.items())
    assert list(view.items()) == list(dict(zip(names, values)).items())


@pytest.mark.skipif(
    sys.implementation.name != "cpython", reason="key-sharing dicts are CPython's (PEP 412)"
)
def test_rows_copied_from_a_socket_events_view_share_its_keys() -> None:
    """The point of key_sharing_dict: a row of SELECT * FROM socket_events holds a values
    array, not a copy of the 25 keys (sys.getsizeof counts the keys table of a plain dict)."""
    names = BUILT[SOCKET_EVENTS]
    view = key_sharing_dict(names, [None] * len(names))
    plain = dict(view)
    assert sys.getsizeof(view.copy()) < sys.getsizeof(plain.copy()) // 2
    # process_events' 40 built columns are past what CPython shares: a plain dict then (an
    # attribute dict that stopped sharing is twice as large and slower to copy).
    names = BUILT[PROCESS_EVENTS]
    view = key_sharing_dict(names, [None] * len(names))
    assert sys.getsizeof(view.copy()) <= sys.getsizeof(dict(view).copy())
