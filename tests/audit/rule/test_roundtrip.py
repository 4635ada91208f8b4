"""Property tests: encode/decode is lossless, and format -> parse gives the rule back for every
rule auditctl can express (so `auditctl -l` output can be fed back to `rules add/delete`).
When root, gcc and auditctl are here, the same rules are also printed by the real
`auditctl -l` (tests/helpers/auditctl_oracle.py) and must match format_rule exactly."""

from __future__ import annotations

import dataclasses

import pytest
from helpers import auditctl_oracle as oracle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from osquery_audit_ext.audit.rule import fields as F
from osquery_audit_ext.audit.rule.codec import decode_rule, encode_rule
from osquery_audit_ext.audit.rule.format import format_rule
from osquery_audit_ext.audit.rule.model import ALL_SYSCALLS, Field, Rule
from osquery_audit_ext.audit.rule.parse import parse_rule
from osquery_audit_ext.audit.syscalls import syscall_table

MACHINE = "x86_64"
B64, B32 = 0xC000003E, 0x40000003
U32 = st.integers(0, 0xFFFFFFFF)
SAFE_TEXT = st.text(
    st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFXYZ0123456789_.:/+,@%-"),
    min_size=1,
    max_size=24,
)
PATHS = SAFE_TEXT.map(lambda s: f"/oaetest-nonexistent/{s}.x")  # -w trims a trailing /
NON_BIT_OPS = st.sampled_from(sorted(set(F.OPERATOR_SYMBOLS) - F.BIT_OPERATORS))
ANY_OPS = st.sampled_from(sorted(F.OPERATOR_SYMBOLS))
EQ_OPS = st.sampled_from(sorted(F.EQUALITY_OPERATORS))
NOT_UNSET = st.integers(0, 0xFFFFFFFE)


# -- any rule the struct can hold (for the codec) ------------------------------------------


def any_field() -> st.SearchStrategy[Field]:
    ids = st.sampled_from([*sorted(F.FIELD_NAMES), F.LOGINUID_SET, 150])
    ops = st.sampled_from(sorted(F.OPERATOR_SYMBOLS))

    def value_for(field_id: int) -> st.SearchStrategy[int | str]:
        if field_id in F.STRING_FIELDS:
            return st.text(max_size=40)
        return U32

    return st.builds(
        lambda field_id, op, data: Field(field_id, op, data.draw(value_for(field_id))),
        ids,
        ops,
        st.data(),
    )


ANY_SYSCALLS = st.one_of(
    st.just(ALL_SYSCALLS), st.frozensets(st.integers(0, F.SYSCALL_BITS - 1), max_size=40)
)
ANY_RULE = st.builds(
    Rule,
    list=st.sampled_from(sorted(F.LIST_NAMES)),
    action=st.sampled_from(sorted(F.ACTION_NAMES)),
    syscalls=ANY_SYSCALLS,
    fields=st.lists(any_field(), max_size=F.MAX_FIELDS).map(tuple),
    prepend=st.booleans(),
)


@settings(deadline=None)
@given(ANY_RULE)
def test_decode_inverts_encode(rule: Rule) -> None:
    assert decode_rule(encode_rule(rule)) == rule


# -- rules auditctl can express (for format -> parse) --------------------------------------


def field(
    field_id: int, ops: st.SearchStrategy[int], values: st.SearchStrategy
) -> st.SearchStrategy:
    return st.builds(Field, st.just(field_id), ops, values)


def compare_field() -> st.SearchStrategy[Field]:
    return field(F.FIELD_COMPARE, EQ_OPS, st.sampled_from(sorted(F.COMPARISONS)))


COMMON = [  # valid on every list but filesystem
    *(field(i, NON_BIT_OPS, NOT_UNSET) for i in (F.UID, F.GID)),
    field(F.LOGINUID, NON_BIT_OPS, U32),
    field(F.PID, NON_BIT_OPS, U32),
    *(field(i, EQ_OPS, SAFE_TEXT) for i in (F.SUBJ_USER, F.SUBJ_ROLE, F.SUBJ_TYPE)),
    field(F.SUBJ_SEN, NON_BIT_OPS, SAFE_TEXT),
    field(F.EXE, st.just(F.OP_EQUAL), PATHS),  # auditctl prints exe!= as exe= (lossy)
]
NOT_EXCLUDE = [
    *(field(i, NON_BIT_OPS, NOT_UNSET) for i in (F.EUID, F.SUID, F.FSUID, F.OBJ_UID)),
    *(field(i, NON_BIT_OPS, NOT_UNSET) for i in (F.EGID, F.SGID, F.FSGID, F.OBJ_GID)),
    field(F.PERS, ANY_OPS, U32),
    *(field(i, ANY_OPS, U32) for i in sorted(F.ARG_FIELDS)),
    field(F.SADDR_FAM, NON_BIT_OPS, st.integers(0, F.AF_MAX - 1)),
]
EXIT_ONLY = [
    field(F.EXIT, NON_BIT_OPS, U32),
    field(F.SUCCESS, NON_BIT_OPS, st.integers(0, 1)),
    field(F.PPID, NON_BIT_OPS, U32),
    field(F.DEVMAJOR, NON_BIT_OPS, U32),
    field(F.DEVMINOR, ANY_OPS, U32),
    field(F.INODE, EQ_OPS, U32),
    field(F.FILETYPE, EQ_OPS, st.sampled_from(sorted(F.FILE_TYPES.values()))),
    field(F.SESSIONID, NON_BIT_OPS, U32),
    field(F.PERM, st.just(F.OP_EQUAL), st.integers(1, 15)),
    field(F.WATCH, st.just(F.OP_EQUAL), PATHS),  # path!= / dir!= print as = too
    field(F.DIR, st.just(F.OP_EQUAL), PATHS),
    *(field(i, EQ_OPS, SAFE_TEXT) for i in (F.OBJ_USER, F.OBJ_ROLE, F.OBJ_TYPE)),
    field(F.OBJ_LEV_LOW, NON_BIT_OPS, SAFE_TEXT),
    compare_field(),
]
LIST_FIELDS = {
    F.LIST_EXIT: COMMON + NOT_EXCLUDE + EXIT_ONLY,
    F.LIST_USER: [
        *COMMON,
        *NOT_EXCLUDE,
        field(F.MSGTYPE, NON_BIT_OPS, st.integers(1, 2999)),
        field(F.SESSIONID, NON_BIT_OPS, U32),
    ],
    F.LIST_TASK: COMMON + NOT_EXCLUDE,
    F.LIST_EXCLUDE: [*COMMON, field(F.MSGTYPE, NON_BIT_OPS, st.integers(1, 2999))],
    F.LIST_FILESYSTEM: [field(F.FSTYPE, EQ_OPS, st.integers(0, 0x7FFFFFFF))],
}
KEYS = st.lists(SAFE_TEXT, min_size=1, max_size=3).filter(lambda k: len("\x01".join(k)) <= 256)


@st.composite
def expressible_rules(draw: st.DrawFn) -> Rule:
    rule_list = draw(st.sampled_from(sorted(LIST_FIELDS)))
    fields = list(draw(st.lists(st.one_of(LIST_FIELDS[rule_list]), max_size=8)))
    syscalls = frozenset() if rule_list == F.LIST_TASK else ALL_SYSCALLS
    if rule_list == F.LIST_EXIT:
        arch = draw(st.sampled_from([None, B64, B32]))
        if arch is not None:
            fields.insert(0, Field(F.ARCH, draw(EQ_OPS), arch))
        table = syscall_table("i386" if arch == B32 else MACHINE)
        named = st.frozensets(st.sampled_from(sorted(table)), min_size=1, max_size=12)
        syscalls = draw(st.one_of(st.just(ALL_SYSCALLS), named))
        watch_ids = {F.WATCH, F.DIR, F.PERM, F.FILTERKEY}
        if syscalls == ALL_SYSCALLS and {f.id for f in fields} <= watch_ids:
            # auditctl prints these in -w form, which only reads back as a real watch.
            fields = [
                Field(F.WATCH, F.OP_EQUAL, draw(PATHS)),
                Field(F.PERM, F.OP_EQUAL, draw(st.integers(1, 15))),
            ]
    ids = {f.id for f in fields}
    can_have_key = rule_list == F.LIST_EXIT or ids & {F.PERM, F.WATCH, F.DIR, F.EXE, F.FSTYPE}
    if can_have_key and draw(st.booleans()):
        fields.append(Field(F.FILTERKEY, F.OP_EQUAL, "\x01".join(draw(KEYS))))
    action = draw(st.sampled_from(sorted(F.ACTION_NAMES)))
    if (
        rule_list == F.LIST_EXIT
        and syscalls == ALL_SYSCALLS
        and fields
        and fields[0].id == F.WATCH
        and len(fields) <= 3
        and {f.id for f in fields} <= {F.WATCH, F.PERM, F.FILTERKEY}
    ):
        action = F.ACTION_ALWAYS  # a watch is always `always`
    return Rule(rule_list, action, syscalls, tuple(fields))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressible_rules())
def test_format_then_parse_gives_the_rule_back(rule: Rule) -> None:
    text = format_rule(rule, machine=MACHINE)
    reparsed = parse_rule(text.split(" "), machine=MACHINE).rule
    assert reparsed == rule, text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressible_rules())
def test_parse_then_encode_then_decode_then_format_is_stable(rule: Rule) -> None:
    text = format_rule(rule, machine=MACHINE)
    command = parse_rule(text.split(" "), machine=MACHINE)
    again = decode_rule(encode_rule(command.rule))
    assert format_rule(again, machine=MACHINE) == text


# -- against the real auditctl -l ----------------------------------------------------------

needs_oracle = pytest.mark.skipif(
    oracle.unavailable_reason() is not None, reason=str(oracle.unavailable_reason())
)


@needs_oracle
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressible_rules())
def test_format_matches_auditctl_listing(rule: Rule) -> None:
    (listed,) = oracle.auditctl_listing([encode_rule(rule)])
    assert format_rule(rule, machine=MACHINE) == listed


@needs_oracle
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ANY_RULE.filter(lambda r: r.list != F.LIST_IO_URING))
def test_format_of_any_kernel_rule_matches_auditctl_listing(rule: Rule) -> None:
    # What the kernel lists never carries the prepend flag.
    rule = dataclasses.replace(rule, prepend=False)
    printable = all(
        isinstance(f.value, int) or (f.value.isprintable() and "\n" not in f.value)
        for f in rule.fields
    )
    if not printable:
        rule = dataclasses.replace(
            rule, fields=tuple(f for f in rule.fields if f.id not in F.STRING_FIELDS)
        )
    (listed,) = oracle.auditctl_listing([encode_rule(rule)])
    assert format_rule(rule, machine=MACHINE) == listed
