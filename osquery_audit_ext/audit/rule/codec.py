"""struct audit_rule_data <-> Rule, byte for byte as auditctl sends it and the kernel lists it.

Layout (host endian): u32 flags, action, field_count, mask[64], fields[64], values[64],
fieldflags[64], buflen, then buf with the string fields' bytes back to back, no NUL, in field
order. The payload is exactly 1040 + buflen bytes; netlink padding is the transport's job.
"""

from __future__ import annotations

import struct

from ...errors import AuditProtocolError
from . import fields as F
from .model import ALL_SYSCALLS, Field, Rule

HEADER = struct.Struct("=3I")
WORDS = struct.Struct(f"={F.BITMASK_WORDS}I")
FIXED_SIZE = HEADER.size + 4 * WORDS.size + 4  # 1040
MASK_OFFSET = HEADER.size
FIELDS_OFFSET = MASK_OFFSET + WORDS.size
VALUES_OFFSET = FIELDS_OFFSET + WORDS.size
FIELDFLAGS_OFFSET = VALUES_OFFSET + WORDS.size
BUFLEN_OFFSET = FIELDFLAGS_OFFSET + WORDS.size
NETLINK_ALIGN = 4


def _mask_words(syscalls: frozenset[int]) -> list[int]:
    words = [0] * F.BITMASK_WORDS
    for nr in syscalls:
        if not 0 <= nr < F.SYSCALL_BITS:
            raise ValueError(f"syscall number {nr} does not fit the audit syscall mask")
        words[nr // 32] |= 1 << (nr % 32)
    return words


def _string_bytes(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


def encode_rule(rule: Rule) -> bytes:
    """The audit_rule_data payload of an AUDIT_ADD_RULE / AUDIT_DEL_RULE message."""
    if len(rule.fields) > F.MAX_FIELDS:
        raise ValueError(f"a rule holds at most {F.MAX_FIELDS} fields, not {len(rule.fields)}")
    ids = [0] * F.MAX_FIELDS
    values = [0] * F.MAX_FIELDS
    ops = [0] * F.MAX_FIELDS
    buf = bytearray()
    for i, field in enumerate(rule.fields):
        ids[i] = field.id
        ops[i] = field.op
        if field.id in F.STRING_FIELDS:
            if not isinstance(field.value, str):
                raise ValueError(f"field {field.name} takes a string, not {field.value!r}")
            data = _string_bytes(field.value)
            values[i] = len(data)
            buf += data
        else:
            if not isinstance(field.value, int):
                raise ValueError(f"field {field.name or field.id} takes a number")
            values[i] = field.value & 0xFFFFFFFF
    flags = rule.list | (F.FILTER_PREPEND if rule.prepend else 0)
    return b"".join(
        (
            HEADER.pack(flags, rule.action, len(rule.fields)),
            WORDS.pack(*_mask_words(rule.syscalls)),
            WORDS.pack(*ids),
            WORDS.pack(*values),
            WORDS.pack(*ops),
            struct.pack("=I", len(buf)),
            bytes(buf),
        )
    )


def decode_rule(data: bytes) -> Rule:
    """Parse one audit_rule_data payload (as AUDIT_LIST_RULES returns it); strict about sizes."""
    if len(data) < FIXED_SIZE:
        raise AuditProtocolError(
            f"audit rule data is {len(data)} bytes, shorter than the {FIXED_SIZE}-byte header"
        )
    flags, action, count = HEADER.unpack_from(data)
    if count > F.MAX_FIELDS:
        raise AuditProtocolError(f"audit rule data claims {count} fields (at most 64)")
    (buflen,) = struct.unpack_from("=I", data, BUFLEN_OFFSET)
    end = FIXED_SIZE + buflen
    if len(data) < end:
        raise AuditProtocolError(
            f"audit rule data is {len(data)} bytes but its strings need {end} (buflen {buflen})"
        )
    if len(data) - end >= NETLINK_ALIGN:
        raise AuditProtocolError(
            f"audit rule data has {len(data) - end} unexpected bytes after its strings"
        )
    mask = WORDS.unpack_from(data, MASK_OFFSET)
    ids = WORDS.unpack_from(data, FIELDS_OFFSET)
    values = WORDS.unpack_from(data, VALUES_OFFSET)
    ops = WORDS.unpack_from(data, FIELDFLAGS_OFFSET)
    offset = FIXED_SIZE
    fields = []
    for i in range(count):
        op = ops[i]
        if op not in F.OPERATOR_SYMBOLS:
            raise AuditProtocolError(f"audit rule field {i} has an unknown operator 0x{op:x}")
        value: int | str = values[i]
        if ids[i] in F.STRING_FIELDS:
            if offset + values[i] > end:
                raise AuditProtocolError(
                    f"audit rule field {i} string overruns the buffer ({values[i]} bytes)"
                )
            value = data[offset : offset + values[i]].decode("utf-8", "surrogateescape")
            offset += values[i]
        fields.append(Field(ids[i], op, value))
    if offset != end:
        raise AuditProtocolError(
            f"audit rule strings add up to {offset - FIXED_SIZE} of buflen {buflen} bytes"
        )
    if all(word == 0xFFFFFFFF for word in mask[:-1]):
        # The kernel keeps the class bits on top cleared; auditctl still calls it "all".
        syscalls = ALL_SYSCALLS
    else:
        syscalls = frozenset(
            32 * i + bit
            for i, word in enumerate(mask)
            if word
            for bit in range(32)
            if word >> bit & 1
        )
    return Rule(
        list=flags & ~F.FILTER_PREPEND,
        action=action,
        syscalls=syscalls,
        fields=tuple(fields),
        prepend=bool(flags & F.FILTER_PREPEND),
    )


def canonical_rule_data(data: bytes) -> bytes:
    """Rule data as auditctl would send it for the same rule: a listed rule's bytes made
    comparable to encode_rule() output (the kernel clears the mask's class bits)."""
    return encode_rule(decode_rule(data))
