"""format_rule on rules auditctl never builds but the kernel may hold (other tools add them),
and describe_rule's audit_rules columns. Expected lines were printed by auditctl 3.0.9's
`auditctl -l` for these payloads (see tests/helpers/auditctl_oracle.py)."""

from __future__ import annotations

import pytest

from osquery_audit_ext.audit.rule import fields as F
from osquery_audit_ext.audit.rule.format import RuleSummary, describe_rule, format_rule
from osquery_audit_ext.audit.rule.model import ALL_SYSCALLS, Field, Rule
from osquery_audit_ext.audit.rule.parse import parse_rule

EXIT, ALWAYS, EQ, NE = F.LIST_EXIT, F.ACTION_ALWAYS, F.OP_EQUAL, F.OP_NOT_EQUAL

FOREIGN = [
    (
        Rule(EXIT, ALWAYS, frozenset({59}), (Field(F.FILTERKEY, EQ, "k1"), Field(F.UID, EQ, 0))),
        "-a always,exit -S execve -F key=k1 -F uid=0",
    ),
    (
        Rule(EXIT, ALWAYS, frozenset({1, 2}), (Field(F.ARCH, EQ, 0x1234),)),
        "-a always,exit -F arch=0x1234 -S 1,2",
    ),
    (Rule(EXIT, ALWAYS, frozenset(), (Field(F.UID, EQ, 0),)), "-a always,exit -F uid=0"),
    (
        Rule(
            EXIT,
            ALWAYS,
            frozenset({59}),
            (Field(F.LOGINUID_SET, EQ, 1), Field(150, NE, 0xFFFFFFFE)),
        ),
        "-a always,exit -S execve f24=1 f150!=-2",
    ),
    (
        Rule(F.LIST_EXCLUDE, F.ACTION_NEVER, ALL_SYSCALLS, (Field(F.MSGTYPE, EQ, 1999),)),
        "-a never,exclude -F msgtype=1999",
    ),
    (
        Rule(
            EXIT,
            ALWAYS,
            frozenset({59}),
            (Field(F.FIELD_COMPARE, EQ, 99), Field(F.INODE, EQ, 0xFFFFFFF0), Field(F.EXIT, EQ, 5)),
        ),
        "-a always,exit -S execve -F inode=4294967280 -F exit=5",
    ),
    (
        Rule(
            EXIT,
            ALWAYS,
            ALL_SYSCALLS,
            (Field(F.PERM, EQ, 6), Field(F.WATCH, EQ, "/a"), Field(F.FILTERKEY, EQ, "a\x01\x01b")),
        ),
        " -p rw-w /a -k a -k b",
    ),
    (Rule(F.LIST_TASK, ALWAYS, frozenset(), (Field(F.PERM, EQ, 6),)), " -p rw"),
    (
        Rule(
            EXIT,
            ALWAYS,
            frozenset({59}),
            (Field(F.WATCH, NE, "/a"), Field(F.PERM, NE, 2), Field(F.EXE, NE, "/b")),
        ),
        "-a always,exit -S execve -F path=/a -F perm=w -F exe=/b",
    ),
    (
        Rule(
            EXIT,
            ALWAYS,
            frozenset({59}),
            (Field(F.ARCH, EQ, 0x40000003), Field(F.ARCH, EQ, 0xC000003E)),
        ),
        "-a always,exit -F arch=b32 -F arch=b64 -S execve",
    ),
    (
        Rule(EXIT, ALWAYS, frozenset({59}), (Field(F.ARCH, EQ, 0),)),
        "-a always,exit -F arch=0x0 -S execve",
    ),
    (Rule(EXIT, ALWAYS, frozenset({2047, 2032, 0}), ()), "-a always,exit -S read,2032,2047"),
    (
        Rule(F.LIST_USER, ALWAYS, frozenset({5}), (Field(F.UID, EQ, 1),)),
        "-a always,user -F uid=1",
    ),
]


@pytest.mark.parametrize(("rule", "line"), FOREIGN, ids=[line for _, line in FOREIGN])
def test_rules_from_other_tools_print_as_auditctl_prints_them(rule: Rule, line: str) -> None:
    assert format_rule(rule, machine="x86_64") == line


def test_io_uring_list_is_named() -> None:
    rule = parse_rule("-a always,io_uring -S 18 -F uid=0 -k ring").rule
    assert format_rule(rule) == "-a always,io_uring -S 18 -F uid=0 -F key=ring"


def test_prepend_prints_as_A_and_never_as_a_watch() -> None:
    rule = parse_rule("-A always,exit -F path=/etc/passwd -F perm=wa -k p").rule
    assert format_rule(rule) == "-A always,exit -S all -F path=/etc/passwd -F perm=wa -F key=p"


def test_the_host_machine_names_syscalls_without_arch() -> None:
    rule = parse_rule("-a always,exit -S 59", machine="x86_64").rule
    assert format_rule(rule, machine="x86_64") == "-a always,exit -S execve"
    assert format_rule(rule, machine="aarch64") == "-a always,exit -S pipe2"
    assert format_rule(rule, machine="sparc") == "-a always,exit -S 59"
    assert format_rule(rule, machine="i386") == "-a always,exit -S oldolduname"


def summary(text: str) -> RuleSummary:
    return describe_rule(parse_rule(text, machine="x86_64").rule, machine="x86_64")


def test_summary_of_a_watch() -> None:
    assert summary("-w /etc/passwd -p wa -k identity -k second") == RuleSummary(
        list="exit",
        action="always",
        type="file",
        arch="",
        syscalls="all",
        path="/etc/passwd",
        permissions="wa",
        key="identity,second",
        fields="",
    )


def test_summary_of_a_syscall_rule() -> None:
    assert summary(
        "-a always,exit -F arch=b64 -S open,openat -F exit=-EACCES -F auid>=1000 "
        "-F auid!=unset -C uid!=euid -k access"
    ) == RuleSummary(
        list="exit",
        action="always",
        type="syscall",
        arch="b64",
        syscalls="open,openat",
        path="",
        permissions="",
        key="access",
        fields="-F exit=-EACCES -F auid>=1000 -F auid!=-1 -C uid!=euid",
    )


def test_summary_of_a_path_rule_in_a_form() -> None:
    assert summary("-a always,exit -F path=/etc/shadow -F perm=r -F auid!=-1 -k s") == (
        RuleSummary(
            list="exit",
            action="always",
            type="syscall",
            arch="",
            syscalls="all",
            path="/etc/shadow",
            permissions="r",
            key="s",
            fields="-F path=/etc/shadow -F perm=r -F auid!=-1",
        )
    )


def test_summary_of_lists_without_syscalls() -> None:
    exclude = summary("-a never,exclude -F msgtype=CWD")
    assert (exclude.list, exclude.action, exclude.syscalls, exclude.fields) == (
        "exclude",
        "never",
        "",
        "-F msgtype=CWD",
    )
    task = summary("-a always,task -F uid=0")
    assert (task.type, task.syscalls, task.key) == ("syscall", "", "")


def test_summary_arch_with_operator() -> None:
    assert summary("-a always,exit -F arch!=b32 -S execve").arch == "!=b32"
