"""struct audit_rule_data encoding and strict decoding."""

from __future__ import annotations

import struct

import pytest

from osquery_audit_ext.audit.rule import fields as F
from osquery_audit_ext.audit.rule.codec import (
    FIXED_SIZE,
    canonical_rule_data,
    decode_rule,
    encode_rule,
)
from osquery_audit_ext.audit.rule.model import ALL_SYSCALLS, Field, Rule
from osquery_audit_ext.audit.rule.parse import parse_rule
from osquery_audit_ext.errors import AuditProtocolError

EXEC_RULE = Rule(
    list=F.LIST_EXIT,
    action=F.ACTION_ALWAYS,
    syscalls=frozenset({59, 322}),
    fields=(
        Field(F.ARCH, F.OP_EQUAL, 0xC000003E),
        Field(F.LOGINUID, F.OP_GREATER_THAN_OR_EQUAL, 1000),
        Field(F.FILTERKEY, F.OP_EQUAL, "exec\x01second"),
    ),
)


def test_layout() -> None:
    data = encode_rule(EXEC_RULE)
    assert FIXED_SIZE == 1040
    assert len(data) == 1040 + len("exec\x01second")
    flags, action, count = struct.unpack_from("=3I", data)
    assert (flags, action, count) == (F.LIST_EXIT, F.ACTION_ALWAYS, 3)
    mask = struct.unpack_from("=64I", data, 12)
    assert mask[1] == 1 << (59 - 32) and mask[10] == 1 << (322 - 320)
    assert struct.unpack_from("=3I", data, 12 + 256) == (F.ARCH, F.LOGINUID, F.FILTERKEY)
    assert struct.unpack_from("=3I", data, 12 + 512) == (0xC000003E, 1000, 11)
    assert struct.unpack_from("=3I", data, 12 + 768) == (
        F.OP_EQUAL,
        F.OP_GREATER_THAN_OR_EQUAL,
        F.OP_EQUAL,
    )
    assert struct.unpack_from("=I", data, 1036) == (11,)
    assert data[1040:] == b"exec\x01second"
    assert decode_rule(data) == EXEC_RULE


def test_prepend_is_a_flag_bit() -> None:
    command = parse_rule("-A always,exit -F arch=b64 -S execve", machine="x86_64")
    data = encode_rule(command.rule)
    assert struct.unpack_from("=I", data) == (F.LIST_EXIT | F.FILTER_PREPEND,)
    assert decode_rule(data).prepend and decode_rule(data).list == F.LIST_EXIT


def test_negative_values_wrap_to_u32() -> None:
    rule = Rule(F.LIST_EXIT, F.ACTION_ALWAYS, ALL_SYSCALLS, (Field(F.EXIT, F.OP_EQUAL, -13),))
    assert decode_rule(encode_rule(rule)).fields[0].value == 0xFFFFFFF3


def test_listed_all_syscalls_with_class_bits_cleared_is_all() -> None:
    # The kernel clears the top 16 bits (syscall classes) of an `-S all` mask when it stores
    # the rule: listed back, it is still -S all, and canonical_rule_data() gives auditctl's bytes.
    sent = encode_rule(parse_rule("-a always,exit -S all -k k", machine="x86_64").rule)
    listed = bytearray(sent)
    struct.pack_into("=I", listed, 12 + 63 * 4, 0x0000FFFF)
    assert decode_rule(bytes(listed)).syscalls == ALL_SYSCALLS
    assert canonical_rule_data(bytes(listed)) == sent


def test_non_ascii_strings_survive() -> None:
    rule = Rule(
        F.LIST_EXIT,
        F.ACTION_ALWAYS,
        ALL_SYSCALLS,
        (Field(F.WATCH, F.OP_EQUAL, "/tmp/caf\u00e9/\udcff"), Field(F.PERM, F.OP_EQUAL, 2)),
    )
    data = encode_rule(rule)
    assert b"/tmp/caf\xc3\xa9/\xff" in data
    assert decode_rule(data) == rule


def test_short_header() -> None:
    with pytest.raises(AuditProtocolError, match="shorter than the 1040-byte header"):
        decode_rule(encode_rule(EXEC_RULE)[:1000])


def test_strings_cut_short() -> None:
    with pytest.raises(AuditProtocolError, match="its strings need"):
        decode_rule(encode_rule(EXEC_RULE)[:-3])


def test_netlink_padding_is_tolerated_but_not_garbage() -> None:
    data = encode_rule(EXEC_RULE)
    assert decode_rule(data + b"\0\0\0") == EXEC_RULE
    with pytest.raises(AuditProtocolError, match="unexpected bytes"):
        decode_rule(data + b"\0" * 8)


def test_string_lengths_beyond_buflen() -> None:
    data = bytearray(encode_rule(EXEC_RULE))
    struct.pack_into("=I", data, 12 + 512 + 2 * 4, 200)  # key length > buflen
    with pytest.raises(AuditProtocolError, match="overruns"):
        decode_rule(bytes(data))


def test_string_lengths_short_of_buflen() -> None:
    data = bytearray(encode_rule(EXEC_RULE))
    struct.pack_into("=I", data, 12 + 512 + 2 * 4, 4)  # key "exec" of "exec\x01second"
    with pytest.raises(AuditProtocolError, match="add up to 4 of buflen 11"):
        decode_rule(bytes(data))


def test_field_count_beyond_64() -> None:
    data = bytearray(encode_rule(EXEC_RULE))
    struct.pack_into("=I", data, 8, 65)
    with pytest.raises(AuditProtocolError, match="65 fields"):
        decode_rule(bytes(data))


def test_unknown_operator() -> None:
    data = bytearray(encode_rule(EXEC_RULE))
    struct.pack_into("=I", data, 12 + 768, 0x70000000)
    with pytest.raises(AuditProtocolError, match="unknown operator"):
        decode_rule(bytes(data))


def test_encode_refuses_what_cannot_be_encoded() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        encode_rule(Rule(F.LIST_EXIT, F.ACTION_ALWAYS, frozenset({2048}), ()))
    with pytest.raises(ValueError, match="takes a string"):
        encode_rule(
            Rule(F.LIST_EXIT, F.ACTION_ALWAYS, ALL_SYSCALLS, (Field(F.EXE, F.OP_EQUAL, 1),))
        )
    too_many = tuple(Field(F.UID, F.OP_EQUAL, i) for i in range(65))
    with pytest.raises(ValueError, match="at most 64"):
        encode_rule(Rule(F.LIST_EXIT, F.ACTION_ALWAYS, ALL_SYSCALLS, too_many))
