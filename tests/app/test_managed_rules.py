"""The rules the extension installs: derived from settings, valid auditctl text, both ABIs,
and kept in the kernel exactly once across restarts; rules we did not create untouched."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
from helpers.kernel import run_auditctl

from osquery_audit_ext.app.managed_rules import desired_rule_texts, encode_rule_texts
from osquery_audit_ext.app.service import AuditService
from osquery_audit_ext.app.settings import EventSettings, Settings
from osquery_audit_ext.app.state import StateSettings
from osquery_audit_ext.audit.rule.format import format_rule
from osquery_audit_ext.audit.rule.parse import parse_rule
from osquery_audit_ext.errors import ConfigError


def formatted(settings: Settings, machine: str = "x86_64") -> list[str]:
    return [
        format_rule(parse_rule(t, machine=machine).rule, machine=machine)
        for t in desired_rule_texts(settings, machine)
    ]


def test_defaults_audit_execve_for_both_abis():
    assert formatted(Settings()) == [
        "-a always,exit -F arch=b64 -S execve,execveat -F key=osquery_audit_ext",
        "-a always,exit -F arch=b32 -S execve,execveat -F key=osquery_audit_ext",
    ]


def test_file_rules_watch_only_the_trees_of_the_globs(tmp_path):
    """One watch per tree (not osquery's rule auditing every read and write): the base of
    each glob, a base inside another left out, a missing base watched at its nearest
    existing directory; perms wa, rwa with fim_accesses; the other tables need no rule."""
    (tmp_path / "etc" / "ssh").mkdir(parents=True)
    (tmp_path / "with space").mkdir()
    paths = {
        "etc": [f"{tmp_path}/etc/%%", f"{tmp_path}/etc/ssh/%"],
        "later": [f"{tmp_path}/with space/not/yet/%%"],
        "gone": ["/nonexistent-oaetest/x/%%"],
    }
    events = EventSettings(process=False, fim=True, seccomp=True, selinux=True, apparmor=True)
    settings = Settings(key="k", events=events, file_paths=paths)
    assert formatted(settings) == [
        f"-w {tmp_path}/etc -p wa -k k",
        f"-w {tmp_path}/with space -p wa -k k",  # as auditctl -l prints it
    ]
    assert f"-w '{tmp_path}/with space' -p wa -k k" in desired_rule_texts(settings)
    loud = replace(settings, events=replace(events, fim_accesses=True))
    assert [t.split(" -p ")[1] for t in desired_rule_texts(loud)] == ["rwa -k k"] * 2
    assert formatted(replace(settings, events=replace(events, fim=False))) == []


def test_socket_rules_follow_osquery_flags():
    settings = Settings(key="k", events=EventSettings(process=False, sockets=True))
    assert formatted(settings) == [
        "-a always,exit -F arch=b64 -S connect,bind -F success=1 -F saddr_fam!=1 -F key=k",
        "-a always,exit -F arch=b64 -S connect -F exit=-EINPROGRESS -F saddr_fam!=1 -F key=k",
        "-a always,exit -F arch=b64 -S accept,accept4 -F success=1 -F key=k",
        # i386 has no plain accept syscall: only accept4 is audited there.
        "-a always,exit -F arch=b32 -S bind,connect -F success=1 -F saddr_fam!=1 -F key=k",
        "-a always,exit -F arch=b32 -S connect -F exit=-EINPROGRESS -F saddr_fam!=1 -F key=k",
        "-a always,exit -F arch=b32 -S accept4 -F success=1 -F key=k",
    ]
    everything = Settings(
        key="k",
        events=EventSettings(
            process=False,
            process_fork=True,
            process_kill=True,
            sockets=True,
            socket_unix=True,
            socket_failed=True,
            socket_accept=False,
        ),
    )
    assert formatted(everything, "aarch64") == [
        "-a always,exit -F arch=b64 -S clone -F key=k",  # aarch64 has no fork or vfork
        "-a always,exit -F arch=b64 -S kill,tkill,tgkill -F key=k",
        "-a always,exit -F arch=b64 -S bind,connect -F key=k",
    ]


def test_config_rules_get_our_key_too():
    settings = Settings(key="ours", rules=("-w /etc/shadow -p wa -k shadow",))
    assert formatted(replace(settings, events=EventSettings(process=False))) == [
        "-w /etc/shadow -p wa -k shadow -k ours"
    ]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("-w /etc/shadow -p wz", "rule '-w /etc/shadow -p wz'"),
        ("-d always,exit -S execve", "only rules to add"),
        ("-D", "rule '-D'"),
    ],
)
def test_bad_config_rules_are_refused_before_the_kernel(rule, message):
    with pytest.raises(ConfigError, match=message):
        encode_rule_texts([rule])


def test_restart_reuses_rules_and_leaves_others_alone(kernel_rw, tmp_path):
    key = f"oaetest_managed_{os.getpid()}"
    foreign = f"-w /etc/hosts -p wa -k oaetest_foreign_{os.getpid()}"
    run_auditctl(*foreign.split())
    settings = Settings(key=key)
    first = AuditService(settings)
    try:
        first.start()
        # A second instance (an earlier run that died, then a restart) must not duplicate;
        # it has a state dir of its own, since the first one's is locked while it runs.
        second = AuditService(
            replace(settings, persist_rules=True, state=StateSettings(str(tmp_path)))
        )
        second.start()
        second.stop()
        listing = run_auditctl("-l").splitlines()
        assert sum(key in line for line in listing) == 2
        first.stop()
        listing = run_auditctl("-l").splitlines()
        assert not any(key in line for line in listing)
        assert any(f"oaetest_foreign_{os.getpid()}" in line for line in listing)
    finally:
        first.stop()
        run_auditctl("-W", "/etc/hosts", "-p", "wa", "-k", f"oaetest_foreign_{os.getpid()}")


def test_stale_rules_of_an_earlier_run_are_replaced(kernel_rw):
    key = f"oaetest_stale_{os.getpid()}"
    stale = f"-a always,exit -F arch=b64 -S kill -k {key}"
    run_auditctl(*stale.split())
    service = AuditService(Settings(key=key))
    try:
        service.start()
        listing = run_auditctl("-l")
        assert "-S kill" not in listing and "execve" in listing
    finally:
        service.stop()
    assert key not in run_auditctl("-l")
