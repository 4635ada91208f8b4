"""`osquery-audit-ext rules ...`: parsing before touching the kernel, FILE:LINE errors,
rollback, and add/delete round trips."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.kernel import run_auditctl

from osquery_audit_ext import cli
from osquery_audit_ext.audit.control import AuditControl
from osquery_audit_ext.audit.rule.codec import decode_rule
from osquery_audit_ext.commands import rules as rules_command

KEY = "oaetest_rcli"


class NoKernel:
    """Stands in for AuditControl where the kernel must not be asked anything at all."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("the kernel was contacted although a rule did not parse")


@pytest.fixture
def no_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rules_command, "AuditControl", NoKernel)


def our_lines() -> list[str]:
    return [line for line in run_auditctl("-l").splitlines() if KEY in line]


def remove_ours() -> None:
    with AuditControl() as control:
        for data in control.list_rules():
            if any(k.startswith(KEY) for k in decode_rule(data).keys):
                control.delete_rule(data)


def test_load_reports_every_bad_line_and_changes_nothing(
    tmp_path: Path, no_kernel: None, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "audit.rules"
    rules.write_text(
        "## a rules file\n"
        f"-w /etc/passwd -p wa -k {KEY}_1\n"
        "\n"
        "-a always,exit -F arch=b64 -S bogus -k x\n"
        f"-a always,exit -F arch=b64 -S execve -k {KEY}_2\n"
        "-a always,exit -F arch=b64 -S execve -F uid=nosuchuser_oaetest\n"
    )
    assert cli.main(["rules", "load", str(rules)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"osquery-audit-ext: {rules}:4: -S bogus: unknown syscall on ")
    assert err[0].endswith(": bogus")
    assert err[1] == f"{rules}:6: -F uid=nosuchuser_oaetest: unknown user 'nosuchuser_oaetest'"
    assert err[2] == f"{rules}: 2 bad lines, no rule was changed"


def test_load_refuses_lines_that_are_not_rules(
    tmp_path: Path, no_kernel: None, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "audit.rules"
    rules.write_text(
        f"-D\n-b 8192\n--backlog_wait_time 60000\n-w /etc/passwd -p wa -k {KEY}_1\n-e 2\n"
    )
    assert cli.main(["rules", "load", str(rules)]) == 1
    err = capsys.readouterr().err
    for lineno, option in ((1, "-D"), (2, "-b"), (3, "--backlog_wait_time"), (5, "-e")):
        assert f"{rules}:{lineno}: {option} " in err
    assert "not a rule" in err and f"{rules}:4" not in err
    assert "4 bad lines, no rule was changed" in err


def test_load_of_a_missing_file(no_kernel: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["rules", "load", "/nonexistent/oaetest.rules"]) == 1
    assert "cannot read /nonexistent/oaetest.rules" in capsys.readouterr().err


def test_add_refuses_a_deletion_and_bad_rules_before_the_kernel(
    no_kernel: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["rules", "add", "-d always,exit -F arch=b64 -S execve"]) == 1
    assert "use `rules delete`" in capsys.readouterr().err
    good = f"-w /etc/passwd -p wa -k {KEY}_1"
    assert cli.main(["rules", "add", good, "-a always,exit -F nosuch=1"]) == 1
    assert "unknown field 'nosuch'" in capsys.readouterr().err


def test_delete_takes_the_rule_as_it_was_added() -> None:
    ((_where, command),) = rules_command.parse_arguments(
        ["-A always,exit -F arch=b64 -S execve -k k"], deleting=True
    )
    assert command.op == "delete" and not command.rule.prepend
    ((_, watch),) = rules_command.parse_arguments(["-w /etc/passwd -p wa"], deleting=True)
    ((_, unwatch),) = rules_command.parse_arguments(["-W /etc/passwd -p wa"], deleting=True)
    assert watch == unwatch


@pytest.mark.kernel
def test_add_then_delete(kernel_rw: None) -> None:
    watch = f"-w /etc/passwd -p wa -k {KEY}_w"
    execs = f"-a always,exit -F arch=b64 -S execve -F auid>=1000 -F auid!=unset -k {KEY}_x"
    try:
        assert cli.main(["rules", "add", watch, execs]) == 0
        assert our_lines() == [
            f"-w /etc/passwd -p wa -k {KEY}_w",
            f"-a always,exit -F arch=b64 -S execve -F auid>=1000 -F auid!=-1 -F key={KEY}_x",
        ]
        assert cli.main(["rules", "delete", watch, execs]) == 0
        assert our_lines() == []
    finally:
        remove_ours()


@pytest.mark.kernel
def test_load_applies_in_order_and_undoes_on_refusal(
    kernel_rw: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "audit.rules"
    rules.write_text(
        f"-w /etc/passwd -p wa -k {KEY}_1\n"
        f"-a always,exit -F arch=b64 -S execve -k {KEY}_2\n"
        f"-w /etc/passwd -p wa -k {KEY}_1\n"  # the same rule again: the kernel says it exists
    )
    try:
        assert cli.main(["rules", "load", str(rules)]) == 1
        err = capsys.readouterr().err
        assert f"{rules}:3: rule exists (the 2 earlier changes were undone)" in err
        assert our_lines() == []
        rules.write_text("\n".join(rules.read_text().splitlines()[:2]) + "\n")
        assert cli.main(["rules", "load", str(rules)]) == 0
        assert our_lines() == [
            f"-w /etc/passwd -p wa -k {KEY}_1",
            f"-a always,exit -F arch=b64 -S execve -F key={KEY}_2",
        ]
        unload = tmp_path / "unload.rules"
        unload.write_text(
            f"-W /etc/passwd -p wa -k {KEY}_1\n-d always,exit -F arch=b64 -S execve -k {KEY}_2\n"
        )
        assert cli.main(["rules", "load", str(unload)]) == 0
        assert our_lines() == []
    finally:
        remove_ours()


@pytest.mark.kernel
def test_list_filters_by_key(kernel: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["rules", "list", "-k", "oaetest_no_such_key_anywhere"]) == 0
    assert capsys.readouterr().out == "No rules\n"


def test_load_check_only_parses(
    tmp_path: Path, no_kernel: None, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "audit.rules"
    rules.write_text(f"# ok\n-w /etc/passwd -p wa -k {KEY}_1\n-a always,exit -F arch=b64 -S open\n")
    assert cli.main(["rules", "load", "--check", str(rules)]) == 0
    assert capsys.readouterr().out == f"{rules}: 2 rules, all valid\n"
    rules.write_text("-a always,exit -F arch=b64 -S bogus\n")
    assert cli.main(["rules", "load", "--check", str(rules)]) == 1
    assert f"{rules}:1: -S bogus" in capsys.readouterr().err
