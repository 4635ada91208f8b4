"""`osquery-audit-ext status`: `auditctl -s` output, --set validation before anything is
applied, the locked and unprivileged cases, --reset-lost.

Refusals are checked in a subprocess without any capability (setpriv), so even a broken
check could not change the kernel (least of all lock it): the message seen must be the
refusal, not the kernel's permission error, which shows nothing reached the kernel.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from helpers.kernel import kernel_audit_locked, run_auditctl

from osquery_audit_ext import cli
from osquery_audit_ext.audit.control import AuditControl
from osquery_audit_ext.commands.status import LOCK_REFUSED, parse_setting, parse_settings
from osquery_audit_ext.errors import ConfigError

LOOSE = {"lost", "backlog", "backlog_wait_time_actual"}  # counters that move on their own
SETPRIV = shutil.which("setpriv")


def run_without_capabilities(*argv: str) -> subprocess.CompletedProcess[str]:
    """`osquery-audit-ext ARGV` with no capabilities at all (root or not)."""
    command = [sys.executable, "-m", "osquery_audit_ext", *argv]
    if os.geteuid() == 0:
        if SETPRIV is None:
            pytest.skip("setpriv (util-linux) is needed to drop root's capabilities")
        command = [SETPRIV, "--bounding-set=-all", "--inh-caps=-all", "--", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, proc
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("osquery-audit-ext: ")
    return lines[0]


# -- --set parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("enabled=0", ("enabled", 0)),
        ("enabled=1", ("enabled", 1)),
        ("failure=2", ("failure", 2)),
        ("rate_limit=0", ("rate_limit", 0)),
        ("backlog_limit=8192", ("backlog_limit", 8192)),
        ("backlog_wait_time=60000", ("backlog_wait_time", 60000)),
        ("backlog_limit=4294967295", ("backlog_limit", 4294967295)),
        (" backlog_limit = 64 ", ("backlog_limit", 64)),
    ],
)
def test_parse_setting(text: str, expected: tuple[str, int]) -> None:
    assert parse_setting(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("enabled=2", "locks the audit configuration until reboot"),
        ("enabled=3", "enabled must be 0 (off) or 1 (on)"),
        ("enabled=on", "enabled must be 0 (off) or 1 (on)"),
        ("failure=3", "failure must be an integer 0..2"),
        ("backlog_limit=-1", "backlog_limit must be an integer 0..4294967295"),
        ("backlog_limit=4294967296", "backlog_limit must be an integer 0..4294967295"),
        ("rate_limit=0x10", "rate_limit must be an integer"),
        ("rate_limit=1.5", "rate_limit must be an integer"),
        ("backlog_wait_time=", "backlog_wait_time must be an integer"),
        ("rate_limit=\u0661", "rate_limit must be an integer"),  # a non-ASCII digit
        ("backlog=5", "unknown audit setting 'backlog'"),
        ("pid=1", "unknown audit setting 'pid'"),
        ("lost=0", "unknown audit setting 'lost'"),
        ("backlog_limit", "expected NAME=VALUE"),
    ],
)
def test_parse_setting_refuses(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        parse_setting(text)
    assert repr(text) in str(info.value)  # the message names what was given


def test_lock_needs_allow_lock() -> None:
    assert parse_setting("enabled=2", allow_lock=True) == ("enabled", 2)
    with pytest.raises(ConfigError, match="pass --allow-lock"):
        parse_setting("enabled=2", allow_lock=False)


def test_parse_settings_keeps_order_and_refuses_repeats() -> None:
    assert parse_settings(["rate_limit=5", "failure=1"]) == {"rate_limit": 5, "failure": 1}
    with pytest.raises(ConfigError, match="--set backlog_limit given more than once"):
        parse_settings(["backlog_limit=64", "rate_limit=1", "backlog_limit=65"])


# -- refusals never reach the kernel ---------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--set", "backlog_limit=100", "--set", "enabled=2"], LOCK_REFUSED),
        (["--set", "rate_limit=5", "--set", "colour=blue"], "unknown audit setting 'colour'"),
        (["--set", "failure=1", "--set", "backlog_limit=lots"], "backlog_limit must be"),
        (["--set", "enabled=1", "--set", "enabled=0"], "--set enabled given more than once"),
    ],
)
def test_bad_settings_change_nothing(argv: list[str], message: str) -> None:
    line = one_error_line(run_without_capabilities("status", *argv))
    assert message in line
    assert "Traceback" not in line


def test_allow_lock_is_documented() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "osquery_audit_ext", "status", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "--allow-lock" in help_text
    assert "--reset-lost" in help_text
    assert "NAME=VALUE" in help_text


# -- the kernel ------------------------------------------------------------------------------


def auditctl_lines() -> list[tuple[str, str]]:
    return [tuple(line.split(" ", 1)) for line in run_auditctl("-s").splitlines()]


def assert_like_auditctl(text: str) -> None:
    ours = [tuple(line.split(" ", 1)) for line in text.splitlines()]
    theirs = auditctl_lines()
    assert [name for name, _ in ours] == [name for name, _ in theirs]
    for (name, value), (_name, expected) in zip(ours, theirs):
        if name in LOOSE:
            assert value.isdigit(), (name, value)
        elif name != "pid":  # the audit pid may change hands between the two reads
            assert value == expected, name


@pytest.mark.kernel
def test_status_prints_like_auditctl(kernel: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert_like_auditctl(out)


@pytest.mark.kernel
def test_status_without_capabilities(kernel: None) -> None:
    line = one_error_line(run_without_capabilities("status"))
    assert "AUDIT_GET refused" in line
    assert "needs root / CAP_AUDIT_CONTROL" in line


@pytest.mark.kernel
def test_set_to_the_current_value(kernel: None, capsys: pytest.CaptureFixture[str]) -> None:
    """Setting backlog_limit to what it is changes nothing either way: while locked the
    command says so in one line, otherwise it applies and prints the status."""
    with AuditControl() as control:
        current = control.get_status().backlog_limit
    code = cli.main(["status", "--set", f"backlog_limit={current}"])
    out, err = capsys.readouterr()
    if kernel_audit_locked():
        assert code == 1
        assert out == ""
        assert err == (
            "osquery-audit-ext: the audit configuration is locked (enabled 2) until reboot\n"
        )
    else:
        assert code == 0, err
        assert f"backlog_limit {current}\n" in out
        assert_like_auditctl(out)


@pytest.mark.kernel
def test_reset_lost(kernel: None, capsys: pytest.CaptureFixture[str]) -> None:
    """The only test that resets the lost counter (a global counter, not a setting)."""
    assert cli.main(["status", "--reset-lost"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    match = re.fullmatch(r"lost: (\d+)\n", out)
    assert match, out
    old = int(match.group(1))
    lost = int(dict(auditctl_lines())["lost"])
    assert lost == 0 or lost < old  # 0 unless records were lost again in between


@pytest.mark.kernel
def test_set_applies_and_prints(kernel_rw: None, capsys: pytest.CaptureFixture[str]) -> None:
    with AuditControl() as control:
        before = control.get_status()
    backlog_limit = max(before.backlog_limit, 8192) + 7
    rate_limit = 0 if before.rate_limit else 1_000_000
    try:
        code = cli.main(
            [
                "status",
                "--set",
                f"backlog_limit={backlog_limit}",
                "--set",
                f"rate_limit={rate_limit}",
            ]
        )
        out, err = capsys.readouterr()
        assert code == 0, err
        assert f"backlog_limit {backlog_limit}\n" in out
        assert f"rate_limit {rate_limit}\n" in out
        shown = dict(auditctl_lines())
        assert (shown["backlog_limit"], shown["rate_limit"]) == (
            str(backlog_limit),
            str(rate_limit),
        )
    finally:
        with AuditControl() as control:
            control.set_status(backlog_limit=before.backlog_limit, rate_limit=before.rate_limit)
    shown = dict(auditctl_lines())
    assert (shown["backlog_limit"], shown["rate_limit"]) == (
        str(before.backlog_limit),
        str(before.rate_limit),
    )


# -- --restore (the kernel cases are in tests/app/test_crash_kernel.py) ----------------------


def test_restore_without_a_state_dir_or_with_memory_only(tmp_path, capsys):
    missing = tmp_path / "never-created"
    config = tmp_path / "c.toml"
    config.write_text(f'[state]\ndir = "{missing}"\n', encoding="utf-8")
    assert cli.main(["status", "--restore", "--config", str(config)]) == 0
    assert capsys.readouterr().out == f"nothing to restore: no state dir {missing}\n"
    assert not missing.exists()
    config.write_text('[state]\ndir = "-"\n', encoding="utf-8")
    assert cli.main(["status", "--restore", "--config", str(config)]) == 1
    assert "memory only" in capsys.readouterr().err
    assert cli.main(["status", "--restore", "--reset-lost"]) == 1
    assert "cannot be combined" in capsys.readouterr().err
