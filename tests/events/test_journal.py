"""The durable ring's segment files: entries round-trip, a torn or damaged tail is found,
counted and cut off (never an exception), and segments go once the ring evicted them."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from osquery_audit_ext.events.journal import (
    FLUSH_POLICIES,
    FrameEncoder,
    RingJournal,
    decode_entries,
    encode_entries,
    encode_frame,
    scan_frames,
)
from osquery_audit_ext.events.routing import pack_payloads

payload = st.binary(max_size=60)
types = st.lists(st.integers(1000, 2999), min_size=1, max_size=5)


@st.composite
def entry_lists(draw: st.DrawFn) -> list[tuple]:
    eid = draw(st.integers(1, 2**40))
    entries = []
    for _ in range(draw(st.integers(0, 12))):
        eid += draw(st.integers(1, 1000))
        kinds = tuple(draw(types))
        payloads = [draw(payload) for _ in kinds]
        item = (kinds, pack_payloads(payloads) if draw(st.booleans()) else tuple(payloads))
        # process_file_events items may carry the dirfd directories found at arrival
        dirs = draw(st.lists(st.tuples(st.integers(-(2**31), 2**31 - 1), payload), max_size=3))
        if dirs:
            item = (*item, tuple(dirs))
        when = draw(st.none() | st.integers(0, 2**33))
        pid = draw(st.none() | st.integers(0, 2**22))
        entries.append((eid, when, pid, item))
    return entries


@given(entry_lists())
def test_entries_round_trip(entries):
    assert decode_entries(encode_entries(entries)) == entries


@settings(max_examples=200, deadline=None)
@given(
    st.lists(entry_lists(), max_size=5),
    st.sampled_from(["plain", "zlib", "stream"]),
    st.integers(0, 10**6),
    st.binary(max_size=8),
)
def test_any_cut_or_damage_keeps_a_prefix_of_whole_frames(batches, kind, cut, junk):
    """Frames standing alone (plain, zlib) or pieces of one segment's zlib stream."""
    if kind == "stream":
        encoder = FrameEncoder(compress=True)
        frames = [encoder.frame(b) for b in batches]
    else:
        frames = [encode_frame(b, kind == "zlib") for b in batches]
    data = b"".join(frames)
    scan = scan_frames(data)
    assert scan.bad_frames == 0 and scan.entries == [e for b in batches for e in b]
    damaged = data[: cut % (len(data) + 1)] + junk
    scan = scan_frames(damaged)  # never raises
    whole = 0
    for frame in frames:
        if scan.good_bytes >= whole + len(frame):
            whole += len(frame)
    assert scan.good_bytes == whole
    kept = sum(1 for f in range(len(frames)) if sum(map(len, frames[: f + 1])) <= whole)
    assert scan.entries == [e for b in batches[:kept] for e in b]


@given(st.binary(max_size=300))
def test_garbage_is_never_an_exception(data):
    scan = scan_frames(data)
    assert scan.good_bytes <= len(data)
    try:
        decode_entries(data)
    except ValueError:
        pass


def item(n: int) -> tuple:
    return ((1300, 1320), (f"syscall {n}".encode(), b""))


def test_write_recover_with_a_torn_tail(tmp_path: Path):
    journal = RingJournal(tmp_path, compress=True, flush="data")
    journal.recover()
    journal.write([(5, 100, 1, item(5)), (6, 101, 2, item(6))])
    journal.write([(9, None, None, item(9))])
    journal.close()
    (segment,) = tmp_path.glob("*.seg")
    assert segment.name == "00000000000000000005.seg"
    with open(segment, "ab") as f:
        f.write(encode_frame([(10, 1, 1, item(10))], True)[:-3])  # a crash mid-write
    size = segment.stat().st_size
    again = RingJournal(tmp_path, compress=True)
    recovered = again.recover()
    assert [e[0] for e in recovered.entries] == [5, 6, 9] and recovered.torn == 1
    assert recovered.entries[2] == (9, None, None, item(9))
    assert segment.stat().st_size < size  # the torn tail was cut off: counted once
    assert RingJournal(tmp_path, compress=True).recover().torn == 0


def test_new_run_writes_a_new_segment_and_prunes_evicted_ones(tmp_path: Path):
    journal = RingJournal(tmp_path, compress=False, flush="none", segment_bytes=64)
    journal.recover()
    for eid in range(1, 8):
        journal.write([(eid, eid, 1, item(eid))])
    names = sorted(p.name for p in tmp_path.glob("*.seg"))
    assert len(names) > 2
    assert journal.prune(4) >= 1
    left = RingJournal(tmp_path, compress=False).recover().entries
    assert left[0][0] <= 4 and [e[0] for e in left][-1] == 7
    journal.write([(8, 8, 1, item(8))])
    journal.close()
    assert [e[0] for e in RingJournal(tmp_path, compress=False).recover().entries][-1] == 8


def test_prune_everything_then_write_again(tmp_path: Path):
    journal = RingJournal(tmp_path, compress=False, flush="incremental_async", freq=1)
    journal.recover()
    journal.write([(1, 1, 1, item(1))])
    assert journal.prune(2) == 1 and not list(tmp_path.glob("*.seg"))
    journal.write([(2, 2, 1, item(2))])
    journal.close()
    assert [e[0] for e in RingJournal(tmp_path, compress=False).recover().entries] == [2]


def test_damage_in_an_old_segment_skips_only_its_rest(tmp_path: Path):
    (tmp_path / "00000000000000000001.seg").write_bytes(
        encode_frame([(1, 1, 1, item(1))], False) + b"OAJ0garbage-garbage"
    )
    (tmp_path / "00000000000000000003.seg").write_bytes(encode_frame([(3, 3, 1, item(3))], False))
    (tmp_path / "notes.txt").write_text("not a segment")
    recovered = RingJournal(tmp_path, compress=False).recover()
    assert [e[0] for e in recovered.entries] == [1, 3] and recovered.torn == 1


def test_crc_mismatch_is_damage(tmp_path: Path):
    frame = bytearray(encode_frame([(1, 1, 1, item(1))], False))
    frame[-1] ^= 0xFF
    assert scan_frames(bytes(frame)).bad_frames == 1
    body = b"not zlib"
    fake = b"OAJZ" + len(body).to_bytes(4, "little") + zlib.crc32(body).to_bytes(4, "little")
    assert scan_frames(fake + body).bad_frames == 1


def test_bad_policy_and_unwritable_directory(tmp_path: Path):
    with pytest.raises(ValueError, match="flush must be one of"):
        RingJournal(tmp_path, compress=False, flush="sometimes")
    assert FLUSH_POLICIES == ("none", "incremental_async", "data")
    journal = RingJournal(tmp_path / "gone", compress=False)
    journal.write([(1, 1, 1, item(1))])  # the directory does not exist: counted, not raised
    assert journal.write_errors == 1 and journal.written == 0
