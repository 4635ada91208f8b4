"""The durable ring: a table's ring entries, appended to segment files in a directory, so that
events already read survive a crash of the extension (kill -9, osqueryd's watchdog).

On disk a table's directory holds segments named by the first eid they hold,
`00000000000000001234.seg`, each a sequence of frames, one per batch the reader routed:

    frame  = magic (4 bytes: b"OAJ0" plain, b"OAJZ" zlib, b"OAJS" zlib stream) | length u32
             | crc32 u32 | body
    body   = entry*            (zlib-compressed as a whole for b"OAJZ"; for b"OAJS" the next
                                piece of one zlib stream per segment, each frame ended by a
                                sync flush so that it decodes whole given the frames before)
    entry  = eid u64 | time i64 | pid i64 | flags u8 | count u16 | type u32 * count | payload
             [extras]
    payload= (flags & BLOB) ? length u32 + bytes : (length u32 + bytes) * count
    extras = (flags & EXTRAS) ? n u16 + (key i64 + length u32 + bytes) * n
             (an item's third element: process_file_events' dirfd directories, (fd, path)*)

All integers little-endian. A crash in the middle of a write leaves a torn last frame (short,
or failing its crc): recovery keeps every frame before it, counts it, and cuts it off the
file. Segments are deleted whole once the ring has evicted everything in them, so the disk
holds what the ring holds plus one segment.

Flush policies follow auditd's `flush` (auditd.conf), trading cost for what a power loss may
take (a crash of the process loses nothing written in any policy: the kernel has the data):

- none (the default, as osquery's own RocksDB writes): write(2) only; a power loss may take
  what the kernel had not written back (normally up to vm.dirty_expire_centisecs, 30 s).
- incremental_async: fdatasync every `freq` events on a background thread, so the reader
  never waits for the disk; a power loss may take about the last `freq` events.
- data: fdatasync after every batch, in the reader thread: a power loss takes nothing
  written, at the cost of one disk flush per batch.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

FLUSH_POLICIES = ("none", "incremental_async", "data")
SEGMENT_SUFFIX = ".seg"
SEGMENT_BYTES = 8 * 1024 * 1024  # a new segment after this many bytes

_PLAIN, _ZLIB, _STREAM = b"OAJ0", b"OAJZ", b"OAJS"
_FRAME = struct.Struct("<4sII")
_ENTRY = struct.Struct("<QqqBH")
_U32 = struct.Struct("<I")
_NO_TIME, _NO_PID, _BLOB, _EXTRAS = 1, 2, 4, 8
_EXTRA = struct.Struct("<qI")
_U16 = struct.Struct("<H")
_ZLIB_LEVEL = 1
_MAX_FRAME = 256 * 1024 * 1024  # a length beyond this is garbage, not a frame
_TYPE_STRUCTS: dict[int, struct.Struct] = {}  # "<{count}I" per record count, made once

Entry = tuple[int, "int | None", "int | None", object]  # as EventRing.query returns


class JournalFormatError(ValueError):
    """Bytes that are not a well-formed frame body."""


# -- format -----------------------------------------------------------------------------------


# Each record-type tuple packed once (events of one shape share it): ~0.6 us an entry spared.
_PACKED_TYPES: dict[tuple[int, ...], bytes] = {}
_PACKED_TYPES_MAX = 1024


def _packed_types(types: tuple[int, ...]) -> bytes:
    if len(_PACKED_TYPES) >= _PACKED_TYPES_MAX:
        _PACKED_TYPES.clear()
    packed = _PACKED_TYPES[types] = struct.pack(f"<{len(types)}I", *types)
    return packed


def encode_entries(entries: Sequence[Entry]) -> bytes:
    """One frame body: the entries in order (items are (types, blob or payload tuple) and
    optionally a third element, a tuple of (int, bytes) pairs)."""
    parts: list[bytes] = []
    pack, u32 = _ENTRY.pack, _U32.pack
    packed_types = _PACKED_TYPES.get
    for eid, when, pid, item in entries:
        types, payloads = item[0], item[1]  # type: ignore[index]
        extras = item[2] if len(item) > 2 else ()  # type: ignore[arg-type]
        flags = (_NO_TIME if when is None else 0) | (_NO_PID if pid is None else 0)
        blob = isinstance(payloads, bytes)
        if blob:
            flags |= _BLOB
        if extras:
            flags |= _EXTRAS
        parts.append(pack(eid, when or 0, pid or 0, flags, len(types)))
        parts.append(packed_types(types) or _packed_types(types))
        if blob:
            parts.append(u32(len(payloads)))
            parts.append(payloads)
        else:
            for payload in payloads:
                parts.append(u32(len(payload)))
                parts.append(payload)
        if extras:
            parts.append(_U16.pack(len(extras)))
            for key, value in extras:
                parts.append(_EXTRA.pack(key, len(value)))
                parts.append(value)
    return b"".join(parts)


def decode_entries(body: bytes) -> list[Entry]:
    """The entries of one frame body; JournalFormatError when it is not well formed.

    Run once per entry at start for the whole ring (100k entries), so it is written flat:
    struct formats and record-type tuples are shared, payloads are plain slices."""
    entries: list[Entry] = []
    offset, end = 0, len(body)
    entry_at, u32_at = _ENTRY.unpack_from, _U32.unpack_from
    type_structs = _TYPE_STRUCTS
    shared_types: dict[tuple[int, ...], tuple[int, ...]] = {}
    try:
        while offset < end:
            eid, when, pid, flags, count = entry_at(body, offset)
            offset += _ENTRY.size
            types_struct = type_structs.get(count)
            if types_struct is None:
                types_struct = type_structs[count] = struct.Struct(f"<{count}I")
            types = types_struct.unpack_from(body, offset)
            types = shared_types.setdefault(types, types)
            offset += 4 * count
            if flags & _BLOB:
                (length,) = u32_at(body, offset)
                offset += 4 + length
                if offset > end:
                    raise JournalFormatError(f"a payload runs past the end at byte {offset}")
                payloads: object = body[offset - length : offset]
            else:
                items = []
                for _ in range(count):
                    (length,) = u32_at(body, offset)
                    offset += 4 + length
                    if offset > end:
                        raise JournalFormatError(f"a payload runs past the end at byte {offset}")
                    items.append(body[offset - length : offset])
                payloads = tuple(items)
            item: tuple = (types, payloads)
            if flags & _EXTRAS:
                (n,) = _U16.unpack_from(body, offset)
                offset += 2
                extras = []
                for _ in range(n):
                    key, length = _EXTRA.unpack_from(body, offset)
                    offset += _EXTRA.size + length
                    if offset > end:
                        raise JournalFormatError(f"an extra runs past the end at byte {offset}")
                    extras.append((key, body[offset - length : offset]))
                item = (types, payloads, tuple(extras))
            entries.append(
                (
                    eid,
                    None if flags & _NO_TIME else when,
                    None if flags & _NO_PID else pid,
                    item,
                )
            )
    except struct.error as exc:
        raise JournalFormatError(f"truncated entry at byte {offset}: {exc}") from None
    return entries


def encode_frame(entries: Sequence[Entry], compress: bool) -> bytes:
    """One frame standing alone: plain, or zlib-compressed whole (b"OAJZ")."""
    body = encode_entries(entries)
    magic = _PLAIN
    if compress:
        body, magic = zlib.compress(body, _ZLIB_LEVEL), _ZLIB
    return _FRAME.pack(magic, len(body), zlib.crc32(body)) + body


class FrameEncoder:
    """One segment's frames: plain, or (compress) pieces of one zlib stream (b"OAJS").

    zlib.compress per frame sets up and tears down a compressor each time (~20-100 us even
    for the 1 KB frame of one exec arriving alone); one stream per segment costs a few us a
    frame and compresses each frame against the ones before it."""

    def __init__(self, compress: bool) -> None:
        self._deflate = zlib.compressobj(_ZLIB_LEVEL) if compress else None

    def frame(self, entries: Sequence[Entry]) -> bytes:
        deflate = self._deflate
        if deflate is None:
            return encode_frame(entries, False)
        body = deflate.compress(encode_entries(entries)) + deflate.flush(zlib.Z_SYNC_FLUSH)
        return _FRAME.pack(_STREAM, len(body), zlib.crc32(body)) + body


@dataclass
class Scan:
    """What reading one segment's bytes found."""

    entries: list[Entry] = field(default_factory=list)
    good_bytes: int = 0  # length of the well-formed prefix
    bad_frames: int = 0  # 1 when a torn or corrupt frame ended the scan


def scan_frames(data: bytes) -> Scan:
    """Every entry of the well-formed frames at the start of `data`; stops at the first bad one
    (a torn tail after a crash, or damage), never raises."""
    scan = Scan()
    offset, end = 0, len(data)
    inflate = zlib.decompressobj()  # the segment's stream (b"OAJS" frames)
    while offset < end:
        if end - offset < _FRAME.size:
            scan.bad_frames = 1
            break
        magic, length, crc = _FRAME.unpack_from(data, offset)
        start = offset + _FRAME.size
        if magic not in (_PLAIN, _ZLIB, _STREAM) or length > _MAX_FRAME or start + length > end:
            scan.bad_frames = 1
            break
        body = data[start : start + length]
        if zlib.crc32(body) != crc:
            scan.bad_frames = 1
            break
        try:
            if magic == _ZLIB:
                body = zlib.decompress(body)
            elif magic == _STREAM:
                body = inflate.decompress(body)
            entries = decode_entries(body)
        except (zlib.error, JournalFormatError):
            scan.bad_frames = 1
            break
        scan.entries.extend(entries)
        offset = start + length
        scan.good_bytes = offset
    return scan


# -- files ------------------------------------------------------------------------------------


@dataclass
class Recovery:
    entries: list[Entry]
    torn: int  # torn or corrupt frames found (and cut off)
    segments: int  # segment files read


@dataclass
class _Segment:
    path: Path
    first_eid: int
    last_eid: int


class RingJournal:
    """One table's segment files in `directory` (created 0700 if missing)."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        compress: bool,
        flush: str = "none",
        freq: int = 50,
        segment_bytes: int = SEGMENT_BYTES,
    ) -> None:
        if flush not in FLUSH_POLICIES:
            raise ValueError(f"flush must be one of {', '.join(FLUSH_POLICIES)}, got {flush!r}")
        self.directory = Path(directory)
        self.compress = compress
        self.flush = flush
        self.freq = max(freq, 1)
        self.segment_bytes = segment_bytes
        self.written = 0  # entries written since start
        self.write_errors = 0
        self._segments: list[_Segment] = []
        self._fd: int | None = None
        self._encoder: FrameEncoder | None = None  # the open segment's (None: open a new one)
        self._size = 0
        self._unsynced = 0
        self._fd_lock = threading.Lock()  # the sync thread and rotation share the fd
        self._sync_wanted = threading.Event()
        self._closing = False
        self._syncer: threading.Thread | None = None

    # -- recovery ---------------------------------------------------------------------------

    def recover(self) -> Recovery:
        """Read every segment; cut torn tails off; the entries in eid order."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        entries: list[Entry] = []
        torn = 0
        paths = sorted(self._segment_paths())
        for _first_eid, path in paths:
            try:
                data = path.read_bytes()
            except OSError as exc:
                log.error("cannot read ring segment %s: %s", path, exc.strerror)
                torn += 1
                continue
            scan = scan_frames(data)
            if scan.bad_frames:
                torn += scan.bad_frames
                log.warning(
                    "ring segment %s: torn or damaged after byte %d of %d; the rest is skipped",
                    path,
                    scan.good_bytes,
                    len(data),
                )
                try:
                    os.truncate(path, scan.good_bytes)
                except OSError as exc:
                    log.error("cannot cut the torn tail of %s: %s", path, exc.strerror)
            kept = [e for e in scan.entries if not entries or e[0] > entries[-1][0]]
            entries.extend(kept)
            if kept:
                self._segments.append(_Segment(path, kept[0][0], kept[-1][0]))
            else:
                self._unlink(path)
        return Recovery(entries, torn, len(paths))

    def _segment_paths(self) -> Iterator[tuple[int, Path]]:
        for path in self.directory.iterdir():
            stem = path.name[: -len(SEGMENT_SUFFIX)]
            if path.name.endswith(SEGMENT_SUFFIX) and stem.isdigit():
                yield int(stem), path

    # -- writing ----------------------------------------------------------------------------

    def write(self, entries: Sequence[Entry]) -> None:
        """Append one frame (the reader thread's batch). A disk error is logged and counted,
        never raised: the events stay in memory."""
        if not entries:
            return
        try:
            with self._fd_lock:
                if self._encoder is None or self._size >= self.segment_bytes:
                    self._rotate(entries[0][0])
                encoder, fd = self._encoder, self._fd
                assert encoder is not None and fd is not None
                try:
                    frame = encoder.frame(entries)
                except (struct.error, TypeError, ValueError) as exc:  # nothing a reader makes
                    self._encoder = None  # the stream may hold part of it: a new segment
                    self.write_errors += 1
                    log.error("cannot encode a ring entry for %s: %s", self.directory, exc)
                    return
                self._encoder = None  # until the frame is all written: a new segment if not
                view = memoryview(frame)
                while view:
                    view = view[os.write(fd, view) :]
                self._encoder = encoder
                self._size += len(frame)
                self._segments[-1].last_eid = entries[-1][0]
                if self.flush == "data":
                    os.fdatasync(fd)
        except OSError as exc:
            self.write_errors += 1
            if self.write_errors == 1 or self.write_errors % 1000 == 0:
                log.error("cannot write the durable ring in %s: %s", self.directory, exc)
            return
        self.written += len(entries)
        if self.flush == "incremental_async":
            self._unsynced += len(entries)
            if self._unsynced >= self.freq:
                self._unsynced = 0
                self._sync_wanted.set()

    def _rotate(self, first_eid: int) -> None:
        """Under _fd_lock: close the current segment (synced unless flush=none), open a new one."""
        self._encoder = None
        if self._fd is not None:
            if self.flush != "none":
                os.fdatasync(self._fd)
            os.close(self._fd)
            self._fd = None
        path = self.directory / f"{first_eid:020d}{SEGMENT_SUFFIX}"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self._size = os.fstat(self._fd).st_size
        self._encoder = FrameEncoder(self.compress)
        self._segments.append(_Segment(path, first_eid, first_eid))
        if self.flush != "none":
            _sync_directory(self.directory)
        if self.flush == "incremental_async" and self._syncer is None:
            self._syncer = threading.Thread(target=self._sync_loop, name="ring-sync", daemon=True)
            self._syncer.start()

    def _sync_loop(self) -> None:
        while True:
            self._sync_wanted.wait()
            self._sync_wanted.clear()
            with self._fd_lock:
                if self._closing:
                    return
                if self._fd is not None:
                    try:
                        os.fdatasync(self._fd)
                    except OSError as exc:
                        log.error("cannot flush the durable ring: %s", exc)

    def prune(self, oldest_eid: int) -> int:
        """Delete the segments holding only eids below `oldest_eid` (the ring evicted them);
        how many were deleted. The segment being written goes too, and the next write starts
        a new one."""
        removed = 0
        with self._fd_lock:
            while self._segments and self._segments[0].last_eid < oldest_eid:
                segment = self._segments.pop(0)
                if not self._segments and self._fd is not None:
                    os.close(self._fd)
                    self._fd = None
                    self._encoder = None
                self._unlink(segment.path)
                removed += 1
        return removed

    def needs_prune(self, oldest_eid: int) -> bool:
        segments = self._segments
        return bool(segments) and segments[0].last_eid < oldest_eid

    def close(self) -> None:
        """Flush (unless flush=none) and close; the segments stay for the next start."""
        with self._fd_lock:
            self._closing = True
            if self._fd is not None:
                try:
                    if self.flush != "none":
                        os.fdatasync(self._fd)
                finally:
                    os.close(self._fd)
                    self._fd = None
                    self._encoder = None
        self._sync_wanted.set()
        if self._syncer is not None:
            self._syncer.join(timeout=5)
            self._syncer = None

    @property
    def disk_bytes(self) -> int:
        total = 0
        for segment in list(self._segments):
            try:
                total += segment.path.stat().st_size
            except OSError:
                pass
        return total

    def _unlink(self, path: Path) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.error("cannot delete ring segment %s: %s", path, exc.strerror)


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
