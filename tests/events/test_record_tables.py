"""The tables beside process/socket_events (user_events, process_file_events, seccomp_events,
selinux_events, apparmor_events): golden logs routed end to end (events -> router -> rings ->
rows), against tests/events/golden/NAME.tables.json, and the cases that decide rows."""

from __future__ import annotations

import json

import pytest
from helpers.goldens import RECORDS_GOLDEN as GOLDEN
from helpers.goldens import events_of, read_log
from hypothesis import given
from hypothesis import strategies as st

from osquery_audit_ext.events.coalesce import Event
from osquery_audit_ext.events.file_rows import FilePaths, file_row, glob_base, glob_regex
from osquery_audit_ext.events.mac_rows import apparmor_row, seccomp_row, selinux_row
from osquery_audit_ext.events.ring import EventRing
from osquery_audit_ext.events.routing import OTHER_TABLE_SWITCHES, EventRouter, stored_event
from osquery_audit_ext.events.user_rows import user_row
from osquery_audit_ext.sdk.tablespec import load_spec

BOOT = 1699990000.5
# The [file_paths] the goldens are routed with: the captured tree, and one glob that the
# tree's files do not match (so `category` tells which glob matched).
FILE_PATHS = {"logs": ["/tmp/oae11/tree/%.log"], "tree": ["/tmp/oae11/tree/%%"]}


def router(accesses: bool = True) -> EventRouter:
    return EventRouter(
        EventRing(1000, 0),
        EventRing(1000, 0),
        BOOT,
        drop_unix_key=None,
        other_rings={name: EventRing(1000, 0) for name in OTHER_TABLE_SWITCHES},
        file_paths=FilePaths(FILE_PATHS),
        fim_accesses=accesses,
    )


def table_rows(r: EventRouter, events: list[Event]) -> dict[str, list[dict]]:
    """Every other table's rows, as its ring rebuilds them, in eid order."""
    r.route(events)
    out = {}
    for table in OTHER_TABLE_SWITCHES:
        build = r.builder(table)
        rows = [build(item) for _eid, _time, _pid, item in r.rings()[table].query()]
        if rows:
            out[table] = rows
    return out


LOGS = sorted(p.stem for p in GOLDEN.glob("*.log"))


@pytest.mark.parametrize("name", LOGS)
def test_golden_table_rows(name: str, request: pytest.FixtureRequest) -> None:
    """Each golden log's rows of the other tables as NAME.tables.json says (a log giving
    none has no file); `--update-goldens` rewrites the files first (then review the diff)."""
    got = table_rows(router(), events_of(read_log(GOLDEN / f"{name}.log")))
    golden = GOLDEN / f"{name}.tables.json"
    if request.config.getoption("update_goldens"):
        if got:
            text = json.dumps(got, indent=1, ensure_ascii=False, sort_keys=True)
            golden.write_text(text + "\n", encoding="utf-8")
        elif golden.exists():
            golden.unlink()
    expected = json.loads(golden.read_text(encoding="utf-8")) if golden.exists() else {}
    assert got == expected


def test_goldens_cover_every_table_and_fill_its_columns() -> None:
    found: dict[str, list[dict]] = {}
    for name in LOGS:
        for table, rows in table_rows(
            router(), events_of(read_log(GOLDEN / f"{name}.log"))
        ).items():
            found.setdefault(table, []).extend(rows)
    assert set(found) == set(OTHER_TABLE_SWITCHES)
    for table, rows in found.items():
        columns = set(load_spec(table).column_names) - {"eid", "consumer"}  # filled by EventTable
        for row in rows:
            assert set(row) == columns, table
            for value in row.values():
                assert value is None or type(value) in (int, str)


def golden_events(name: str) -> list[Event]:
    return events_of(read_log(GOLDEN / f"{name}.log"))


# -- user_events -----------------------------------------------------------------------


def test_su_rows_are_osquerys() -> None:
    rows = [user_row(e, BOOT) for e in golden_events("user")]
    su = [r for r in rows if r and r["path"] == "/usr/bin/su"]
    assert [r["type"] for r in su] == [1100, 1101, 1103, 1105, 1106, 1104]
    first = su[0]
    assert first["message"] == "op=PAM:authentication"  # osquery keeps the first word only
    assert (first["acct"], first["res"], first["address"], first["terminal"]) == (
        "nobody",
        "success",
        "?",
        "?",
    )
    assert first["msg"].startswith("op=PAM:authentication grantors=pam_rootok acct=")
    assert (first["uid"], first["auid"], first["ses"], first["type_name"]) == (
        0,
        -1,
        -1,
        "USER_AUTH",
    )


def test_user_types_beyond_osquery_and_not_user_ones() -> None:
    rows = {r["type"]: r for r in (user_row(e, BOOT) for e in golden_events("user")) if r}
    assert rows[2100]["type_name"] == "ANOM_LOGIN_FAILURES"
    assert rows[1112]["address"] == "10.0.0.5"
    assert 1005 not in rows  # AUDIT_USER (auditctl -m) is not a user_events type
    failed = [r for r in rows.values() if r["res"] == "failed" and r["type"] == 1100]
    assert failed and failed[0]["acct"] == "my use"  # hex-encoded account decoded


def test_user_message_text_is_valid_utf8() -> None:
    payload = (
        b"audit(1796135005.000:99405): pid=1 uid=0 auid=0 ses=1 "
        b'msg=\'op=caf\xe9 acct="x" exe="/bin/x" hostname=h\xff addr=? terminal=? res=success\''
    )
    (event,) = events_of([(1100, payload)])
    row = user_row(event, BOOT)
    assert row is not None
    assert (row["message"], row["hostname"]) == ("op=caf\\xe9", "h\\xff")
    assert row["msg"].startswith("op=caf\\xe9 ")
    for value in row.values():
        if isinstance(value, str):
            value.encode("utf-8")


# -- process_file_events ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("glob", "matches", "misses"),
    [
        ("/etc/%%", ["/etc/passwd", "/etc/ssh/sshd_config"], ["/etc", "/etcx/a", "/var/etc/a"]),
        ("/etc/%", ["/etc/passwd", "/etc/.hidden"], ["/etc/ssh/sshd_config", "/etc"]),
        ("/home/%/.ssh/%%", ["/home/bob/.ssh/authorized_keys"], ["/home/bob/x/.ssh/k"]),
        ("/var/www/%.php", ["/var/www/index.php"], ["/var/www/a/b.php", "/var/www/x.html"]),
        ("/etc/passwd", ["/etc/passwd"], ["/etc/passwd-", "/etc/passwdx"]),
        ("/opt/a+b(c)/%%", ["/opt/a+b(c)/d"], ["/opt/aab(c)/d"]),
    ],
)
def test_globs(glob: str, matches: list[str], misses: list[str]) -> None:
    regex = glob_regex(glob)
    assert all(regex.fullmatch(p) for p in matches)
    assert not any(regex.fullmatch(p) for p in misses)


component = st.text(alphabet="ab.%*-_ +()[]?x", min_size=1, max_size=4).filter(
    lambda c: "%" not in c and "*" not in c and c not in (".", "..")
)


@given(st.lists(component, min_size=1, max_size=5), st.data())
def test_globs_match_component_by_component(parts: list[str], data: st.DataObject) -> None:
    """% stands for exactly one component (any text without /), %% for one or more; every
    other character matches itself (regex characters included)."""
    path = "/" + "/".join(parts)
    index = data.draw(st.integers(0, len(parts) - 1))
    one = [*parts[:index], "%", *parts[index + 1 :]]
    assert glob_regex("/" + "/".join(one)).fullmatch(path)
    tail = [*parts[:index], "%%"]
    assert glob_regex("/" + "/".join(tail)).fullmatch(path)
    other = data.draw(component.filter(lambda c: c != parts[index]))
    changed = [*parts[:index], other, *parts[index + 1 :]]
    assert not glob_regex("/" + "/".join(changed)).fullmatch(path)
    assert not glob_regex("/" + "/".join([*parts, "%"])).fullmatch(path)


def test_glob_bases_are_the_trees_to_watch() -> None:
    assert glob_base("/etc/%%") == "/etc"
    assert glob_base("/home/%/.ssh/%%") == "/home"
    assert glob_base("/var/www/%.php") == "/var/www"
    assert glob_base("/etc/passwd") == "/etc/passwd"
    assert glob_base("/%%") == "/"
    paths = FilePaths({"a": ["/etc/%%", "/etc/ssh/%"], "b": ["/var/log/%.log", "/var/lib/x"]})
    assert paths.bases() == ["/etc", "/var/lib/x", "/var/log"]


def test_file_rows_of_the_real_tree() -> None:
    rows = [
        (r["operation"], r["path"], r["dest_path"])
        for r in (file_row(e, BOOT, FilePaths(FILE_PATHS)) for e in golden_events("file"))
        if r
    ]
    tree = "/tmp/oae11/tree"
    assert rows == [
        ("mkdir", f"{tree}/sub", ""),
        ("open+truncate", f"{tree}/sub/f", ""),
        ("write", f"{tree}/sub/f", ""),
        ("rename", f"{tree}/sub/f", f"{tree}/sub/g"),
        ("link", f"{tree}/sub/g", f"{tree}/sub/h"),
        ("symlink", f"{tree}/sub/g", f"{tree}/sub/s"),
        ("write", f"{tree}/sub/g", ""),  # truncate(2): osquery's "write"
        ("chmod", f"{tree}/sub/g", ""),
        ("write", f"{tree}/sub/o2", ""),  # openat2, flags from its OPENAT2 record
        ("rename", f"{tree}/sub/g", f"{tree}/sub/o2"),
        ("unlink", f"{tree}/sub/o2", ""),
        ("unlink", f"{tree}/sub/s", ""),
        ("rmdir", f"{tree}/sub", ""),
    ]


def test_read_only_opens_only_with_accesses() -> None:
    events = golden_events("file")
    quiet = [file_row(e, BOOT, FilePaths(FILE_PATHS)) for e in events]
    loud = [file_row(e, BOOT, FilePaths(FILE_PATHS), accesses=True) for e in events]
    opens = [r for r in loud if r and r["operation"] == "open"]
    assert len(opens) == 2 and not [r for r in quiet if r and r["operation"] == "open"]


def test_files_outside_the_globs_give_no_row() -> None:
    narrow = FilePaths({"only": ["/tmp/oae11/tree/sub/h"]})
    rows = [file_row(e, BOOT, narrow) for e in golden_events("file")]
    assert [(r["operation"], r["dest_path"]) for r in rows if r] == [
        ("link", "/tmp/oae11/tree/sub/h")  # matched by its dest_path
    ]


def test_dirfd_names_resolve_from_proc_only_when_the_inode_agrees(tmp_path) -> None:
    """unlinkat(dirfd, "f") as rm -r calls it: the kernel logs the cwd as the parent's name
    but the real parent's inode; the dir fd, read from /proc/PID/fd (here our own process
    and a real fd), is taken only when its device and inode are the PARENT record's."""
    import os

    from osquery_audit_ext.events.file_rows import dirfd_paths_from_proc

    (tmp_path / "d").mkdir()
    dirfd = os.open(tmp_path / "d", os.O_RDONLY | os.O_DIRECTORY)
    try:
        st = os.stat(tmp_path / "d")
        dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}"

        def unlinkat(inode: int) -> Event:
            head = "audit(1796134590.000:1): "
            lines = [
                f"1300 {head}arch=c000003e syscall=263 success=yes exit=0 a0={dirfd:x} a1=1 "
                f"a2=0 a3=0 items=2 ppid=1 pid={os.getpid()} auid=0 uid=0 gid=0 euid=0 "
                f'suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm="rm" exe="/bin/rm"',
                f'1307 {head}cwd="/"',
                f'1302 {head}item=0 name="/" inode={inode} dev={dev} mode=040755 nametype=PARENT',
                f'1302 {head}item=1 name="f" inode=99 dev={dev} mode=0100644 nametype=DELETE',
                f"1320 {head}",
            ]
            (done,) = events_of(read_log_lines(lines))
            return done

        paths = FilePaths({"t": [f"{tmp_path}/%%"]})
        right = unlinkat(st.st_ino)
        assert file_row(right, BOOT, paths) is None  # not resolvable from the records alone
        dirs = dirfd_paths_from_proc(right)
        assert dirs == {dirfd: os.fsencode(tmp_path / "d")}
        row = file_row(right, BOOT, paths, dirfd_paths=dirs)
        assert row is not None and (row["operation"], row["path"], row["partial"]) == (
            "unlink",
            f"{tmp_path}/d/f",
            "false",
        )
        assert dirfd_paths_from_proc(unlinkat(st.st_ino + 1)) == {}  # another directory
    finally:
        os.close(dirfd)


def read_log_lines(lines: list[str]) -> list[tuple[int, bytes]]:
    return [(int(t), body.encode()) for t, _, body in (line.partition(" ") for line in lines)]


def test_relative_paths_resolve_with_cwd_and_ids_stay_text() -> None:
    rows = [file_row(e, BOOT, FilePaths(FILE_PATHS)) for e in golden_events("file")]
    row = next(r for r in rows if r and r["operation"] == "mkdir")
    assert (row["cwd"], row["path"], row["partial"]) == (
        "/tmp/oae11/tree",
        "/tmp/oae11/tree/sub",
        "false",
    )
    assert (row["uid"], row["auid"], row["category"], row["syscall"]) == (
        "0",
        "4294967295",
        "tree",
        "mkdir",
    )


# -- seccomp, selinux, apparmor ----------------------------------------------------------


def test_seccomp_rows() -> None:
    rows = [seccomp_row(e, BOOT) for e in golden_events("seccomp")]
    logged, _, killed, errno_row, unknown = rows
    assert (logged["code"], logged["syscall"], logged["arch"], logged["exe"]) == (
        "LOG",
        "getppid",
        "X86_64",
        "/tmp/oae11/seccomp_log",
    )
    assert logged["auid"] == 4294967295  # an UNSIGNED_BIGINT column, as osquery
    assert (killed["code"], killed["syscall"], killed["arch"], killed["compat"]) == (
        "KILL_PROCESS",
        "execve",
        "I386",
        1,
    )
    assert (errno_row["code"], errno_row["code_data"]) == ("ERRNO", 1)
    assert unknown["arch"] == f"{0xDEADBEEF}(unknown)" and unknown["syscall"] == "7"


def test_selinux_and_apparmor_routing() -> None:
    selinux = [
        selinux_row(stored_event(((e.types[0],), (e.payloads[0],))), BOOT)
        for e in golden_events("selinux")
    ]
    assert [r["type"] for r in selinux if r] == [
        "AVC",
        "SELINUX_ERR",
        "MAC_POLICY_LOAD",
        "MAC_STATUS",
    ]
    assert selinux[0]["message"].startswith("audit(1796135200.123:99600): avc:  denied")
    apparmor = [
        apparmor_row(stored_event(((e.types[0],), (e.payloads[0],))), BOOT)
        for e in golden_events("apparmor")
    ]
    assert [(r["type"], r["apparmor"]) for r in apparmor] == [
        ("AA", "DENIED"),
        ("AA", "DENIED"),
        ("AA", "STATUS"),
        ("AA", "ALLOWED"),
        ("APPARMOR_STATUS", "STATUS"),
        ("APPARMOR_DENIED", "DENIED"),
    ]
    assert (apparmor[3]["comm"], apparmor[3]["profile"]) == ("my app", "/opt/my app")
    assert apparmor[1]["capability"] == 21 and apparmor[1]["capname"] == "sys_admin"
    # An AVC with apparmor= is not an SELinux row, and the reverse.
    first = golden_events("apparmor")[0]
    assert selinux_row(stored_event(((first.types[0],), (first.payloads[0],))), BOOT) is None


def test_tables_turned_off_get_nothing() -> None:
    r = EventRouter(EventRing(10, 0), EventRing(10, 0), BOOT, drop_unix_key=None)
    events = [e for name in LOGS for e in golden_events(name)]
    r.route(events)
    assert set(r.rings()) == {"process_events", "socket_events"}
