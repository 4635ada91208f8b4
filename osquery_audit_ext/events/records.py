"""Audit records: one netlink datagram's text turned into a `Record`, and the decoders for
the value encodings the kernel uses.

A record is `audit(SECONDS.MILLIS:SERIAL): key=value key=value ...`; its type travels only in
the netlink header. Parsing is deliberately lazy, because most records never become rows:
the reader only cuts out the header's stamp (`split_header`: what the coalescer groups by);
`parse_record` runs when a row is built; the body is split into key=value pairs on first use
of `Record.fields`, and a value is decoded only when a typed accessor asks for it.

Value encodings (kernel/audit.c, kernel/auditsc.c):
- Untrusted strings (comm, exe, cwd, name, key, proctitle, EXECVE arguments) are written
  double-quoted, or as unquoted uppercase hex when any byte is '"', below 0x21 or above 0x7e
  (so a quoted value never holds a space). `(null)` means no value (e.g. `key=(null)`);
  a bare `?` means unknown.
- IDs are unsigned decimal; 4294967295 ((u32)-1) means unset (auid, ses, and any id).
- a0-a3 and arch are hex without 0x; mode is octal; exit is signed decimal; saddr is hex.
- EXECVE: `argc=N a0=.. a1=..`; an argument too long for the space left in a record becomes
  `aN_len=L aN[0]=.. aN[1]=..`, continued in following EXECVE records (which have no argc).
  Each chunk is quoted or hex on its own; L counts hex digits when the argument is hex
  encoded and bytes when it is quoted. An empty argument is `aN=""`.
- PROCTITLE: the first 128 bytes of the process's argv, NUL separated.

Text that is not valid UTF-8 is kept exactly: bytes decode with surrogateescape, so
`text.encode("utf-8", "surrogateescape")` gives back the kernel's bytes.
"""

from __future__ import annotations

import re
import socket
import sys
from collections.abc import Iterable
from typing import NamedTuple

from ..audit.consts import (
    AF_INET,
    AF_INET6,
    AF_NETLINK,
    AF_UNIX,
    AUDIT_CWD,
    AUDIT_PATH,
    AUDIT_SYSCALL,
    UNSET_ID,
)

PROCTITLE_MAX = 128  # bytes of argv the kernel keeps in a PROCTITLE record

# key=value where value is '...' or "..." (may hold spaces, e.g. msg='...' in user
# records) or a run of non-space characters. Words without '=' (AVC text) are skipped.
_FIELD = re.compile(r"""([^\s=]+)=('[^']*'?|"[^"]*"?|\S*)""")
_HEX_DIGITS = frozenset("0123456789ABCDEFabcdef")


class RecordParseError(ValueError):
    """A payload that is not an audit record; the only exception `parse_record` raises."""


class Record:
    """One audit record: header values parsed, body kept as text until a field is asked for."""

    __slots__ = ("_fields", "body", "msec", "sec", "serial", "type")

    def __init__(self, type: int, sec: int, msec: int, serial: int, body: str) -> None:
        self.type = type
        self.sec = sec
        self.msec = msec
        self.serial = serial
        self.body = body
        self._fields: dict[str, str] | None = None

    def __repr__(self) -> str:
        return (
            f"Record({self.type}, audit({self.sec}.{self.msec:03d}:{self.serial}): {self.body!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return (self.type, self.sec, self.msec, self.serial, self.body) == (
            other.type,
            other.sec,
            other.msec,
            other.serial,
            other.body,
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def time(self) -> float:
        """Audit timestamp in seconds since the epoch."""
        return self.sec + self.msec / 1000

    @property
    def time_ms(self) -> int:
        return self.sec * 1000 + self.msec

    @property
    def fields(self) -> dict[str, str]:
        """Raw field values (quotes kept), split from the body once, on first use."""
        fields = self._fields
        if fields is None:
            fields = self._fields = _fields_of(self.type, self.body)
        return fields

    # -- typed accessors: None when the field is missing or does not parse ---------------

    def raw(self, key: str) -> str | None:
        return self.fields.get(key)

    def data(self, key: str) -> bytes | None:
        """An untrusted-string field as the kernel's bytes (quoted or hex); None for (null)/?."""
        raw = self.fields.get(key)
        return None if raw is None else decode_value(raw)

    def text(self, key: str) -> str | None:
        """An untrusted-string field as text (surrogateescape: reversible to the bytes)."""
        raw = self.fields.get(key)
        if raw is None:
            return None
        value = decode_value(raw)
        return None if value is None else value.decode("utf-8", "surrogateescape")

    def decimal(self, key: str) -> int | None:
        """A signed decimal field (pid, exit, items, syscall)."""
        return parse_decimal(self.fields.get(key))

    def ident(self, key: str) -> int | None:
        """An id field (auid, uid, ses, ouid ...): unset (4294967295 or -1) gives -1."""
        return parse_ident(self.fields.get(key))

    def hexint(self, key: str) -> int | None:
        """A hex field without 0x (a0-a3, arch)."""
        raw = self.fields.get(key)
        if not raw or not _HEX_DIGITS.issuperset(raw):
            return None
        return int(raw, 16)

    def octal(self, key: str) -> int | None:
        """An octal field (mode)."""
        raw = self.fields.get(key)
        if not raw or not raw.isdigit() or "8" in raw or "9" in raw:
            return None
        return int(raw, 8)

    def flag(self, key: str) -> bool | None:
        """A yes/no field (success)."""
        raw = self.fields.get(key)
        if raw == "yes":
            return True
        if raw == "no":
            return False
        return None


def split_header(payload: bytes) -> bytes:
    """The stamp of a record payload: `SECONDS.MILLIS:SERIAL` of `audit(...):`, as bytes.

    This is all the reader needs per record (records of one event share the stamp), so it
    only checks the shape; `parse_stamp` checks the digits, once per event.
    """
    if payload[:6] != b"audit(":
        raise RecordParseError(f"not an audit record: {bytes(payload[:48])!r}")
    close = payload.find(b"):", 6)
    if close < 0:
        raise RecordParseError(f"not an audit record: {bytes(payload[:48])!r}")
    return payload[6:close]


def parse_stamp(stamp: bytes) -> tuple[int, int, int]:
    """(seconds, milliseconds, serial) of a stamp; RecordParseError if it is malformed.

    A stamp is DIGITS.DDD:DIGITS (ASCII digits), cut at its first '.' and the first ':'
    after it: ~2.5x quicker than a regular expression, once per event on the reader thread
    (a test checks it against the pattern)."""
    seconds, dot, rest = stamp.partition(b".")
    millis, colon, serial = rest.partition(b":")
    if (
        not dot
        or not colon
        or len(millis) != 3
        or not seconds.isdigit()
        or not millis.isdigit()
        or not serial.isdigit()
    ):
        raise RecordParseError(f"not an audit timestamp: {bytes(stamp[:48])!r}")
    return int(seconds), int(millis), int(serial)


def parse_record(msg_type: int, payload: bytes) -> Record:
    """Parse one record's payload; raises RecordParseError (and nothing else) if it is not one.

    The payload may end with NUL bytes or a newline (both are dropped).
    """
    if not isinstance(payload, bytes):
        try:
            payload = bytes(payload)
        except (TypeError, ValueError) as exc:
            raise RecordParseError(
                f"record payload is not bytes: {type(payload).__name__}"
            ) from exc
    stamp = split_header(payload)
    sec, msec, serial = parse_stamp(stamp)
    if msg_type.__class__ is not int:
        try:
            msg_type = int(msg_type)
        except (TypeError, ValueError) as exc:
            raise RecordParseError(f"record type is not a number: {msg_type!r}") from exc
    return Record(msg_type, sec, msec, serial, record_body(payload, len(stamp)))


def record_body(payload: bytes, stamp_length: int) -> str:
    """The body of a record payload whose stamp is `stamp_length` bytes long, as text.

    The payload may end with NUL bytes or a newline (both are dropped).
    """
    start = stamp_length + 8  # past "audit(" + stamp + "):"
    if payload[start : start + 1] == b" ":
        start += 1
    return payload[start:].rstrip(b"\x00\n").decode("utf-8", "surrogateescape")


def split_fields(body: str) -> dict[str, str]:
    """key=value pairs of a record body, values raw (quotes kept); never raises.

    When a key repeats, the first occurrence wins, as in auparse and in the router's fast
    path (which reads the fixed start of a SYSCALL record): both must see the same values.
    Words without '=' are skipped.
    """
    fields: dict[str, str] = {}
    if "'" not in body:  # fast path: no single-quoted values (user records' msg='...')
        for word in body.split():
            key, sep, value = word.partition("=")
            if sep and key:
                if value[:1] == '"' and (len(value) == 1 or value[-1] != '"'):
                    break  # a double-quoted value holding a space: take the careful path
                if key not in fields:
                    fields[key] = value
        else:
            return fields
        fields = {}
    for key, value in _FIELD.findall(body):
        if key not in fields:
            fields[key] = value
    return fields


# Record bodies that repeat, split once: a PATH or CWD record is the same for every exec of
# an executable from a directory, and a SYSCALL record's task part (auid= to the end: ids,
# tty, ses, comm, exe, key) the same for every call of a process.
_REPEATING = frozenset({AUDIT_PATH, AUDIT_CWD})
_TASK = " auid="
_SPLIT_CACHE_MAX = 4096
_split_cache: dict[str, dict[str, str]] = {}


def _split_cached(text: str) -> dict[str, str]:
    """split_fields(text), shared with every caller of the same text (never change it)."""
    found = _split_cache.get(text)
    if found is None:
        if len(_split_cache) >= _SPLIT_CACHE_MAX:
            _split_cache.clear()
        found = _split_cache[text] = split_fields(text)
    return found


def task_start(body: str) -> int:
    """Where a SYSCALL body's task part (auid= ...) starts; -1 when it cannot be cut there.

    The head before it (arch= to pid=) holds kernel numbers only, never a quote, so no
    quoted value can span the cut."""
    at = body.find(_TASK)
    if at <= 0 or '"' in body[:at] or "'" in body[:at]:
        return -1
    return at + 1


def task_fields(task: str) -> dict[str, str]:
    """split_fields of a SYSCALL record's task part (shared: never change the dict)."""
    return _split_cached(task)


def _fields_of(record_type: int, body: str) -> dict[str, str]:
    """split_fields(body), from the cache for the parts of a record that repeat."""
    if record_type in _REPEATING:
        return _split_cached(body)
    if record_type == AUDIT_SYSCALL:
        at = task_start(body)
        if at > 0:  # keys of the task part win, as they would in one split
            fields = split_fields(body[:at])
            fields.update(_split_cached(body[at:]))
            return fields
    return split_fields(body)


# -- value decoders ------------------------------------------------------------------------


def is_hex(raw: str) -> bool:
    return len(raw) % 2 == 0 and _HEX_DIGITS.issuperset(raw)


def decode_value(raw: str) -> bytes | None:
    """An untrusted-string value as bytes: "quoted" or unquoted hex; (null) and ? are None.

    An unquoted value that is not hex (e.g. `(none)`) is returned as its own bytes.
    """
    if raw[:1] == '"':
        inner = raw[1:-1] if len(raw) > 1 and raw[-1] == '"' else raw[1:]
        return inner.encode("utf-8", "surrogateescape")
    if raw == "(null)" or raw == "?":
        return None
    if is_hex(raw):
        return bytes.fromhex(raw)
    return raw.encode("utf-8", "surrogateescape")


def parse_decimal(raw: str | None) -> int | None:
    """A signed decimal value; None when missing or not a number."""
    try:
        return int(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def parse_ident(raw: str | None) -> int | None:
    """An id value: unset (4294967295 or -1) gives -1."""
    try:
        value = int(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return -1 if value == UNSET_ID else value


def decode_keys(raw: str | None) -> list[bytes]:
    """The rule keys of a `key=` field: several keys are joined by 0x01 (and so hex encoded)."""
    if raw is None:
        return []
    value = decode_value(raw)
    if not value:
        return []
    return [key for key in value.split(b"\x01") if key]


class Argv(NamedTuple):
    """Arguments assembled from an event's EXECVE records."""

    args: list[bytes]
    complete: bool  # False when arguments or chunks are missing or shorter than announced


def execve_argv(records: Iterable[Record]) -> Argv:
    """Assemble argv from the EXECVE records of one event, in true argument order.

    Arguments are placed by their index (a10 after a9), split arguments are joined by chunk
    index, and each chunk is decoded on its own (quoted or hex). Never raises.
    """
    records = list(records)
    if len(records) == 1:  # the common case: one record, every argument whole
        fields = records[0].fields
        argc = parse_decimal(fields.get("argc"))
        if argc is not None and len(fields) == argc + 1:
            try:
                raws = [fields[f"a{i}"] for i in range(argc)]
            except KeyError:
                pass
            else:
                return Argv([decode_value(raw) or b"" for raw in raws], True)
    argc = None
    whole: dict[int, str] = {}
    chunks: dict[int, dict[int, str]] = {}
    lengths: dict[int, int] = {}
    for record in records:
        for key, raw in record.fields.items():
            if key[:1] != "a":
                continue
            if key == "argc":
                if argc is None:
                    argc = parse_decimal(raw)
                continue
            name = key[1:]
            bracket = name.find("[")
            if bracket > 0 and name[-1] == "]":
                index, part = name[:bracket], name[bracket + 1 : -1]
                if index.isdigit() and part.isdigit():
                    chunks.setdefault(int(index), {})[int(part)] = raw
            elif name.endswith("_len"):
                index = name[:-4]
                length = parse_decimal(raw)
                if index.isdigit() and length is not None:
                    lengths[int(index)] = length
            elif name.isdigit():
                whole[int(name)] = raw
    indices = [*whole, *chunks]
    present = max(indices) + 1 if indices else 0
    complete = argc is not None and 0 <= argc <= present
    # An argc above the last argument the records hold (a lost record, or a crafted one with
    # argc=99999999999) is not trusted: the missing tail is not made up, only marked.
    count = argc if complete else present
    args: list[bytes] = []
    for index in range(count):  # type: ignore[arg-type]
        raw = whole.get(index)
        if raw is not None:
            args.append(decode_value(raw) or b"")
            continue
        parts = chunks.get(index)
        if parts is None:
            args.append(b"")
            complete = False
            continue
        order = sorted(parts)
        if order != list(range(len(order))):
            complete = False
        pieces = [parts[i] for i in order]
        if sum(_encoded_length(piece) for piece in pieces) != lengths.get(index):
            complete = False
        args.append(b"".join(decode_value(piece) or b"" for piece in pieces))
    return Argv(args, complete)


def _encoded_length(raw: str) -> int:
    """What the kernel counts in aN_len for one chunk: hex digits, or bytes inside quotes."""
    if raw[:1] == '"':
        return len(raw.encode("utf-8", "surrogateescape")) - 2
    return len(raw)


def proctitle_argv(record: Record) -> Argv:
    """argv from a PROCTITLE record (NUL separated); incomplete when it hit the 128-byte cap."""
    value = record.data("proctitle")
    if not value:
        return Argv([], value is not None)
    complete = len(value) < PROCTITLE_MAX
    if value.endswith(b"\x00"):
        value = value[:-1]
    return Argv(value.split(b"\x00"), complete)


class SockAddr(NamedTuple):
    """A decoded `saddr`: address/port for inet, path for unix, port id for netlink."""

    family: int
    address: str | None = None
    port: int | None = None
    path: bytes | None = None  # AF_UNIX: the path; abstract names start with b"@"


def decode_sockaddr(data: bytes) -> SockAddr | None:
    """Decode the raw sockaddr of a SOCKADDR record; None when it is too short to hold a family.

    - AF_INET / AF_INET6: dotted quad / inet_ntop text (RFC 5952; IPv4-mapped as
      ::ffff:a.b.c.d; %scope index appended when set), and the port.
    - AF_UNIX: the path up to its NUL; an abstract name (leading NUL) is shown as in ss(8):
      '@' then the name, NULs inside it also shown as '@'. An unnamed socket has no path.
    - AF_NETLINK: the port id (nl_pid, 0 = kernel) as the address.
    Other families give the family only. Never raises.
    """
    if len(data) < 2:
        return None
    family = int.from_bytes(data[:2], sys.byteorder)
    if family == AF_INET and len(data) >= 8:
        port = int.from_bytes(data[2:4], "big")
        return SockAddr(family, socket.inet_ntoa(data[4:8]), port)
    if family == AF_INET6 and len(data) >= 24:
        port = int.from_bytes(data[2:4], "big")
        address = socket.inet_ntop(socket.AF_INET6, data[8:24])
        if len(data) >= 28:
            scope = int.from_bytes(data[24:28], sys.byteorder)
            if scope:
                address = f"{address}%{scope}"
        return SockAddr(family, address, port)
    if family == AF_UNIX:
        name = data[2:]
        if not name:
            return SockAddr(family)
        if name[0] == 0:
            return SockAddr(family, path=b"@" + name[1:].replace(b"\x00", b"@"))
        end = name.find(b"\x00")
        return SockAddr(family, path=name if end < 0 else name[:end])
    if family == AF_NETLINK and len(data) >= 8:
        return SockAddr(family, str(int.from_bytes(data[4:8], sys.byteorder)))
    return SockAddr(family)


def family_hex(family: int) -> frozenset[bytes]:
    """How a saddr's hex text starts for `family` (host order, as decode_sockaddr reads it),
    in either case."""
    text = family.to_bytes(2, sys.byteorder).hex()
    return frozenset({text.encode(), text.upper().encode()})


_AF_INET_HEX = family_hex(AF_INET)


def decode_inet_saddr_hex(saddr: bytes) -> tuple[str, int] | None:
    """(address, port) of decode_sockaddr(bytes.fromhex(saddr)) for an AF_INET saddr given
    as the record's hex text (even length, hex digits only), read in place: a connect storm
    cycles through more addresses than a cache of whole saddrs holds. None for any other
    family or a short one."""
    if saddr[:4] not in _AF_INET_HEX or len(saddr) < 16:
        return None
    return socket.inet_ntoa(bytes.fromhex(saddr[8:16].decode())), int(saddr[4:8], 16)
