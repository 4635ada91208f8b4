"""audit_status and audit_rules through the embedded core with our extension launched as
osquery launches it, compared with auditctl."""

from __future__ import annotations

import os

import pytest
from helpers.kernel import run_auditctl

from osquery_audit_ext.app.launched_core import running_core

pytestmark = pytest.mark.kernel

STATUS_FIELDS = ("enabled", "failure", "pid", "rate_limit", "backlog_limit", "backlog_wait_time")


def auditctl_status() -> dict[str, str]:
    fields = {}
    for line in run_auditctl("-s").splitlines():
        name, _, value = line.partition(" ")
        fields[name] = value.split()[0] if value else value
    return fields


@pytest.fixture(scope="module")
def core():
    with running_core(None) as running:
        yield running.core


def test_audit_status_matches_auditctl(core):
    (row,) = core.query("SELECT * FROM audit_status").rows
    expected = auditctl_status()
    for name in STATUS_FIELDS:
        assert row[name] == expected[name], name
    assert row["loginuid_immutable"] == expected["loginuid_immutable"]
    pid = int(row["pid"])
    if pid:
        with open(f"/proc/{pid}/comm") as comm:
            assert row["owner_process"] == comm.read().strip()
    else:
        assert row["owner_process"] == ""
    assert row["mode"] in ("unicast", "multicast")
    # the tables on by default (process_events, socket_events, user_events), 100000 each
    assert int(row["ring_capacity"]) == 300000
    for counter in ("records_received", "enobufs", "parse_errors", "lost_since_start"):
        assert int(row[counter]) >= 0


def test_the_extension_is_the_audit_daemon_when_the_pid_was_free(core):
    (row,) = core.query("SELECT pid, owner_process, mode, mode_reason FROM audit_status").rows
    if row["mode"] == "unicast":
        assert row["owner_process"].startswith(("python", "osquery"))
        assert row["pid"] != str(os.getpid())
    else:
        assert "held by" in row["mode_reason"]


def test_audit_rules_match_auditctl_listing(core):
    rows = core.query("SELECT position, rule, managed FROM audit_rules").rows
    listing = run_auditctl("-l").splitlines()
    if listing == ["No rules"]:
        listing = []
    assert [r["rule"] for r in rows] == listing
    assert [int(r["position"]) for r in rows] == list(range(1, len(listing) + 1))


def test_our_rules_are_marked_managed(kernel_rw, core):
    rows = core.query("SELECT rule, managed, key, syscalls, arch FROM audit_rules").rows
    ours = [r for r in rows if r["managed"] == "1"]
    assert {(r["arch"], r["syscalls"]) for r in ours} >= {
        ("b64", "execve,execveat"),
        ("b32", "execve,execveat"),
    }
    assert all("osquery_audit_ext" in r["key"].split(",") for r in ours)
    assert all(r["managed"] == "0" for r in rows if "osquery_audit_ext" not in r["key"])
