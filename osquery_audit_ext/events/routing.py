"""Completed events into ring entries, and ring entries back into rows.

The reader thread does as little as it can per event: an event is kept as the kernel sent
it (its record payloads) beside the two values queries filter on, time and pid, and rows
are built from those payloads only when a query asks for more than eid, time and pid.

Which table an event belongs to, and its pid, are read from the fixed start of its SYSCALL
record: the kernel writes `arch= syscall= success= exit= a0= a1= a2= a3= items= ppid= pid=`
in that order (kernel/auditsc.c, audit_log_exit). The plain, frequent cases are decided
from that alone: a successful execve/execveat, and a connect/bind with a non-unix SOCKADDR.
Everything else (fork/clone, kill, accept, i386 socketcall, unix sockets, failed execs, a
record of another shape) is decided by building the row itself, so the ring never holds an
entry that gives no row and the index always equals the row's own time and pid (a test
checks both ways agree).

The other tables (user_events, process_file_events, seccomp/selinux/apparmor_events) have
rings only when they are turned on; their events are rare next to process and socket storms,
so they are decided by building the row (user_rows.py, file_rows.py, mac_rows.py). A user
message, seccomp or MAC record is one row each (as in osquery, which routes records, not
events); a MAC or seccomp record inside a syscall event also leaves that event's own row.

Process and socket events are kept in blocks (blocks.py): BLOCK_ITEMS consecutive events of a
table compressed together once the block is full, a few microseconds an event where zlib per
event cost 20-30, and under 100 bytes an event where the records as sent are ~0.5-1 KB. The
durable ring is handed each event's payloads as they are and compresses its frames whole.
process_file_events items keep one zlib blob each (pack_payloads) beside the dirfd
directories found at arrival.
"""

from __future__ import annotations

import enum
import functools
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from ..accel import compiled
from ..audit.consts import AF_UNIX, AUDIT_PATH, AUDIT_SECCOMP, AUDIT_SOCKADDR, AUDIT_SYSCALL
from . import blocks
from .blocks import BlockReader, BlockWriter, Parts, is_block_item, item_runs
from .coalesce import Event
from .file_rows import PROCESS_FILE_EVENTS, FilePaths, dirfd_paths_from_proc, file_row
from .journal import RingJournal
from .mac_rows import (
    APPARMOR_EVENTS,
    SECCOMP_EVENTS,
    SELINUX_EVENTS,
    apparmor_row,
    mac_table,
    seccomp_row,
    selinux_row,
)
from .ring import Entry, EventRing
from .rows import (
    EXEC_SYSCALLS,
    FORK_SYSCALLS,
    KILL_SYSCALLS,
    SOCKET_ACTIONS,
    ManyRows,
    TextEncoding,
    audit_syscall_name,
    cut_row,
    process_row,
    process_rows,
    socket_row,
    socket_rows,
)
from .user_rows import USER_EVENTS, is_user_message, user_row

PROCESS_EVENTS = "process_events"
SOCKET_EVENTS = "socket_events"
# The tables built from single records (user messages, MAC and seccomp records).
RECORD_ROWS: dict[str, Callable[[Event, float], dict | None]] = {
    USER_EVENTS: user_row,
    SECCOMP_EVENTS: seccomp_row,
    SELINUX_EVENTS: selinux_row,
    APPARMOR_EVENTS: apparmor_row,
}


# The other tables by the [events] switch (osquery's audit_allow_* flag) that turns each on.
OTHER_TABLE_SWITCHES = {
    USER_EVENTS: "user",
    PROCESS_FILE_EVENTS: "fim",
    SECCOMP_EVENTS: "seccomp",
    SELINUX_EVENTS: "selinux",
    APPARMOR_EVENTS: "apparmor",
}


def other_tables(switches: Mapping[str, object]) -> list[str]:
    """The other tables whose switch is on, in a fixed order."""
    return [table for table, switch in OTHER_TABLE_SWITCHES.items() if switches.get(switch)]


class FastPath(enum.Enum):
    """What `classify` concludes from a SYSCALL record's arch and syscall number alone."""

    EXEC = "exec"  # execve/execveat: a process row when it succeeded
    ADDRESS = "address"  # connect/bind: a socket row when there is a SOCKADDR
    NO_ROW = "no_row"  # a syscall neither table has rows for
    BUILD_ROW = "build_row"  # any other case: build the row to know


_ROW_SYSCALLS = EXEC_SYSCALLS | FORK_SYSCALLS | KILL_SYSCALLS | set(SOCKET_ACTIONS) | {"socketcall"}
# AF_UNIX as the kernel hex-dumps a sockaddr's family (either byte order): b"0100", b"0001".
_UNIX_FAMILY_HEX = tuple(AF_UNIX.to_bytes(2, order).hex().encode() for order in ("little", "big"))
_ZLIB_LEVEL = 1

# An item as the durable ring stores it: (record types, payloads); payloads a tuple of bytes,
# or one zlib blob of the payloads preceded by their lengths (process_file_events, and process
# events kept by earlier versions). In the ring, process and socket items are (block, index).
Item = tuple[tuple[int, ...], "tuple[bytes, ...] | bytes"]


@functools.lru_cache(maxsize=1024)
def _fast_path(arch_field: bytes, syscall_field: bytes) -> FastPath:
    """What the fast path does with the `arch=..` and `syscall=..` fields of a SYSCALL record."""
    try:
        name = audit_syscall_name(int(arch_field[5:], 16), int(syscall_field[8:]))
    except ValueError:
        return FastPath.BUILD_ROW
    if name in EXEC_SYSCALLS:
        return FastPath.EXEC
    if name in ("connect", "bind"):
        return FastPath.ADDRESS
    if name not in _ROW_SYSCALLS:
        return FastPath.NO_ROW
    return FastPath.BUILD_ROW


# Tables whose ring items hold their payloads as one zlib blob (pack_payloads): the durable
# ring stores those frames as they are and compresses the others' frames whole.
STORED_COMPRESSED = frozenset({PROCESS_FILE_EVENTS})
# Tables whose ring items are kept in blocks (blocks.py).
BLOCK_TABLES = (PROCESS_EVENTS, SOCKET_EVENTS)


def pack_payloads(payloads: Sequence[bytes]) -> bytes:
    """The payloads as one zlib blob: their lengths (u32 each), then their bytes."""
    lengths = struct.pack(f"<{len(payloads)}I", *map(len, payloads))
    return zlib.compress(lengths + b"".join(payloads), _ZLIB_LEVEL)


def unpack_payloads(blob: bytes, count: int) -> list[bytes]:
    data = zlib.decompress(blob)
    offset = 4 * count
    out = []
    for length in struct.unpack_from(f"<{count}I", data):
        out.append(data[offset : offset + length])
        offset += length
    return out


def stored_event(item: object, reader: BlockReader | None = None) -> Event:
    """The event an item holds, ready to build a row from (reader: the table's BlockReader,
    which keeps the last block decoded for the next item)."""
    if is_block_item(item):
        block, index = item  # type: ignore[misc]
        payloads = (reader or BlockReader()).payloads(block, index)
        return Event(block.types[index], payloads, True, block.when(index))
    types, payloads = item  # type: ignore[misc]
    if payloads.__class__ is bytes:
        return Event(types, unpack_payloads(payloads, len(types)))  # type: ignore[arg-type]
    return Event(types, list(payloads))


def _item_parts(item: object) -> Parts:
    """An item not kept in a block as (types, payloads, sec, msec, serial)."""
    event = stored_event(item)
    return event.types, event.payloads, event.sec, event.msec, event.serial  # type: ignore[return-value]


# The tables whose rows are built many at a time (rows.py), from items kept in blocks.
_MANY_ROWS: dict[str, ManyRows] = {PROCESS_EVENTS: process_rows, SOCKET_EVENTS: socket_rows}


class TableRows:
    """One table's row builder: called with an item, its whole row; `rows` builds the rows
    of every item a query selected at once, only the columns it uses, in osquery's text
    form if asked (EventTable uses it)."""

    __slots__ = ("_boot_time", "_many", "_one")

    def __init__(
        self, one: Callable[[object], dict | None], many: ManyRows | None = None, boot: float = 0
    ) -> None:
        """one: an item's whole row; many (rows.py's process_rows, socket_rows): the rows of
        many items at once, from their blocks (blocks.item_runs), else `one` for each item."""
        self._one = one
        self._many = many
        self._boot_time = boot

    def __call__(self, item: object) -> dict | None:
        return self._one(item)

    def rows(
        self, items: Iterable[object], columns: Sequence[str], text: TextEncoding | None
    ) -> list[dict | None]:
        """The row of each item (None where it gives none) holding `columns` only, in that
        order, as text if `text`: the same as cut_row(self(item), columns, text)."""
        if self._many is not None:
            return self._many(item_runs(items, _item_parts), self._boot_time, columns, text)
        build = self._one
        return [cut_row(build(item), columns, text) for item in items]


class EventRouter:
    """The reader's sink: puts each completed event that gives a row into its table's ring."""

    def __init__(
        self,
        process_ring: EventRing,
        socket_ring: EventRing,
        boot_time: float,
        *,
        drop_unix_key: str | None,
        other_rings: Mapping[str, EventRing] | None = None,
        file_paths: FilePaths | None = None,
        fim_accesses: bool = False,
    ) -> None:
        """drop_unix_key: drop AF_UNIX socket rows that only this rule key produced (the
        kernel rule cannot filter accept by family); None keeps them. other_rings: a ring
        for each other table turned on (user_events, process_file_events, ...), by name;
        file_paths and fim_accesses decide process_file_events rows."""
        self.process_ring = process_ring
        self.socket_ring = socket_ring
        self.boot_time = boot_time
        self.drop_unix_key = drop_unix_key
        self.other_rings = dict(other_rings or {})
        self.file_paths = file_paths or FilePaths({})
        self.fim_accesses = fim_accesses
        self._user_ring = self.other_rings.get(USER_EVENTS)
        self._file_ring = self.other_rings.get(PROCESS_FILE_EVENTS)
        self._mac_rings = {
            name: ring
            for name, ring in self.other_rings.items()
            if name in (SECCOMP_EVENTS, SELINUX_EVENTS, APPARMOR_EVENTS)
        }
        # Durable ring: {table: journal} each batch's new entries are written to.
        self.journals: dict[str, RingJournal] | None = None
        self._blocks = {table: BlockWriter() for table in BLOCK_TABLES}

    def rings(self) -> dict[str, EventRing]:
        return {
            PROCESS_EVENTS: self.process_ring,
            SOCKET_EVENTS: self.socket_ring,
            **self.other_rings,
        }

    def builder(self, table: str) -> TableRows:
        """`table`'s row builder: called with one item, its row; .rows for many at once."""
        if table == PROCESS_FILE_EVENTS:
            file_paths, accesses, boot_time = self.file_paths, self.fim_accesses, self.boot_time

            def build_file_row(item: object) -> dict | None:
                # (types, payloads[, the dirfd directories found at arrival])
                dirs = dict(item[2]) if len(item) > 2 else None  # type: ignore[arg-type]
                event = stored_event(item[:2])  # type: ignore[index]
                return file_row(event, boot_time, file_paths, accesses=accesses, dirfd_paths=dirs)

            return TableRows(build_file_row)
        if table in RECORD_ROWS:
            build = RECORD_ROWS[table]
        else:
            build = process_row if table == PROCESS_EVENTS else socket_row
        boot = self.boot_time
        reader = BlockReader()  # per builder: the block it decoded last

        def build_row(item: object) -> dict | None:
            return build(stored_event(item, reader), boot)  # type: ignore[arg-type]

        return TableRows(build_row, _MANY_ROWS.get(table), boot)

    def ring_items(self, table: str, entries: Iterable[Entry]) -> Iterator[Entry]:
        """Entries read back from the durable ring with their items as the ring keeps them
        (in blocks for process and socket events)."""
        writer = self._blocks.get(table)
        if writer is None:
            yield from entries
            return
        for eid, when, pid, item in entries:
            event = stored_event(item)
            stamp = (event.sec, event.msec, event.serial)
            yield eid, when, pid, writer.add(event.types, event.payloads, stamp)  # type: ignore[arg-type]

    def route(self, events: list[Event]) -> None:
        written: dict[str, list[Entry]] | None = None if self.journals is None else {}
        # Each table's new entries, appended at the end in one go (the rings are separate:
        # the eids are those one append each would give).
        if _ingestfast is not None and not self._mac_rings and self._file_ring is None:
            process, process_events, sockets, socket_events = _ingestfast.split(self, events)
            if self._user_ring is not None:  # user messages come alone and give no other row
                for event in events:
                    if len(event.types) == 1 and is_user_message(event.types[0]):
                        self._route_other(event, False, written)
        else:
            process, process_events, sockets, socket_events = self.split_python(events, written)
        for table, ring, entries, routed in (
            (PROCESS_EVENTS, self.process_ring, process, process_events),
            (SOCKET_EVENTS, self.socket_ring, sockets, socket_events),
        ):
            if not entries:
                continue
            eid = ring.append_many(entries)
            if written is not None:  # the journal takes the payloads as they are
                written.setdefault(table, []).extend(
                    [
                        (eid + number, when, pid, (event.types, event.payloads))
                        for number, ((when, pid, _item), event) in enumerate(zip(entries, routed))
                    ]
                )
        if written:
            self._write_journals(written)

    def split_python(
        self, events: list[Event], written: dict[str, list[Entry]] | None
    ) -> tuple[
        list[tuple[int, int | None, object]],
        list[Event],
        list[tuple[int, int | None, object]],
        list[Event],
    ]:
        """route's loop: the (time, pid, item) entries of the events that give a process
        row, those events, then the same for socket rows; each item added to its table's
        open block. The other tables' rows go to their rings here. Compiled
        (events/_ingestfast.c's split) where it is built, for a router whose other tables
        are user_events alone (the default): route then gives the user messages their rows.
        """
        classify, other = self.classify, self.other_rings
        process_block, socket_block = self._blocks[PROCESS_EVENTS], self._blocks[SOCKET_EVENTS]
        process: list[tuple[int, int | None, object]] = []
        sockets: list[tuple[int, int | None, object]] = []
        process_events: list[Event] = []
        socket_events: list[Event] = []
        for event in events:
            found = classify(event)
            if found is not None:
                table, pid = found
                stamp = (event.sec, event.msec, event.serial)
                if table == PROCESS_EVENTS:
                    item = process_block.add(event.types, event.payloads, stamp)
                    process.append((event.sec, pid, item))
                    process_events.append(event)
                else:
                    item = socket_block.add(event.types, event.payloads, stamp)
                    sockets.append((event.sec, pid, item))
                    socket_events.append(event)
            if other:
                self._route_other(event, found is not None, written)
        return process, process_events, sockets, socket_events

    @staticmethod
    def _append(
        table: str,
        ring: EventRing,
        when: int | None,
        pid: int | None,
        item: object,
        written: dict[str, list[Entry]] | None,
    ) -> None:
        eid = ring.append(when, pid, item)
        if written is not None:
            written.setdefault(table, []).append((eid, when, pid, item))

    def _write_journals(self, written: dict[str, list[Entry]]) -> None:
        """The batch's new entries to each table's journal (the durable ring)."""
        journals = self.journals or {}
        for table, entries in written.items():
            journal = journals.get(table)
            if journal is None:
                continue
            journal.write(entries)
            ring = self.ring_of(table)
            if journal.needs_prune(ring.first_eid):
                journal.prune(ring.first_eid)

    def ring_of(self, table: str) -> EventRing:
        """rings()[table], without building that dict (once per batch and journal)."""
        ring = self.other_rings.get(table)
        if ring is not None:
            return ring
        if table == PROCESS_EVENTS:
            return self.process_ring
        if table == SOCKET_EVENTS:
            return self.socket_ring
        return self.rings()[table]

    def _route_other(
        self, event: Event, has_row: bool, written: dict[str, list[Entry]] | None
    ) -> None:
        """The other tables' rows of an event: per record for user messages, seccomp and
        MAC records; per event for file calls on a watched path."""
        types = event.types
        boot = self.boot_time
        if len(types) == 1 and is_user_message(types[0]):  # user messages come alone
            if self._user_ring is not None:
                row = user_row(event, boot)
                if row is not None:
                    item = (types, tuple(event.payloads))
                    self._append(USER_EVENTS, self._user_ring, event.sec, row["pid"], item, written)
            return
        if self._mac_rings:
            for index, record_type in enumerate(types):
                if record_type < AUDIT_SECCOMP:
                    continue
                payload = event.payloads[index]
                table = mac_table(record_type, payload)
                ring = self._mac_rings.get(table) if table is not None else None
                if ring is None:
                    continue
                single = Event(
                    (record_type,), [payload], True, (event.sec, event.msec, event.serial)
                )
                row = RECORD_ROWS[table](single, boot)
                if row is not None:
                    item = ((record_type,), (payload,))
                    self._append(table, ring, event.sec, row.get("pid"), item, written)
        if self._file_ring is not None and not has_row and AUDIT_PATH in types:
            row = file_row(event, boot, self.file_paths, accesses=self.fim_accesses)
            dirs = None
            if row is None or row["partial"] == "true":
                # A name relative to a directory fd: look at the fd now, while the process
                # most likely still holds it (the row is rebuilt from what is kept).
                dirs = dirfd_paths_from_proc(event)
                if dirs:
                    row = file_row(
                        event, boot, self.file_paths, accesses=self.fim_accesses, dirfd_paths=dirs
                    )
            if row is not None:
                # kept compressed, as process events: a file event is ~1.2 KB of text
                packed = pack_payloads(event.payloads)
                item = (types, packed, tuple(dirs.items())) if dirs else (types, packed)
                self._append(
                    PROCESS_FILE_EVENTS, self._file_ring, event.sec, row["pid"], item, written
                )

    def classify(self, event: Event) -> tuple[str, int | None] | None:
        """(table, pid) of the row the event gives, or None when it gives none: the fast
        path compiled (events/_ingestfast.c) where it is built, else classify_python."""
        if _ingestfast is not None:
            return _ingestfast.classify(self, event)  # type: ignore[no-any-return]
        return self.classify_python(event)

    def classify_python(self, event: Event) -> tuple[str, int | None] | None:
        """classify in Python: the fast path reads the SYSCALL record's fixed start (and
        the SOCKADDR's family), any other event is decided by building its row."""
        types = event.types
        if AUDIT_SYSCALL not in types:
            return None  # neither table has a row without a SYSCALL record
        index = types.index(AUDIT_SYSCALL)
        parts = event.payloads[index].split(b" ", 12)
        if (
            len(parts) == 13
            and parts[1][:5] == b"arch="
            and parts[2][:8] == b"syscall="
            and parts[3][:8] == b"success="
            and parts[11][:4] == b"pid="
        ):
            path = _fast_path(parts[1], parts[2])
            if path is FastPath.NO_ROW:
                return None
            try:
                pid = int(parts[11][4:])
            except ValueError:
                path = FastPath.BUILD_ROW
            if path is FastPath.EXEC:  # failed execs give no row (as in osquery)
                return (PROCESS_EVENTS, pid) if parts[3] == b"success=yes" else None
            if path is FastPath.ADDRESS:
                if AUDIT_SOCKADDR not in types:
                    return None  # connect/bind without an address: not from a socket rule
                sockaddr = event.payloads[types.index(AUDIT_SOCKADDR)]
                if self.drop_unix_key is None:
                    return SOCKET_EVENTS, pid
                at = sockaddr.find(b" saddr=")
                if at < 0:
                    at = sockaddr.find(b":saddr=")
                if at >= 0 and sockaddr[at + 7 : at + 11] not in _UNIX_FAMILY_HEX:
                    return SOCKET_EVENTS, pid
        return self._classify_by_row(event)

    def _classify_by_row(self, event: Event) -> tuple[str, int | None] | None:
        """The slow, exact way: build the row (then forget it; queries build it again)."""
        row = process_row(event, self.boot_time)
        if row is not None:
            return PROCESS_EVENTS, row["pid"]
        row = socket_row(event, self.boot_time)
        if row is None:
            return None
        if (
            self.drop_unix_key is not None
            and row["family"] == AF_UNIX
            and row["key"] == self.drop_unix_key
        ):
            return None
        return SOCKET_EVENTS, row["pid"]


# classify's fast path and route's loop in C where built (events/_ingestfast.c, which also
# runs Coalescer.add_batch); they take the fast-path verdicts, the constants and the table
# names from here.
_ingestfast = compiled(f"{__package__}._ingestfast")
if _ingestfast is not None:
    _ingestfast.bind_routing(
        _fast_path,
        FastPath.EXEC,
        FastPath.ADDRESS,
        FastPath.NO_ROW,
        _UNIX_FAMILY_HEX,
        PROCESS_EVENTS,
        SOCKET_EVENTS,
        AUDIT_SYSCALL,
        AUDIT_SOCKADDR,
        blocks,
    )
