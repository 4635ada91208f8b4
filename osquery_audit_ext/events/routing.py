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

Process events are kept zlib-compressed (an execve's records are ~1 KB of text; an exec is
costly enough that 10 us more does not show); socket events, which come in storms, are kept
as they are.
"""

from __future__ import annotations

import enum
import functools
import struct
import zlib
from collections.abc import Callable, Sequence

from ..audit.consts import AF_UNIX, AUDIT_SOCKADDR, AUDIT_SYSCALL
from .coalesce import Event
from .journal import RingJournal
from .ring import EventRing
from .rows import (
    EXEC_SYSCALLS,
    FORK_SYSCALLS,
    KILL_SYSCALLS,
    SOCKET_ACTIONS,
    audit_syscall_name,
    process_row,
    socket_row,
)

PROCESS_EVENTS = "process_events"
SOCKET_EVENTS = "socket_events"


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

# An item: (record types, payloads); payloads a tuple of bytes, or for process events one
# zlib blob of the payloads preceded by their lengths.
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


def stored_event(item: Item) -> Event:
    """The event an item holds, ready to build a row from."""
    types, payloads = item
    if payloads.__class__ is bytes:
        return Event(types, unpack_payloads(payloads, len(types)))  # type: ignore[arg-type]
    return Event(types, list(payloads))


class EventRouter:
    """The reader's sink: puts each completed event that gives a row into its table's ring."""

    def __init__(
        self,
        process_ring: EventRing,
        socket_ring: EventRing,
        boot_time: float,
        *,
        drop_unix_key: str | None,
    ) -> None:
        """drop_unix_key: drop AF_UNIX socket rows that only this rule key produced (the
        kernel rule cannot filter accept by family); None keeps them."""
        self.process_ring = process_ring
        self.socket_ring = socket_ring
        self.boot_time = boot_time
        self.drop_unix_key = drop_unix_key
        # Durable ring: (process, socket) journals each batch's new entries are written to.
        self.journals: tuple[RingJournal, RingJournal] | None = None

    def rings(self) -> dict[str, EventRing]:
        return {PROCESS_EVENTS: self.process_ring, SOCKET_EVENTS: self.socket_ring}

    def builder(self, table: str) -> Callable[[object], dict | None]:
        """The function that turns one of `table`'s items back into its row."""
        build = process_row if table == PROCESS_EVENTS else socket_row
        boot = self.boot_time

        def build_row(item: object) -> dict | None:
            return build(stored_event(item), boot)  # type: ignore[arg-type]

        return build_row

    def route(self, events: list[Event]) -> None:
        journals = self.journals
        written: tuple[list, list] | None = None if journals is None else ([], [])
        for event in events:
            found = self.classify(event)
            if found is None:
                continue
            table, pid = found
            types = event.types  # the coalescer's shared tuple
            if table == PROCESS_EVENTS:
                item: Item = (types, pack_payloads(event.payloads))
                eid = self.process_ring.append(event.sec, pid, item)
                if written is not None:
                    written[0].append((eid, event.sec, pid, item))
            else:
                item = (types, tuple(event.payloads))
                eid = self.socket_ring.append(event.sec, pid, item)
                if written is not None:
                    written[1].append((eid, event.sec, pid, item))
        if journals is not None and written is not None:
            for journal, ring, entries in zip(journals, self.rings().values(), written):
                if entries:
                    journal.write(entries)
                    if journal.needs_prune(ring.first_eid):
                        journal.prune(ring.first_eid)

    def classify(self, event: Event) -> tuple[str, int | None] | None:
        """(table, pid) of the row the event gives, or None when it gives none."""
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
