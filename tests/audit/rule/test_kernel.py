"""Against the kernel: the hardening corpus (tests/audit/rule/rules_corpus.rules) added by auditctl
lists identically through us, rules added by us list identically in `auditctl -l`, and each
side deletes what the other added.

Only rules carrying an oaetest_rc key (or, on lists without keys, a uid in 5999x) are looked
at or removed; every test removes them again on every exit path.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from helpers.kernel import kernel_audit_locked, run_auditctl

from osquery_audit_ext import cli
from osquery_audit_ext.audit.control import AuditControl
from osquery_audit_ext.audit.rule import fields as F
from osquery_audit_ext.audit.rule.codec import decode_rule, encode_rule
from osquery_audit_ext.audit.rule.format import format_rule
from osquery_audit_ext.audit.rule.model import Rule
from osquery_audit_ext.audit.rule.parse import parse_rule, split_rules_file_line
from osquery_audit_ext.errors import AuditRuleRejected

pytestmark = pytest.mark.kernel

CORPUS = Path(__file__).parent / "rules_corpus.rules"
CORPUS_RULES = [w for w in map(split_rules_file_line, CORPUS.read_text().splitlines()) if w]
KEY_PREFIX = "oaetest_rc"
MARK_UIDS = {59991, 59992, 59993}
DELETE_OPTION = {"-a": "-d", "-A": "-d", "-w": "-W"}


def ours(rule: Rule) -> bool:
    return any(k.startswith(KEY_PREFIX) for k in rule.keys) or bool(
        MARK_UIDS & set(rule.values(F.UID))
    )


def delete_words(words: list[str]) -> list[str]:
    return [DELETE_OPTION.get(words[0], words[0]), *words[1:]]


def remove_ours() -> None:
    with AuditControl() as control:
        for data in control.list_rules():
            if ours(decode_rule(data)):
                try:
                    control.delete_rule(data)
                except AuditRuleRejected:
                    pass  # gone meanwhile


def listing() -> list[tuple[Rule, str]]:
    """Kernel rules paired with the lines `auditctl -l` prints for them, from a moment when
    the list did not change under us (other tests add and remove their own rules)."""
    for _ in range(10):
        with AuditControl() as control:
            before = control.list_rules()
        lines = run_auditctl("-l").splitlines()
        with AuditControl() as control:
            after = control.list_rules()
        if before == after:
            if not before:
                assert lines == ["No rules"]
                return []
            assert len(lines) == len(before)
            return list(zip(map(decode_rule, before), lines))
    pytest.fail("the kernel's rule list kept changing while it was listed")


def auditctl_state_independent(rule: Rule) -> bool:
    """auditctl names a rule's syscalls with the arch of the rule printed before it when the
    rule has none (a stale global in auditctl): compare only rules that bug cannot touch."""
    named = rule.list == F.LIST_EXIT and not rule.all_syscalls and rule.syscalls
    return rule.arch is not None or not named


def test_rules_added_by_auditctl_list_identically_and_we_delete_them(
    kernel_rw: None, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        for words in CORPUS_RULES:
            run_auditctl(*words)
        mine = [(rule, line) for rule, line in listing() if ours(rule)]
        assert len(mine) == len(CORPUS_RULES)
        for rule, line in mine:
            assert format_rule(rule) == line
        assert cli.main(["rules", "list"]) == 0
        expected_lines = [line for _, line in mine]
        printed = capsys.readouterr().out.splitlines()
        assert [line for line in printed if line in set(expected_lines)] == expected_lines
        with AuditControl() as control:
            for words in CORPUS_RULES:
                rule = dataclasses.replace(parse_rule(words).rule, prepend=False)
                control.delete_rule(encode_rule(rule))
        assert not [rule for rule, _ in listing() if ours(rule)]
    finally:
        remove_ours()


def test_rules_added_by_us_list_identically_in_auditctl_and_auditctl_deletes_them(
    kernel_rw: None,
) -> None:
    try:
        expected = []
        with AuditControl() as control:
            for words in CORPUS_RULES:
                rule = parse_rule(words).rule
                control.add_rule(encode_rule(rule))
                expected.append(format_rule(dataclasses.replace(rule, prepend=False)))
        listed = [line for rule, line in listing() if ours(rule)]
        assert sorted(listed) == sorted(expected)
        for words in CORPUS_RULES:
            run_auditctl(*delete_words(words))
        assert not [rule for rule, _ in listing() if ours(rule)]
    finally:
        remove_ours()


def test_prepended_rule_goes_first_and_is_deleted_without_the_flag(kernel_rw: None) -> None:
    first = parse_rule(f"-a always,exit -F arch=b64 -S execve -F uid=59990 -k {KEY_PREFIX}_p1")
    head = parse_rule(f"-A always,exit -F arch=b64 -S execve -F uid=59990 -k {KEY_PREFIX}_p2")
    try:
        with AuditControl() as control:
            control.add_rule(encode_rule(first.rule))
            control.add_rule(encode_rule(head.rule))
            keys = [decode_rule(d).keys for d in control.list_rules()]
            ours_in_order = [k for k in keys if k and k[0].startswith(KEY_PREFIX + "_p")]
            assert ours_in_order == [[f"{KEY_PREFIX}_p2"], [f"{KEY_PREFIX}_p1"]]
            listed = [decode_rule(d) for d in control.list_rules()]
            assert not any(r.prepend for r in listed)
            control.delete_rule(encode_rule(dataclasses.replace(head.rule, prepend=False)))
            with pytest.raises(AuditRuleRejected, match="no such rule"):
                control.delete_rule(encode_rule(head.rule))  # already gone
    finally:
        remove_ours()


def test_rules_list_prints_what_auditctl_prints(
    kernel: None, capsys: pytest.CaptureFixture[str]
) -> None:
    pairs = listing()
    assert cli.main(["rules", "list"]) == 0
    printed = capsys.readouterr().out.splitlines()
    if not pairs:
        assert printed == ["No rules"]
        return
    for (rule, line), ours_line in zip(pairs, printed):
        if auditctl_state_independent(rule):
            assert ours_line == line


def test_changes_on_a_locked_kernel_are_refused_clearly(
    kernel: None, capsys: pytest.CaptureFixture[str]
) -> None:
    if not kernel_audit_locked():
        pytest.skip("kernel audit is not locked (enabled=2) here")
    assert cli.main(["rules", "add", f"-w /etc/passwd -p wa -k {KEY_PREFIX}_locked"]) == 1
    error = capsys.readouterr().err
    assert "locked" in error and "nothing was changed" in error
