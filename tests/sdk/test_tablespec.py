"""Table specs: the single schema source loads, matches osquery's, and the README follows it."""

from __future__ import annotations

from pathlib import Path

import pytest

from osquery_audit_ext.sdk.tabledocs import BEGIN, END, render_all
from osquery_audit_ext.sdk.tablespec import SpecError, all_specs, load_spec, parse_spec

README = Path(__file__).resolve().parents[2] / "README.md"

# osquery 5's Linux schemas (specs/linux/process_events.table, socket_events.table in
# osquery's source): name -> (type, hidden).
OSQUERY_PROCESS_EVENTS = {
    "pid": "BIGINT", "path": "TEXT", "mode": "TEXT", "cmdline": "TEXT",
    "cmdline_size": "BIGINT*", "env": "TEXT*", "env_count": "BIGINT*", "env_size": "BIGINT*",
    "cwd": "TEXT", "auid": "BIGINT", "uid": "BIGINT", "euid": "BIGINT", "gid": "BIGINT",
    "egid": "BIGINT", "owner_uid": "BIGINT", "owner_gid": "BIGINT", "atime": "BIGINT",
    "mtime": "BIGINT", "ctime": "BIGINT", "btime": "BIGINT", "overflows": "TEXT*",
    "parent": "BIGINT", "time": "BIGINT", "uptime": "BIGINT", "eid": "TEXT*",
    "fsuid": "BIGINT", "suid": "BIGINT", "fsgid": "BIGINT", "sgid": "BIGINT", "syscall": "TEXT",
}  # fmt: skip
OSQUERY_SOCKET_EVENTS = {
    "action": "TEXT", "pid": "BIGINT", "path": "TEXT", "fd": "TEXT", "auid": "BIGINT",
    "family": "INTEGER", "protocol": "INTEGER*", "local_address": "TEXT",
    "remote_address": "TEXT", "local_port": "INTEGER", "remote_port": "INTEGER",
    "socket": "TEXT*", "time": "BIGINT", "uptime": "BIGINT", "eid": "TEXT*",
    "success": "INTEGER*", "status": "TEXT",
}  # fmt: skip
# osquery's other audit tables (specs/posix/user_events.table, specs/linux/
# process_file_events.table, seccomp_events.table, selinux_events.table,
# apparmor_events.table), in osquery's column order. seccomp_events has no eid in osquery:
# ours adds a hidden one, which leaves its visible columns as osquery's.
OSQUERY_USER_EVENTS = {
    "uid": "BIGINT", "auid": "BIGINT", "pid": "BIGINT", "message": "TEXT", "type": "INTEGER",
    "path": "TEXT", "address": "TEXT", "terminal": "TEXT", "time": "BIGINT",
    "uptime": "BIGINT", "eid": "TEXT*",
}  # fmt: skip
OSQUERY_PROCESS_FILE_EVENTS = {
    "operation": "TEXT", "pid": "BIGINT", "ppid": "BIGINT", "time": "BIGINT",
    "executable": "TEXT", "partial": "TEXT", "cwd": "TEXT", "path": "TEXT",
    "dest_path": "TEXT", "uid": "TEXT", "gid": "TEXT", "auid": "TEXT", "euid": "TEXT",
    "egid": "TEXT", "fsuid": "TEXT", "fsgid": "TEXT", "suid": "TEXT", "sgid": "TEXT",
    "uptime": "BIGINT", "eid": "TEXT*",
}  # fmt: skip
OSQUERY_SECCOMP_EVENTS = {
    "time": "BIGINT", "uptime": "BIGINT", "auid": "UNSIGNED_BIGINT", "uid": "UNSIGNED_BIGINT",
    "gid": "UNSIGNED_BIGINT", "ses": "UNSIGNED_BIGINT", "pid": "UNSIGNED_BIGINT",
    "comm": "TEXT", "exe": "TEXT", "sig": "BIGINT", "arch": "TEXT", "syscall": "TEXT",
    "compat": "BIGINT", "ip": "TEXT", "code": "TEXT",
}  # fmt: skip
OSQUERY_SELINUX_EVENTS = {
    "type": "TEXT", "message": "TEXT", "time": "BIGINT", "uptime": "BIGINT", "eid": "TEXT*",
}  # fmt: skip
OSQUERY_APPARMOR_EVENTS = {
    "type": "TEXT", "message": "TEXT", "time": "BIGINT", "uptime": "BIGINT", "eid": "TEXT*",
    "apparmor": "TEXT", "operation": "TEXT", "parent": "UNSIGNED_BIGINT", "profile": "TEXT",
    "name": "TEXT", "pid": "UNSIGNED_BIGINT", "comm": "TEXT", "denied_mask": "TEXT",
    "capname": "TEXT", "fsuid": "UNSIGNED_BIGINT", "ouid": "UNSIGNED_BIGINT",
    "capability": "BIGINT", "requested_mask": "TEXT", "info": "TEXT", "error": "TEXT",
    "namespace": "TEXT", "label": "TEXT",
}  # fmt: skip
OSQUERY_TABLES = {
    "process_events": OSQUERY_PROCESS_EVENTS,
    "socket_events": OSQUERY_SOCKET_EVENTS,
    "user_events": OSQUERY_USER_EVENTS,
    "process_file_events": OSQUERY_PROCESS_FILE_EVENTS,
    "seccomp_events": OSQUERY_SECCOMP_EVENTS,
    "selinux_events": OSQUERY_SELINUX_EVENTS,
    "apparmor_events": OSQUERY_APPARMOR_EVENTS,
}


def test_all_specs_load():
    names = [s.name for s in all_specs()]
    assert names == sorted(["audit_consumers", "audit_rules", "audit_status", *OSQUERY_TABLES])


def test_every_event_table_gets_the_shared_consumer_column():
    for spec in all_specs():
        consumer = spec.by_name.get("consumer")
        if "event_based" in spec.attributes:
            # hidden (not in SELECT *), additional (core forwards consumer = '...' to us)
            assert consumer is not None and consumer.type == "TEXT"
            assert consumer.op == 20 and spec.column_names[-1] == "consumer"
        else:
            assert consumer is None or spec.name == "audit_consumers"


def test_shared_columns_come_from_the_attribute_file():
    text = 'name = "t"\nattributes = ["event_based"]\n[[columns]]\nname = "a"\ntype = "TEXT"\n'
    shared = {"event_based": load_spec("process_events").columns[-1:]}
    assert parse_spec(text, shared=shared).column_names == ["a", "consumer"]
    assert parse_spec(text).column_names == ["a"]


@pytest.mark.parametrize(("table", "osquery"), OSQUERY_TABLES.items())
def test_osquery_columns_types_and_hidden_flags(table, osquery):
    spec = load_spec(table)
    ours = {c.name: c.type + ("*" if c.hidden else "") for c in spec.columns}
    assert {name: ours.get(name) for name in osquery} == osquery
    # in osquery's order (SELECT * lists them so), and every extra column after them hidden
    # (SELECT * shows what osquery's shows) for the tables that came after the first two
    assert [name for name in ours if name in osquery] == list(osquery)
    if table not in ("process_events", "socket_events"):
        assert all(ours[name].endswith("*") for name in ours if name not in osquery)
    assert spec.by_name["time"].options == ("additional",)
    assert "event_based" in spec.attributes


def test_routes_carry_real_options():
    routes = load_spec("process_events").routes()
    by_name = {r["name"]: r for r in routes if r["id"] == "column"}
    assert by_name["time"]["op"] == "4"  # ADDITIONAL
    assert by_name["eid"]["op"] == "17"  # HIDDEN | INDEX
    assert by_name["pid"]["op"] == "9"  # INDEX | OPTIMIZED
    assert by_name["cmdline"]["op"] == "0"
    assert routes[-1] == {"id": "attributes", "attributes": "4"}  # EVENT_BASED


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "t"\n', "columns must be present"),
        ('name = "t"\n[[columns]]\nname = "a"\ntype = "NUMBER"\n', "unknown type"),
        (
            'name = "t"\n[[columns]]\nname = "a"\ntype = "TEXT"\noptions = ["secret"]\n',
            "unknown options",
        ),
        ('name = "t"\ncolour = 1\n[[columns]]\nname = "a"\ntype = "TEXT"\n', "unknown keys"),
        (
            'name = "t"\n[[columns]]\nname = "a"\ntype = "TEXT"\n[[columns]]\nname = "a"\ntype = "TEXT"\n',
            "unique",
        ),
        ("name = \n", "spec"),
    ],
)
def test_bad_specs_are_rejected(text, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(text, "spec")


def test_readme_tables_follow_the_specs():
    text = README.read_text()
    block = text[text.index(BEGIN) + len(BEGIN) : text.index(END)].strip("\n")
    assert block == render_all(), (
        "README is stale: python -m osquery_audit_ext.sdk.tabledocs README.md"
    )


def test_spec_types_and_bits_come_from_sdk_columns() -> None:
    """The spec spellings and bits are derived from sdk/columns.py, unchanged."""
    from osquery_audit_ext.sdk import columns, tablespec

    assert tablespec.COLUMN_TYPES == (
        "TEXT",
        "INTEGER",
        "BIGINT",
        "UNSIGNED_BIGINT",
        "DOUBLE",
        "BLOB",
    )
    assert tablespec.WIRE_TYPES == {"UNSIGNED_BIGINT": "UNSIGNED BIGINT"}
    assert tablespec.OPTION_BITS == {
        "index": 1,
        "required": 2,
        "additional": 4,
        "optimized": 8,
        "hidden": 16,
    }
    assert columns.HIDDEN | columns.INDEX == 17
