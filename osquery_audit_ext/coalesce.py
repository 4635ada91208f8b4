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

from collections import OrderedDict, deque

from .records import AUDIT_EOE, AUDIT_REPLACE, AUDIT_USER, Record

AUDIT_KERNEL = 2000
SERIAL_MASK = 0xFFFFFFFF  # the kernel's serial is an unsigned 32-bit counter
SERIAL_HALF = 0x80000000
SERIAL_WINDOW = 256  # how far serials may arrive out of order before a hole counts as a gap

_ENDED, _CUT = True, False  # how a recently completed event ended: by EOE, or cut short


def completes_alone(record_type: int) -> bool:
    """True for record types the kernel logs with no task context (never followed by EOE)."""
    return (
        record_type == AUDIT_USER
        or 1100 <= record_type <= 1299
        or record_type == AUDIT_KERNEL
        or 2100 <= record_type <= 2999
    )


class Event:
    """The records of one audit event, in arrival order (EOE itself is not kept)."""

    __slots__ = ("ended", "msec", "records", "sec", "serial")

    def __init__(self, sec: int, msec: int, serial: int, records: list[Record], ended: bool):
        self.sec = sec
        self.msec = msec
        self.serial = serial
        self.records = records
        self.ended = ended  # True when the kernel said it is complete (EOE, or a lone record)

    def __repr__(self) -> str:
        types = ",".join(str(r.type) for r in self.records)
        return (
            f"Event(audit({self.sec}.{self.msec:03d}:{self.serial}) [{types}] ended={self.ended})"
        )

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


class _Pending:
    __slots__ = ("event", "since")

    def __init__(self, event: Event, since: float | None) -> None:
        self.event = event
        self.since = since


class Coalescer:
    """Reassembles records into events. Not thread-safe: one reader thread owns it.

    Counters (plain ints, safe to read from other threads):
    - timed_out: events completed by `expire` without an EOE.
    - dropped_inflight: events pushed out by the in-flight cap before they completed (the
      oldest first); they are still returned, as they are, never silently lost.
    - serial_gaps: serials never seen, from a wrap-safe comparison of each new event's
      serial with the highest seen; a hole counts only once it is SERIAL_WINDOW serials old,
      since concurrent syscalls can deliver serials slightly out of order.
    - duplicates: records dropped because the same record was already in its event (same
      type and text), or an event that ended with EOE gets a record type it already had.
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
        self._inflight: OrderedDict[tuple[int, int, int], _Pending] = OrderedDict()
        # Recently completed events: key -> (how it ended, record types it had).
        self._recent: OrderedDict[tuple[int, int, int], tuple[bool, frozenset[int]]] = OrderedDict()
        self._recent_cap = recent
        self._type_sets: dict[frozenset[int], frozenset[int]] = {}  # shared, few distinct
        self._now: float | None = None
        self._high_serial: int | None = None
        self._missing: set[int] = set()
        self._missing_order: deque[int] = deque()

    def __len__(self) -> int:
        """Events in flight."""
        return len(self._inflight)

    # -- input ------------------------------------------------------------------------------

    def add(self, record: Record, now: float | None = None) -> list[Event]:
        """Take one record; return the events it completes (or pushes out), oldest first.

        `now` stamps a new event for the timeout; without it the last `expire` time is used.
        """
        record_type = record.type
        key = (record.serial, record.sec, record.msec)
        pending = self._inflight.get(key)
        if record_type == AUDIT_EOE:
            if pending is not None:
                del self._inflight[key]
                return [self._complete(key, pending.event, _ENDED)]
            previous = self._recent.get(key)
            if previous is not None and previous[0] is _ENDED:
                self.duplicates += 1
            return []
        if record_type == AUDIT_REPLACE:
            self._note_serial(record.serial)
            return []
        if pending is not None:
            body = record.body
            for held in pending.event.records:
                if held.type == record_type and held.body == body:
                    self.duplicates += 1
                    return []
            pending.event.records.append(record)
            return []
        previous = self._recent.get(key)
        if previous is not None:
            if previous[0] is _ENDED and record_type in previous[1]:
                self.duplicates += 1
                return []
            self.late += 1
        else:
            self._note_serial(record.serial)
        event = Event(record.sec, record.msec, record.serial, [record], False)
        if completes_alone(record_type):
            return [self._complete(key, event, _ENDED)]
        out: list[Event] = []
        if len(self._inflight) >= self.max_inflight:
            old_key, old = self._inflight.popitem(last=False)
            self.dropped_inflight += 1
            out.append(self._complete(old_key, old.event, _CUT))
        self._inflight[key] = _Pending(event, self._now if now is None else now)
        return out

    def expire(self, now: float) -> list[Event]:
        """Complete the events that have waited `timeout` or longer for their EOE."""
        self._now = now
        expired: list[tuple[int, int, int]] = []
        for key, pending in self._inflight.items():
            if pending.since is None:
                pending.since = now  # added before the clock was known: start counting now
            elif now - pending.since >= self.timeout:
                expired.append(key)
        out = []
        for key in expired:
            pending = self._inflight.pop(key)
            self.timed_out += 1
            out.append(self._complete(key, pending.event, _CUT))
        return out

    def flush(self) -> list[Event]:
        """Complete every event in flight (at shutdown); unseen serials count as gaps now."""
        out = [self._complete(key, p.event, _CUT) for key, p in self._inflight.items()]
        self._inflight.clear()
        self.serial_gaps += len(self._missing)
        self._missing.clear()
        self._missing_order.clear()
        return out

    # -- internals --------------------------------------------------------------------------

    def _complete(self, key: tuple[int, int, int], event: Event, how: bool) -> Event:
        event.ended = how
        types = frozenset(r.type for r in event.records)
        shared = self._type_sets.get(types)
        if shared is None:
            if len(self._type_sets) >= 256:
                self._type_sets.clear()
            shared = self._type_sets[types] = types
        recent = self._recent
        recent[key] = (how, shared)
        if len(recent) > self._recent_cap:
            recent.popitem(last=False)
        return event

    def _note_serial(self, serial: int) -> None:
        """Track the highest serial seen and the holes below it (wrap-safe)."""
        high = self._high_serial
        if high is None:
            self._high_serial = serial
            return
        ahead = (serial - high) & SERIAL_MASK
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
