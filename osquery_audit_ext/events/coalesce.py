"""Records into events: group by (timestamp, serial); complete on EOE, timeout or cap.

Which events end with an EOE record (kernel/audit.c, kernel/auditsc.c; checked on 6.18):

- Records logged in a task's syscall context share its (timestamp, serial), and the kernel
  ends the event with AUDIT_EOE (1320) at syscall exit. That covers SYSCALL and its
  auxiliary records (PATH, CWD, EXECVE, SOCKADDR, PROCTITLE ...) and also records logged
  *during* a syscall: CONFIG_CHANGE 1305, AVC, LOGIN 1006 and AUDIT_EVENT_LISTENER 1335
  (joining the multicast group logs 1335, then SYSCALL, PROCTITLE and EOE for the bind).
  These types are multi-record: they wait for EOE.
- The same types logged with no syscall context (kernel threads, tasks that started before
  audit was enabled: a lone CONFIG_CHANGE is common) come alone and never see an EOE; so do
  records replayed from auditd log files, which carry no EOE. They complete on timeout.
- Records the kernel logs with no task context at all are alone in their event and never
  get an EOE, so they complete at once: user messages sent through netlink (AUDIT_USER 1005,
  1100-1199, 2100-2999), the audit daemon's own records (1200-1299) and AUDIT_KERNEL 2000.

AUDIT_REPLACE (1329) is the kernel probing a daemon's liveness: ignored. The timeout is
measured on a clock the caller supplies (`now`), so tests are deterministic; pass the same
non-decreasing clock to `add` and `expire`.
"""

from __future__ import annotations

import enum
from collections import OrderedDict, deque
from collections.abc import Iterable

from ..accel import compiled
from ..audit.consts import (
    AUDIT_EOE,
    AUDIT_FIRST_USER_MSG,
    AUDIT_FIRST_USER_MSG2,
    AUDIT_KERNEL,
    AUDIT_LAST_DAEMON,
    AUDIT_LAST_USER_MSG2,
    AUDIT_REPLACE,
    AUDIT_USER,
    RECORDS_BELOW_FIRST_USER_MSG,
)
from .records import Record, RecordParseError, parse_stamp, record_body, split_header

SERIAL_MASK = 0xFFFFFFFF  # the kernel's serial is an unsigned 32-bit counter
SERIAL_HALF = 0x80000000
SERIAL_WINDOW = 256  # how far serials may arrive out of order before a hole counts as a gap
TYPE_SETS_MAX = 256  # distinct event shapes whose types tuple is shared before starting over


class Ending(enum.Enum):
    """How an event completed; an event the kernel ended turns late copies into duplicates."""

    BY_KERNEL = "by_kernel"  # its EOE came, or it is a record that always comes alone
    CUT_SHORT = "cut_short"  # timed out, pushed out by the in-flight cap, or flushed


def completes_alone(record_type: int) -> bool:
    """True for record types the kernel logs with no task context (never followed by EOE)."""
    # The kernel's ranges (include/uapi/linux/audit.h): AUDIT_FIRST_USER_MSG..AUDIT_LAST_DAEMON
    # (1100-1299: user messages, then the daemon's own) and AUDIT_FIRST_USER_MSG2..
    # AUDIT_LAST_USER_MSG2 (2100-2999).
    return (
        record_type == AUDIT_USER
        or AUDIT_FIRST_USER_MSG <= record_type <= AUDIT_LAST_DAEMON
        or record_type == AUDIT_KERNEL
        or AUDIT_FIRST_USER_MSG2 <= record_type <= AUDIT_LAST_USER_MSG2
    )


class Event:
    """The records of one audit event, in arrival order (EOE itself is not kept).

    Records stay as the kernel's payloads (type, bytes) until `records` is first read: the
    reader only groups them, and rows are built from them when a query asks.
    """

    __slots__ = ("_records", "ended", "msec", "payloads", "sec", "serial", "since", "types")

    def __init__(
        self,
        types: list[int] | tuple[int, ...],
        payloads: list[bytes],
        ended: bool = True,
        when: tuple[int, int, int] | None = None,
    ) -> None:
        """`when` is (sec, msec, serial) when already known; else parsed from the payloads."""
        if when is None:
            if not payloads:
                raise ValueError("an event has at least one record")
            when = parse_stamp(split_header(payloads[0]))
        self.sec, self.msec, self.serial = when
        # Record types in arrival order: a list while the event grows, then (once complete)
        # a tuple shared by every event of the same shape.
        self.types: list[int] | tuple[int, ...] = types
        self.payloads = payloads
        self.ended = ended  # True when the kernel said it is complete (EOE, or a lone record)
        self.since: float | None = None  # when the coalescer first saw it (for the timeout)
        self._records: list[Record] | None = None

    def __repr__(self) -> str:
        types = ",".join(str(t) for t in self.types)
        return (
            f"Event(audit({self.sec}.{self.msec:03d}:{self.serial}) [{types}] ended={self.ended})"
        )

    @property
    def records(self) -> list[Record]:
        """The records parsed (on first use; every payload's header was checked on arrival)."""
        records = self._records
        if records is None:
            # The payloads of one event share one stamp: parse it once (it was checked).
            sec, msec, serial = self.sec, self.msec, self.serial
            length = len(split_header(self.payloads[0]))
            records = self._records = [
                Record(t, sec, msec, serial, record_body(p, length))
                for t, p in zip(self.types, self.payloads)
            ]
        return records

    @property
    def time(self) -> float:
        return self.sec + self.msec / 1000

    @property
    def time_ms(self) -> int:
        return self.sec * 1000 + self.msec

    def first(self, record_type: int) -> Record | None:
        for record in self.records:
            if record.type == record_type:
                return record
        return None

    def all(self, record_type: int) -> list[Record]:
        return [record for record in self.records if record.type == record_type]


class Coalescer:
    """Reassembles records into events. Not thread-safe: one reader thread owns it.

    Records are grouped by their stamp (`SECONDS.MILLIS:SERIAL`, the bytes of the header):
    the reader does no other parsing per record.

    Counters (plain ints, safe to read from other threads):
    - timed_out: events completed by `expire` without an EOE.
    - dropped_inflight: events pushed out by the in-flight cap before they completed (the
      oldest first); they are still returned, as they are, never silently lost.
    - serial_gaps: serials never seen, from a wrap-safe comparison of each new event's
      serial with the highest seen; a hole counts only once it is SERIAL_WINDOW serials old,
      since concurrent syscalls can deliver serials slightly out of order.
    - duplicates: records dropped because the same record was already in its event (same
      type and payload), or an event that ended with EOE gets a record type it already had.
    - late: records for an event already completed by timeout or cap (or of a type it did
      not have after its EOE); they start a new event.
    """

    def __init__(self, timeout: float = 2.0, max_inflight: int = 4096, recent: int = 1024):
        if timeout <= 0 or max_inflight < 1 or recent < 1:
            raise ValueError("timeout, max_inflight and recent must be positive")
        self.timeout = timeout
        self.max_inflight = max_inflight
        self.timed_out = 0
        self.dropped_inflight = 0
        self.serial_gaps = 0
        self.duplicates = 0
        self.late = 0
        self._inflight: dict[bytes, Event] = {}  # insertion order = arrival order
        # Recently completed events: stamp -> (how it ended, record types it had).
        self._recent: OrderedDict[bytes, tuple[Ending, tuple[int, ...]]] = OrderedDict()
        self._recent_cap = recent
        self._type_sets: dict[tuple[int, ...], tuple[int, ...]] = {}  # shared, few distinct
        self._now: float | None = None
        self._high_serial: int | None = None
        self.first_serial: int | None = None  # the first serial seen (across a restart: the gap)
        self._missing: set[int] = set()
        self._missing_order: deque[int] = deque()

    def __len__(self) -> int:
        """Events in flight."""
        return len(self._inflight)

    @property
    def high_serial(self) -> int | None:
        """The highest serial seen (wrap-aware), None before the first record."""
        return self._high_serial

    # -- input ------------------------------------------------------------------------------

    def add(self, record_type: int, payload: bytes, now: float | None = None) -> list[Event]:
        """Take one record (its type and payload); return the events it completes (or pushes
        out), oldest first. Raises RecordParseError, having changed nothing, if the payload
        is not an audit record.

        `now` stamps a new event for the timeout; without it the last `expire` time is used.
        """
        return self._add_stamped(split_header(payload), record_type, payload, now)

    def add_batch(
        self, records: Iterable[tuple[int, bytes]], now: float
    ) -> tuple[list[Event], int, int]:
        """Take one receive batch as the reader gets it: (events completed or pushed out,
        oldest first; records taken; records that were not audit records).

        Control replies (types below AUDIT_FIRST_USER_MSG but two) and AUDIT_REPLACE probes
        are not records: skipped, not counted. Every other record is `add`ed in turn, one
        that raises RecordParseError counted and skipped. The loop runs compiled
        (events/_ingestfast.c) where it is built, else add_batch_python; tests check both
        against those `add` calls.
        """
        if _ingestfast is not None:
            return _ingestfast.add_batch(self, records, now)  # type: ignore[no-any-return]
        return self.add_batch_python(records, now)

    def add_batch_python(
        self, records: Iterable[tuple[int, bytes]], now: float
    ) -> tuple[list[Event], int, int]:
        """add_batch's loop in Python: the three cases of nearly every record, the first
        record of a new event (the next serial, while fewer than max_inflight wait), a
        record joining its event and the EOE ending it, are done here without a call per
        record; any other goes through _add_stamped.
        """
        out: list[Event] = []
        taken = errors = 0
        inflight, recent, cap = self._inflight, self._recent, self.max_inflight
        complete, add_stamped, note_serial = self._complete, self._add_stamped, self._note_serial
        for record_type, payload in records:
            if record_type < AUDIT_FIRST_USER_MSG:
                if record_type not in RECORDS_BELOW_FIRST_USER_MSG:
                    continue
            elif record_type == AUDIT_REPLACE:
                continue
            taken += 1
            try:
                stamp = split_header(payload)
            except RecordParseError:
                errors += 1
                continue
            pending = inflight.get(stamp)
            if pending is not None:
                if record_type == AUDIT_EOE:
                    del inflight[stamp]
                    out.append(complete(stamp, pending, Ending.BY_KERNEL))
                    continue
                types = pending.types
                if record_type not in types:
                    types.append(record_type)
                    pending.payloads.append(payload)
                    continue
            elif (
                AUDIT_LAST_DAEMON < record_type < AUDIT_KERNEL  # never alone (completes_alone)
                and record_type != AUDIT_EOE
                and len(inflight) < cap
                and stamp not in recent
            ):
                try:
                    when = parse_stamp(stamp)
                except RecordParseError:
                    errors += 1
                    continue
                note_serial(when[2])
                event = Event([record_type], [payload], False, when)
                event.since = now
                inflight[stamp] = event
                continue
            try:
                done = add_stamped(stamp, record_type, payload, now)
            except RecordParseError:
                errors += 1
                continue
            if done:
                out.extend(done)
        return out, taken, errors

    def _add_stamped(
        self, stamp: bytes, record_type: int, payload: bytes, now: float | None
    ) -> list[Event]:
        """`add` of a payload whose stamp (split_header) is `stamp`."""
        pending = self._inflight.get(stamp)
        if record_type == AUDIT_EOE:
            if pending is not None:
                del self._inflight[stamp]
                return [self._complete(stamp, pending, Ending.BY_KERNEL)]
            previous = self._recent.get(stamp)
            if previous is not None and previous[0] is Ending.BY_KERNEL:
                self.duplicates += 1
            return []
        if record_type == AUDIT_REPLACE:
            self._note_serial(parse_stamp(stamp)[2])
            return []
        if pending is not None:
            types = pending.types
            if record_type in types:
                payloads = pending.payloads
                for index, held in enumerate(types):
                    if held == record_type and payloads[index] == payload:
                        self.duplicates += 1
                        return []
            types.append(record_type)
            pending.payloads.append(payload)
            return []
        when = parse_stamp(stamp)
        previous = self._recent.get(stamp)
        if previous is not None:
            if previous[0] is Ending.BY_KERNEL and record_type in previous[1]:
                self.duplicates += 1
                return []
            self.late += 1
        else:
            self._note_serial(when[2])
        event = Event([record_type], [payload], False, when)
        if completes_alone(record_type):
            return [self._complete(stamp, event, Ending.BY_KERNEL)]
        out: list[Event] = []
        inflight = self._inflight
        if len(inflight) >= self.max_inflight:
            old_stamp = next(iter(inflight))
            old = inflight.pop(old_stamp)
            self.dropped_inflight += 1
            out.append(self._complete(old_stamp, old, Ending.CUT_SHORT))
        event.since = self._now if now is None else now
        inflight[stamp] = event
        return out

    def expire(self, now: float) -> list[Event]:
        """Complete the events that have waited `timeout` or longer for their EOE."""
        self._now = now
        expired: list[bytes] = []
        for stamp, pending in self._inflight.items():
            if pending.since is None:
                pending.since = now  # added before the clock was known: start counting now
            elif now - pending.since >= self.timeout:
                expired.append(stamp)
        out = []
        for stamp in expired:
            pending = self._inflight.pop(stamp)
            self.timed_out += 1
            out.append(self._complete(stamp, pending, Ending.CUT_SHORT))
        return out

    def flush(self) -> list[Event]:
        """Complete every event in flight (at shutdown); unseen serials count as gaps now."""
        out = [
            self._complete(stamp, event, Ending.CUT_SHORT)
            for stamp, event in self._inflight.items()
        ]
        self._inflight.clear()
        self.serial_gaps += len(self._missing)
        self._missing.clear()
        self._missing_order.clear()
        return out

    # -- internals --------------------------------------------------------------------------

    def _complete(self, stamp: bytes, event: Event, how: Ending) -> Event:
        event.ended = how is Ending.BY_KERNEL
        types = tuple(event.types)
        shared = self._type_sets.get(types)
        if shared is None:
            if len(self._type_sets) >= TYPE_SETS_MAX:
                self._type_sets.clear()
            shared = self._type_sets[types] = types
        event.types = shared  # one tuple object for every event of this shape
        recent = self._recent
        recent[stamp] = (how, shared)
        if len(recent) > self._recent_cap:
            recent.popitem(last=False)
        return event

    def _note_serial(self, serial: int) -> None:
        """Track the highest serial seen and the holes below it (wrap-safe)."""
        high = self._high_serial
        if high is None:
            self._high_serial = self.first_serial = serial
            return
        ahead = (serial - high) & SERIAL_MASK
        if ahead == 1:  # the next serial (nearly always): no hole, nothing new to settle
            self._high_serial = serial
            if self._missing_order:
                self._settle(serial)
            return
        if ahead == 0:
            return
        if ahead < SERIAL_HALF:
            holes = ahead - 1
            if holes > SERIAL_WINDOW:  # too far to wait for: count the excess at once
                self.serial_gaps += holes - SERIAL_WINDOW
                holes = SERIAL_WINDOW
            for n in range(ahead - holes, ahead):
                missing = (high + n) & SERIAL_MASK
                self._missing.add(missing)
                self._missing_order.append(missing)
            self._high_serial = serial
            self._settle(serial)
            return
        behind = SERIAL_MASK + 1 - ahead
        if behind <= SERIAL_WINDOW:
            self._missing.discard(serial)  # arrived late, not lost
            return
        # Far behind: the counter restarted (reboot) or the stream was replayed. Start over.
        self._missing.clear()
        self._missing_order.clear()
        self._high_serial = serial

    def _settle(self, high: int) -> None:
        """Holes more than SERIAL_WINDOW below the highest serial are gaps for good."""
        order = self._missing_order
        missing = self._missing
        while order and (high - order[0]) & SERIAL_MASK > SERIAL_WINDOW:
            serial = order.popleft()
            if serial in missing:
                missing.discard(serial)
                self.serial_gaps += 1


# Coalescer.add_batch's loop in C where it is built (events/_ingestfast.c); it takes the
# Event class and the constants it tests from here.
_ingestfast = compiled(f"{__package__}._ingestfast")
ACCELERATED = _ingestfast is not None  # whether add_batch (and routing's loop) run compiled
if _ingestfast is not None:
    _ingestfast.bind(
        Event,
        Ending.BY_KERNEL,
        RecordParseError,
        RECORDS_BELOW_FIRST_USER_MSG,
        AUDIT_FIRST_USER_MSG,
        AUDIT_REPLACE,
        AUDIT_EOE,
        AUDIT_LAST_DAEMON,
        AUDIT_KERNEL,
        SERIAL_MASK,
        TYPE_SETS_MAX,
    )
