"""Ring items kept in blocks: a run of consecutive events of one table, compressed together.

An event's records are ~0.5-1 KB of text, much of it repeated from one event to the next (the
same process, executable, rule key, record header). zlib over one event at a time costs
~20-30 us an event and gains little; over a block of BLOCK_ITEMS events it costs a few
microseconds an event and keeps ~50-90 bytes of each. So the reader appends each event's
(types, payloads) to its table's open block, the ring's item is (block, index), and a
block is sealed (one raw deflate blob of every payload's length, then their bytes) when it is
full. Queries read an open block's payloads as they are and decompress a sealed block
once for all of its items (BlockReader keeps the last one decoded: scans and pid queries
read neighbours).

Threads: the reader appends and seals, queries read. Sealing sets the blob before it drops
the open payloads, and a reader takes the payload list into a local first, so a query sees
one or the other, both complete. Items appended after a block is sealed go to a new block.
"""

from __future__ import annotations

import struct
import zlib
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import accumulate
from typing import NamedTuple

from ..accel import compiled

_rowsfast = compiled(f"{__package__}._rowsfast")  # its block_groups: item_runs' loop in C

BLOCK_ITEMS = 128  # events a block holds before it is sealed
_ZLIB_LEVEL = 1
# Raw deflate: a block lives only in memory, so the zlib header and its adler32 checksum
# (~4% of a full scan's CPU) buy nothing.
_RAW_DEFLATE = -zlib.MAX_WBITS


def _compress(data: bytes) -> bytes:
    """data as raw deflate (zlib.compress has no wbits before Python 3.11)."""
    packer = zlib.compressobj(_ZLIB_LEVEL, zlib.DEFLATED, _RAW_DEFLATE)
    return packer.compress(data) + packer.flush()


_LENGTHS: dict[int, struct.Struct] = {}  # "<{n}I" per payload count, made once
Stamp = tuple[int, int, int]  # an event's (seconds, milliseconds, serial)


def _lengths_struct(count: int) -> struct.Struct:
    found = _LENGTHS.get(count)
    if found is None:
        found = _LENGTHS[count] = struct.Struct(f"<{count}I")
    return found


class Block:
    """Up to BLOCK_ITEMS items of one table: (types, payloads) each, open then sealed."""

    __slots__ = ("blob", "open", "stamps", "types")

    def __init__(self) -> None:
        self.types: list[tuple[int, ...]] = []  # each item's record types (shared tuples)
        # Each item's (seconds, milliseconds, serial), flat: 24 bytes spare parsing the stamp
        # again for every row built.
        self.stamps = array("q")
        self.open: list[Sequence[bytes]] | None = []  # each item's payloads, until sealed
        self.blob: bytes | None = None  # once sealed: every length (u32), then every payload

    def add(self, types: tuple[int, ...], payloads: Sequence[bytes], when: Stamp) -> int:
        """Append an item (its stamp: the event's sec, msec, serial) to the open block; its
        index in the block."""
        open_ = self.open
        assert open_ is not None, "a sealed block takes no items"
        self.stamps.extend(when)
        open_.append(payloads)
        self.types.append(types)
        return len(open_) - 1

    def when(self, index: int) -> Stamp:
        """Item `index`'s (seconds, milliseconds, serial)."""
        at = 3 * index
        return tuple(self.stamps[at : at + 3])  # type: ignore[return-value]

    def full(self) -> bool:
        return len(self.types) >= BLOCK_ITEMS

    def seal(self) -> None:
        """Compress the payloads into one blob and drop them."""
        open_ = self.open
        if open_ is None:
            return
        flat = [payload for payloads in open_ for payload in payloads]
        lengths = _lengths_struct(len(flat)).pack(*map(len, flat))
        self.blob = _compress(lengths + b"".join(flat))
        self.open = None

    def decode(self) -> list[list[bytes]]:
        """Every item's payloads, as appended."""
        open_ = self.open
        if open_ is not None:
            return [list(payloads) for payloads in open_]
        pieces, starts = self.unpack()
        return [pieces[start:end] for start, end in zip(starts, starts[1:])]

    def unpack(self) -> tuple[list[bytes], list[int]]:
        """A sealed block's payloads in one list, and where each item's start in it (one
        more at the end): the slicing done by C loops (accumulate, zip) but one."""
        data, offsets, starts = self.unpack_data()
        pieces = [data[start:end] for start, end in zip(offsets, offsets[1:])]
        return pieces, starts

    def unpack_data(self) -> tuple[bytes, list[int], list[int]]:
        """A sealed block's blob decompressed, where each payload starts in it (one more at
        the end), and each item's first payload (an index into those, one more at the end)."""
        data = zlib.decompress(self.blob, _RAW_DEFLATE)  # type: ignore[arg-type]
        counts = list(map(len, self.types))
        total = sum(counts)
        offsets = list(accumulate(_lengths_struct(total).unpack_from(data), initial=4 * total))
        return data, offsets, list(accumulate(counts, initial=0))


class BlockWriter:
    """One table's open block: items in, (block, index) ring items out."""

    def __init__(self) -> None:
        self.block = Block()

    def add(
        self, types: tuple[int, ...], payloads: Sequence[bytes], when: Stamp
    ) -> tuple[Block, int]:
        """The ring item for an event's (types, payloads, stamp): sealed with its block once
        full."""
        block = self.block
        item = (block, block.add(types, payloads, when))
        if block.full():
            block.seal()
            self.block = Block()
        return item


class BlockReader:
    """Items back from blocks, the last sealed block unpacked kept for its neighbours."""

    def __init__(self) -> None:
        self._last: tuple[Block | None, list[bytes], list[int]] = (None, [], [])

    def payloads(self, block: Block, index: int) -> list[bytes]:
        """A copy of the payloads of item `index` of `block`."""
        open_ = block.open
        if open_ is not None:
            return list(open_[index])
        last_block, pieces, starts = self._last  # one read: another thread may replace it
        if last_block is not block:
            pieces, starts = block.unpack()
            self._last = (block, pieces, starts)
        return pieces[starts[index] : starts[index + 1]]


def is_block_item(item: object) -> bool:
    """Whether a ring item is (block, index) rather than (types, payloads...)."""
    return item[0].__class__ is Block  # type: ignore[index]


class Run(NamedTuple):
    """Items of one block a query selected, as row builders take them: every payload of the
    block in one bytes object, so a builder slices only the parts it reads."""

    data: bytes  # the payloads, one after another
    offsets: list[int]  # where each payload starts in data, and one more at the end
    starts: list[int]  # each item's first payload (an index into offsets), one more at the end
    types: Sequence[tuple[int, ...]]  # each item's record types
    stamps: Sequence[int]  # each item's (seconds, milliseconds, serial), flat
    indices: list[int]  # the items selected, in order


# An event as (record types, payloads, seconds, milliseconds, serial).
Parts = tuple[tuple[int, ...], Sequence[bytes], int, int, int]


def _run_of(
    types: Sequence[tuple[int, ...]],
    payloads: Iterable[bytes],
    stamps: Sequence[int],
    indices: list[int],
) -> Run:
    """A Run of payloads kept apart (an open block, an item not in a block)."""
    flat = list(payloads)
    offsets = list(accumulate(map(len, flat), initial=0))
    starts = list(accumulate(map(len, types), initial=0))
    return Run(b"".join(flat), offsets, starts, types, stamps, indices)


def item_runs(items: Iterable[object], other: Callable[[object], Parts]) -> Iterator[Run]:
    """The items (in eid order: a block's items come together) as one Run per block, each
    sealed block decompressed once; `other` gives the parts of an item that is not
    (block, index).

    Thread safety as BlockReader: an open block's payload list is read once into a local
    (the reader may seal it meanwhile; the list itself is not changed), and the stamps and
    types of an item the ring holds were appended before its ring entry, so a snapshot of
    them taken now holds every selected item's."""
    if _rowsfast is not None and items.__class__ is list:  # the grouping loop in C
        for held, selected in _rowsfast.block_groups(items, Block):
            if selected is not None:
                yield _block_run(held, selected)
                continue
            types, payloads, sec, msec, serial = other(held)
            yield _run_of([types], payloads, [sec, msec, serial], [0])
        return
    block = None
    indices: list[int] = []
    for item in items:
        held = item[0]  # type: ignore[index]
        if held is block:
            indices.append(item[1])  # type: ignore[index]
            continue
        if block is not None:
            yield _block_run(block, indices)
            block = None
        if held.__class__ is Block:
            block, indices = held, [item[1]]  # type: ignore[index]
            continue
        types, payloads, sec, msec, serial = other(item)
        yield _run_of([types], payloads, [sec, msec, serial], [0])
    if block is not None:
        yield _block_run(block, indices)


def _block_run(block: Block, indices: list[int]) -> Run:
    open_ = block.open
    stamps = block.stamps.tolist()
    if open_ is not None:
        held = open_[: max(indices) + 1]  # the items selected were appended before the query
        flat = [payload for payloads in held for payload in payloads]
        return _run_of(block.types[: len(held)], flat, stamps, indices)
    data, offsets, starts = block.unpack_data()
    return Run(data, offsets, starts, block.types, stamps, indices)
