"""Records made while no instance read them, told from audit serial numbers.

Every audit record carries a serial from one kernel-wide counter (reset at boot). The last
serial a run read is kept in the state directory (every few seconds and at exit); the next
run on the same boot compares it with the first serial it reads: the serials in between are
records it never saw (dropped to the kernel log while no daemon was registered, unless the
kernel booted with audit=1 and held them for us).
"""

from __future__ import annotations

import logging
import time

from ..errors import AuditExtError
from ..events.coalesce import Coalescer
from .state import StateDir

log = logging.getLogger(__name__)

DOCUMENT = "serial"  # {"boot_id": ..., "serial": the last audit serial read}
SAVE_EVERY = 5.0  # seconds between saves of the last serial read
_MASK = 0xFFFFFFFF


def boot_id() -> str:
    """This boot's id: audit serials restart at each boot, so only same-boot ones compare."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


class SerialWatch:
    """The previous run's last serial in, this run's last serial out, the gap between."""

    def __init__(self, state: StateDir) -> None:
        self.state = state
        self.missed: int | None = None  # records between the runs; None until known
        self._previous: int | None = None
        self._saved: int | None = None
        self._next_save = 0.0

    def load(self) -> None:
        """Read the previous run's last serial, if it was on this boot."""
        document = self.state.load(DOCUMENT)
        current = boot_id()
        if (
            isinstance(document, dict)
            and current
            and document.get("boot_id") == current
            and isinstance(document.get("serial"), int)
        ):
            self._previous = document["serial"]

    def due(self) -> bool:
        return time.monotonic() >= self._next_save

    def checkpoint(self, coalescer: Coalescer) -> None:
        """Count the gap once the first record is in; save the highest serial read."""
        self._next_save = time.monotonic() + SAVE_EVERY
        first, previous = coalescer.first_serial, self._previous
        if self.missed is None and first is not None and previous is not None:
            gap = (first - previous - 1) & _MASK
            if gap < 0x80000000:  # else it is not after the previous one: no claim
                self.missed = gap
                if gap:
                    log.warning(
                        "%d audit records were made while no instance read them (serials %d..%d)",
                        gap,
                        (previous + 1) & _MASK,
                        (first - 1) & _MASK,
                    )
        high = coalescer.high_serial
        if high is None or high == self._saved:
            return
        try:
            self.state.save(DOCUMENT, {"boot_id": boot_id(), "serial": high})
            self._saved = high
        except AuditExtError as exc:
            log.error("could not save the last audit serial: %s", exc)
