"""User-space audit messages into user_events rows (columns as in tables/user_events.table).

A user message is one record sent through netlink by a program (PAM, su, sudo, useradd ...):
`pid= uid= auid= ses= [subj=] msg='op=PAM:authentication grantors=... acct="bob"
exe="/usr/bin/su" hostname=? addr=? terminal=/dev/pts/0 res=success'`. The kernel adds the
fields before msg=; the program writes the text inside it.

osquery (tables/events/linux/user_events.cpp) splits the whole body on spaces, so its
`message` is only the first word of msg (`op=PAM:authentication`) and `path`, `address`,
`terminal` are the exe=, addr= and terminal= words of the text; uid, pid and auid come first
(the kernel's). We keep those columns the same and add what it drops: the whole message,
acct, res, ses, hostname and the type's name.

osquery takes types 1100-1199 (AUDIT_FIRST_USER_MSG..AUDIT_LAST_USER_MSG); we take the second
range of user messages, 2100-2999, too. Each record is one row.
"""

from __future__ import annotations

import functools

from ..audit.consts import (
    AUDIT_FIRST_USER_MSG,
    AUDIT_FIRST_USER_MSG2,
    AUDIT_LAST_USER_MSG,
    AUDIT_LAST_USER_MSG2,
)
from ..audit.names import message_types
from .coalesce import Event
from .records import decode_value, parse_decimal, parse_ident, split_fields
from .rows import _uptime, display_text

USER_EVENTS = "user_events"


def is_user_message(record_type: int) -> bool:
    """True for the record types user_events has rows for."""
    return (
        AUDIT_FIRST_USER_MSG <= record_type <= AUDIT_LAST_USER_MSG
        or AUDIT_FIRST_USER_MSG2 <= record_type <= AUDIT_LAST_USER_MSG2
    )


@functools.lru_cache(maxsize=1)
def _type_names() -> dict[int, str]:
    return message_types()


def _valid(text: str | None) -> str | None:
    """Message text as valid UTF-8 (bytes that are not are written as \\xNN)."""
    if text is None or text.isascii():
        return text
    return display_text(text.encode("utf-8", "surrogateescape"))


def _plain(raw: str | None) -> str | None:
    """A word of the message text as written (hostname=?, addr=, terminal=, res=): quotes
    removed when present, ? kept as osquery keeps it."""
    if raw is None:
        return None
    return _valid(raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] == '"' else raw)


def _untrusted(raw: str | None) -> str | None:
    """acct= and exe=, which programs write quoted, or in hex when they hold odd bytes."""
    if raw is None:
        return None
    return display_text(decode_value(raw))


def user_row(event: Event, boot_time: float) -> dict | None:
    """The user_events row of a one-record event of a user message type; None otherwise."""
    if len(event.types) != 1 or not is_user_message(event.types[0]):
        return None
    record = event.records[0]
    fields = record.fields
    raw_msg = fields.get("msg")
    msg = None
    inner: dict[str, str] = {}
    if raw_msg is not None:
        msg = raw_msg[1:-1] if raw_msg[:1] == "'" and raw_msg[-1:] == "'" else raw_msg.strip("'")
        inner = split_fields(msg)
    first = msg.split(" ", 1)[0] if msg else None

    return {
        "uid": parse_ident(fields.get("uid")),
        "auid": parse_ident(fields.get("auid")),
        "pid": parse_decimal(fields.get("pid")),
        "message": _valid(first) or None,
        "type": record.type,
        "path": _untrusted(inner.get("exe")),
        "address": _plain(inner.get("addr")),
        "terminal": _plain(inner.get("terminal")),
        "time": event.sec,
        "uptime": _uptime(event, boot_time),
        "type_name": _type_names().get(record.type, str(record.type)),
        "msg": _valid(msg),
        "acct": _untrusted(inner.get("acct")),
        "res": _plain(inner.get("res")),
        "ses": parse_ident(fields.get("ses")),
        "hostname": _plain(inner.get("hostname")),
        "time_ms": event.sec * 1000 + event.msec,
        "serial": event.serial,
    }
