"""Seccomp, SELinux and AppArmor records into seccomp_events, selinux_events and
apparmor_events rows (columns as in tables/*.table). Each row comes from one record.

Which record goes where follows osquery (events/linux/auditeventpublisher.cpp and
auditdnetlink.cpp), after user messages have been taken by user_events:
- the SELinux types (AVC 1400 .. MAC_UNLBL_STCDEL 1417; osquery's list also names USER_AVC
  1107, but user_events takes it first) -> apparmor_events when the record's text holds
  `apparmor=`, else selinux_events;
- AppArmor's own types 1500-1507 (older kernels; osquery drops them) -> apparmor_events;
- AUDIT_SECCOMP 1326 -> seccomp_events.
"""

from __future__ import annotations

import functools

from ..audit.consts import (
    AUDIT_AVC,
    AUDIT_FIRST_APPARMOR,
    AUDIT_LAST_APPARMOR,
    AUDIT_MAC_UNLBL_STCDEL,
    AUDIT_SECCOMP,
)
from ..audit.names import message_types
from .coalesce import Event
from .records import Record, decode_value, is_hex, parse_decimal
from .rows import _uptime, audit_syscall_name, display_text

SECCOMP_EVENTS = "seccomp_events"
SELINUX_EVENTS = "selinux_events"
APPARMOR_EVENTS = "apparmor_events"

_APPARMOR_MARKER = b"apparmor="

# SECCOMP_RET_* actions (include/uapi/linux/seccomp.h), by the names osquery gives them.
SECCOMP_RET_ACTION_FULL = 0xFFFF0000
SECCOMP_RET_DATA = 0x0000FFFF
SECCOMP_ACTIONS = {
    0x80000000: "KILL_PROCESS",
    0x00000000: "KILL_THREAD",
    0x00030000: "TRAP",
    0x00050000: "ERRNO",
    0x7FC00000: "USER_NOTIF",
    0x7FF00000: "TRACE",
    0x7FFC0000: "LOG",
    0x7FFF0000: "ALLOW",
}
# AUDIT_ARCH_* values by the names osquery's seccomp_events gives them (its arch_codes_map).
SECCOMP_ARCH_NAMES = {
    0xC000003E: "X86_64",
    0x40000003: "I386",
    0xC00000B7: "AARCH64",
    0x40000028: "ARM",
    0x00000028: "ARMEB",
    0x00000014: "PPC",
    0x80000015: "PPC64",
    0xC0000015: "PPC64LE",
    0x00000016: "S390",
    0x80000016: "S390X",
}
# apparmor_events columns: text, and numbers (osquery's AppArmorAuditEventData).
APPARMOR_TEXT = (
    "apparmor",
    "operation",
    "profile",
    "name",
    "comm",
    "denied_mask",
    "capname",
    "requested_mask",
    "info",
    "error",
    "namespace",
    "label",
)
APPARMOR_NUMBERS = ("parent", "pid", "fsuid", "ouid", "capability")
# AppArmor's own types without an apparmor= field: the status their type stands for
# (security/apparmor/audit.c, aa_audit_type).
APPARMOR_TYPE_STATUS = {
    1501: "AUDIT",
    1502: "ALLOWED",
    1503: "DENIED",
    1504: "HINT",
    1505: "STATUS",
    1506: "ERROR",
    1507: "KILLED",
}
# AppArmor writes these with audit_log_untrustedstring: quoted, or hex for odd bytes.
_APPARMOR_UNTRUSTED = frozenset({"profile", "name", "comm", "namespace", "label"})


def mac_table(record_type: int, payload: bytes) -> str | None:
    """The table a record of this type (not a user message) has a row in, or None."""
    if record_type == AUDIT_SECCOMP:
        return SECCOMP_EVENTS
    if AUDIT_AVC <= record_type <= AUDIT_MAC_UNLBL_STCDEL:
        if record_type == AUDIT_AVC and _APPARMOR_MARKER in payload:
            return APPARMOR_EVENTS
        return SELINUX_EVENTS
    if AUDIT_FIRST_APPARMOR <= record_type <= AUDIT_LAST_APPARMOR:
        return APPARMOR_EVENTS
    return None


@functools.lru_cache(maxsize=1)
def _type_names() -> dict[int, str]:
    return message_types()


def _raw_message(event: Event) -> str:
    """The record as osquery keeps it in `message`: `audit(...): ` and the text."""
    return display_text(event.payloads[0].rstrip(b"\x00\n")) or ""


def _unsigned(raw: str | None) -> int | None:
    """A decimal id as the kernel wrote it (4294967295 stays: the columns are unsigned)."""
    value = parse_decimal(raw)
    return value if value is not None and value >= 0 else None


def _record(event: Event) -> Record | None:
    return event.records[0] if len(event.types) == 1 else None


def seccomp_row(event: Event, boot_time: float) -> dict | None:
    record = _record(event)
    if record is None or record.type != AUDIT_SECCOMP:
        return None
    fields = record.fields
    audit_arch = record.hexint("arch")
    nr = record.decimal("syscall")
    code = fields.get("code")
    code_value = None
    if code is not None:
        try:
            code_value = int(code, 16)
        except ValueError:
            code_value = None
    action = None
    if code_value is not None:
        action = SECCOMP_ACTIONS.get(code_value & SECCOMP_RET_ACTION_FULL)
        if action is None:
            action = f"{code_value}(unknown)"
    if audit_arch is None:
        arch = None
    else:
        arch = SECCOMP_ARCH_NAMES.get(audit_arch, f"{audit_arch}(unknown)")
    return {
        "time": event.sec,
        "uptime": _uptime(event, boot_time),
        "auid": _unsigned(fields.get("auid")),
        "uid": _unsigned(fields.get("uid")),
        "gid": _unsigned(fields.get("gid")),
        "ses": _unsigned(fields.get("ses")),
        "pid": _unsigned(fields.get("pid")),
        "comm": display_text(record.data("comm")),
        "exe": display_text(record.data("exe")),
        "sig": parse_decimal(fields.get("sig")),
        "arch": arch,
        "syscall": audit_syscall_name(audit_arch, nr)
        if audit_arch is not None and nr is not None
        else fields.get("syscall"),
        "compat": parse_decimal(fields.get("compat")),
        "ip": fields.get("ip"),
        "code": action,
        "code_data": code_value & SECCOMP_RET_DATA if code_value is not None else None,
        "time_ms": event.sec * 1000 + event.msec,
        "serial": event.serial,
    }


def selinux_row(event: Event, boot_time: float) -> dict | None:
    record = _record(event)
    if record is None or mac_table(record.type, event.payloads[0]) != SELINUX_EVENTS:
        return None
    return {
        "type": _type_names().get(record.type, str(record.type)),
        "message": _raw_message(event),
        "time": event.sec,
        "uptime": _uptime(event, boot_time),
        "record_type": record.type,
        "time_ms": event.sec * 1000 + event.msec,
        "serial": event.serial,
    }


def _apparmor_text(name: str, raw: str | None) -> str | None:
    if raw is None:
        return None
    if raw[:1] == '"' or (name in _APPARMOR_UNTRUSTED and is_hex(raw)):
        return display_text(decode_value(raw))
    return raw


def apparmor_row(event: Event, boot_time: float) -> dict | None:
    record = _record(event)
    if record is None or mac_table(record.type, event.payloads[0]) != APPARMOR_EVENTS:
        return None
    fields = record.fields
    row: dict = {
        "type": "AA"
        if record.type == AUDIT_AVC
        else _type_names().get(record.type, str(record.type)),
        "message": _raw_message(event),
        "time": event.sec,
        "uptime": _uptime(event, boot_time),
    }
    for name in APPARMOR_TEXT:
        row[name] = _apparmor_text(name, fields.get(name))
    if row["apparmor"] is None:
        row["apparmor"] = APPARMOR_TYPE_STATUS.get(record.type)
    for name in APPARMOR_NUMBERS:
        row[name] = _unsigned(fields.get(name))
    row["record_type"] = record.type
    row["time_ms"] = event.sec * 1000 + event.msec
    row["serial"] = event.serial
    return row
