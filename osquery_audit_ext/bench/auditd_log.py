"""Counting a storm's events in auditd's log, to say how complete auditd's record is.

The log is auditd's RAW format: `type=NAME msg=audit(SECONDS.MILLIS:SERIAL): key=value ...`;
the text after `msg=` is the kernel's record, read with the same record parser as ours.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from ..audit.consts import AUDIT_SYSCALL
from ..audit.syscalls import native_machine, syscall_number
from ..events.records import Record, RecordParseError, decode_keys, parse_record
from .storm import StormResult

USERMSG_TEXT = "oae_bench usermsg"  # what storm.c writes in each user message


def storm_syscall(kind: str, machine: str | None = None) -> int | None:
    """The native syscall number whose SYSCALL records a storm of `kind` produces."""
    name = {"connect": "connect", "exec": "execve"}.get(kind)
    machine = machine or native_machine()
    if name is None or machine is None:
        return None
    return syscall_number(machine, name)


def count_storm_events(
    lines: Iterable[str], storms: Sequence[StormResult], key: str, machine: str | None = None
) -> dict[str, int]:
    """Events of each storm in auditd's log lines, by storm kind.

    connect: SYSCALL records of connect with the storm's pid and our key; exec: SYSCALL
    records of execve whose ppid is the storm (each forked child execs once); usermsg: the
    storm's user messages (pid = the storm, our text).
    """
    wanted = {s.kind: s for s in storms}
    counts = dict.fromkeys(wanted, 0)
    numbers = {kind: storm_syscall(kind, machine) for kind in wanted}
    key_bytes = key.encode()
    key_hex = key_bytes.hex().upper()  # several keys are logged hex encoded, 0x01 joined
    usermsg = wanted.get("usermsg")
    for line in lines:
        head, sep, text = line.partition(" msg=")
        if not sep:
            continue
        if head == "type=SYSCALL":
            if key not in text and key_hex not in text:
                continue
            record = _record(AUDIT_SYSCALL, text)
            if record is None or key_bytes not in decode_keys(record.raw("key")):
                continue
            nr = record.decimal("syscall")
            for kind, storm in wanted.items():
                if kind == "usermsg" or nr != numbers[kind]:
                    continue
                who = record.decimal("ppid" if kind == "exec" else "pid")
                if who == storm.pid:
                    counts[kind] += 1
        elif usermsg is not None and USERMSG_TEXT in text:
            record = _record(0, text)
            if record is not None and record.decimal("pid") == usermsg.pid:
                counts["usermsg"] += 1
    return counts


def _record(record_type: int, text: str) -> Record | None:
    try:
        return parse_record(record_type, text.encode("utf-8", "surrogateescape"))
    except RecordParseError:
        return None


def read_log_lines(path: Path) -> Iterable[str]:
    """The log's lines, streamed (a storm's log can be hundreds of megabytes)."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                yield line.rstrip("\n")
    except FileNotFoundError:
        return
