"""Events into process_events / socket_events rows: goldens, quoting, and the real kernel."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from helpers.goldens import RECORDS_GOLDEN as GOLDEN
from helpers.goldens import events_of, read_log
from hypothesis import given
from hypothesis import strategies as st

from osquery_audit_ext.audit.consts import AF_UNIX
from osquery_audit_ext.events import rows as rows_module
from osquery_audit_ext.events.coalesce import Coalescer, Event
from osquery_audit_ext.events.rows import (
    argv_columns,
    display_text,
    process_row,
    socket_row,
)
from osquery_audit_ext.sdk.tablespec import load_spec

BOOT = 1699990000.5  # the boot time the goldens were written with


def event(*records: tuple[int, str], stamp: str = "1700000000.250:900") -> Event:
    (done,) = events_of([(t, f"audit({stamp}): {body}".encode()) for t, body in records])
    return done


def syscall(nr: int, extra: str = "", *, audit_arch: str = "c000003e", success: str = "yes") -> str:
    """A SYSCALL record body in the kernel's field order; `extra` fields replace the defaults
    in place (a key appears once, as from the kernel) or are added at the end."""
    body = (
        f"arch={audit_arch} syscall={nr} success={success} exit=0 a0=3 a1=7ffd a2=10 a3=0 items=1 "
        f"ppid=10 pid=20 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 "
        f'egid=1000 sgid=1000 fsgid=1000 tty=pts1 ses=2 comm="x" exe="/usr/bin/x" key="k"'
    )
    fields = dict(word.split("=", 1) for word in body.split(" "))
    for word in extra.split():
        key, _, value = word.partition("=")
        fields[key] = value
    return " ".join(f"{key}={value}" for key, value in fields.items())


# -- goldens -----------------------------------------------------------------------------


def golden_rows(events: list[Event]) -> list[dict]:
    """The golden file's entries for these events (the shape test_golden_rows reads)."""
    entries = []
    for ev in events:
        entry = {
            "serial": ev.serial,
            "process_events": process_row(ev, BOOT),
            "socket_events": socket_row(ev, BOOT),
        }
        with_failed = process_row(ev, BOOT, include_failed=True)
        if with_failed != entry["process_events"]:
            entry["process_events_with_failed"] = with_failed
        entries.append(entry)
    return entries


@pytest.mark.parametrize("name", sorted(p.stem for p in GOLDEN.glob("*.log")))
def test_golden_rows(name: str, request: pytest.FixtureRequest) -> None:
    """Rows of each golden log as its .rows.json says; `--update-goldens` rewrites the file
    from the current code first (then review the diff)."""
    events = events_of(read_log(GOLDEN / f"{name}.log"))
    golden = GOLDEN / f"{name}.rows.json"
    if request.config.getoption("update_goldens"):
        text = json.dumps(golden_rows(events), indent=1, ensure_ascii=False, sort_keys=True)
        golden.write_text(text + "\n", encoding="utf-8")
    expected = json.loads(golden.read_text(encoding="utf-8"))
    assert [e.serial for e in events] == [x["serial"] for x in expected]
    for ev, want in zip(events, expected):
        assert process_row(ev, BOOT) == want["process_events"], ev
        with_failed = want.get("process_events_with_failed", want["process_events"])
        assert process_row(ev, BOOT, include_failed=True) == with_failed, ev
        assert socket_row(ev, BOOT) == want["socket_events"], ev


@pytest.mark.parametrize(
    ("table", "build"), [("process_events", process_row), ("socket_events", socket_row)]
)
def test_rows_fill_every_column_but_eid(table: str, build: Callable[..., dict | None]) -> None:
    # eid is the ring's, consumer the query's (app/tables.py): the row builders leave both.
    columns = set(load_spec(table).column_names) - {"eid", "consumer"}
    rows = [
        build(ev, BOOT) for path in sorted(GOLDEN.glob("*.log")) for ev in events_of(read_log(path))
    ]
    rows = [row for row in rows if row is not None]
    assert len(rows) >= 5
    for row in rows:
        assert set(row) == columns
        for value in row.values():
            assert value is None or type(value) in (int, str)
            if isinstance(value, str):
                value.encode("utf-8")  # osquery needs valid UTF-8: no lone surrogates


def test_golden_split_arguments_are_exact() -> None:
    events = events_of(read_log(GOLDEN / "execve_split.log"))
    bash, java = (process_row(ev, BOOT) for ev in events)
    assert bash is not None and java is not None
    script = 'for f in /var/log/*.log; do echo "$f"; done; ' * 190
    assert json.loads(bash["argv"]) == ["bash", "-c", script, "--", "tail"]
    assert json.loads(java["argv"]) == [
        "java",
        "-cp",
        "/opt/lib/" + "x" * 6000,
        "-Dlong=" + "y" * 4000,
        "Main",
    ]
    assert java["cmdline_size"] == 4 + 3 + 6009 + 4007 + 4 + 4
    assert bash["overflows"] == java["overflows"] == ""


# -- process_events ----------------------------------------------------------------------


def test_exec_row_from_records() -> None:
    row = process_row(
        event(
            (1300, syscall(59, 'a0=55d0 items=2 ppid=77 pid=88 key="a"')),
            (1309, 'argc=3 a0="ls" a1="-l" a2=2F746D702F6120622F'),
            (1307, ' cwd="/home/bob"'),
            (1302, 'item=0 name="/usr/bin/ls" inode=5 dev=fd:01 mode=0100755 ouid=0 ogid=0'),
            (1327, "proctitle=6C73002D6C"),
        ),
        1700000000.0,
    )
    assert row is not None
    assert (row["pid"], row["parent"], row["path"], row["cwd"]) == (
        88,
        77,
        "/usr/bin/ls",
        "/home/bob",
    )
    assert row["cmdline"] == "ls -l /tmp/a b/"  # osquery's plain join
    assert json.loads(row["argv"]) == ["ls", "-l", "/tmp/a b/"]
    assert (row["time"], row["time_ms"], row["uptime"], row["serial"]) == (
        1700000000,
        1700000000250,
        0,
        900,
    )
    assert (row["syscall"], row["arch"], row["key"], row["mode"]) == (
        "execve",
        "b64",
        "a",
        "0100755",
    )


def test_exec_without_execve_record_falls_back_to_proctitle() -> None:
    title = (b"python3\x00-c\x00" + b"z" * 200)[:128]
    row = process_row(
        event((1300, syscall(59)), (1327, "proctitle=" + title.hex().upper())), 1700000000.0
    )
    assert row is not None
    assert json.loads(row["argv"]) == ["python3", "-c", "z" * 117]
    assert row["overflows"] == "cmdline"  # the kernel keeps 128 bytes of a title


def test_exec_with_missing_arguments_marks_the_overflow() -> None:
    row = process_row(
        event((1300, syscall(59)), (1309, 'argc=3 a0="x" a1_len=8 a1[0]=41424344')), 1700000000.0
    )
    assert row is not None
    assert json.loads(row["argv"]) == ["x", "ABCD"]  # a2, after the last one logged: not made up
    assert row["overflows"] == "cmdline"


def test_failed_exec_is_skipped_unless_asked_for() -> None:
    failed = event((1300, syscall(59, success="no").replace("exit=0", "exit=-13")))
    assert process_row(failed, 0.0) is None
    row = process_row(failed, 0.0, include_failed=True)
    assert row is not None
    assert (row["success"], row["exit"], row["cmdline"], row["argv"]) == (0, -13, "", "[]")


def test_unknown_syscall_or_arch_gives_no_row() -> None:
    assert process_row(event((1300, syscall(59, audit_arch="deadbeef"))), 0.0) is None
    assert process_row(event((1300, syscall(2))), 0.0) is None  # open
    assert process_row(event((1302, 'item=0 name="/x"')), 0.0) is None  # no SYSCALL record
    assert socket_row(event((1300, syscall(59))), 0.0) is None


def test_uptime_before_boot_is_unknown() -> None:
    row = process_row(event((1300, syscall(59)), (1309, 'argc=1 a0="x"')), 1800000000.0)
    assert row is not None and row["uptime"] is None


def test_unknownaudit_syscall_name_is_its_number() -> None:
    from osquery_audit_ext.events.rows import audit_syscall_name

    assert audit_syscall_name(0xC000003E, 59) == "execve"
    assert audit_syscall_name(0x40000003, 11) == "execve"
    assert audit_syscall_name(0xC000003E, 99999) == "99999"
    assert audit_syscall_name(0x12345678, 59) == "59"


# -- socket_events -----------------------------------------------------------------------


def test_connect_or_bind_without_sockaddr_is_not_a_socket_event() -> None:
    """The real multicast join: bind logged only because of its EVENT_LISTENER record."""
    events = events_of(read_log(GOLDEN / "real.log"))
    assert [socket_row(ev, 0.0) for ev in events] == [None] * len(events)
    assert socket_row(event((1300, syscall(42))), 0.0) is None


def test_unix_rows_carry_the_family_the_service_filters_on() -> None:
    data = (AF_UNIX).to_bytes(2, sys.byteorder) + b"/run/x.sock\x00"
    row = socket_row(event((1300, syscall(42)), (1306, "saddr=" + data.hex().upper())), 0.0)
    assert row is not None
    assert (row["family"], row["socket"], row["remote_address"]) == (AF_UNIX, "/run/x.sock", None)


# -- text columns ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "cmdline"),
    [
        ([b"sh", b"-c", b"curl http://x | sh"], "sh -c curl http://x | sh"),
        ([b"echo", b'say "hi"', b"it's"], 'echo say "hi" it\'s'),
        ([b"printf", b"a\tb\n"], "printf a\tb\n"),
        ([b"x", b"", b"y"], "x  y"),
        ([b"caf\xc3\xa9", b"\xff"], "café \\xff"),
        ([], ""),
    ],
)
def test_cmdline_is_osquerys_plain_join(args: list[bytes], cmdline: str) -> None:
    """As osquery joins EXECVE arguments: single spaces, no quoting, so its LIKE queries
    (`cmdline LIKE '%-c curl%'`) match; invalid UTF-8 written as \\xNN."""
    got, argv, size = argv_columns(args)
    assert got == cmdline
    assert size == len(cmdline.encode("utf-8"))
    assert [a.encode("utf-8", "surrogateescape") for a in json.loads(argv)] == args


argument = st.binary(max_size=30).map(lambda b: b.replace(b"\x00", b"")) | st.text(max_size=20).map(
    lambda s: s.replace("\x00", "").encode("utf-8", "surrogatepass")
)


@given(st.lists(argument, max_size=8))
def test_argv_is_reversible_and_cmdline_is_the_join(args: list[bytes]) -> None:
    cmdline, argv, size = argv_columns(args)
    cmdline.encode("utf-8")
    argv.encode("utf-8")
    assert cmdline == display_text(b" ".join(args))
    assert [a.encode("utf-8", "surrogateescape") for a in json.loads(argv)] == args
    assert size == len(cmdline.encode("utf-8"))


def test_argv_json_escapes_invalid_bytes_as_surrogates() -> None:
    cmdline, argv, size = argv_columns([b"a\xffb", b"\xc3\xa9"])
    assert argv == '["a\\udcffb", "é"]'
    assert cmdline == "a\\xffb é"
    assert size == 9


def test_display_text() -> None:
    assert display_text(b"/tmp/\xe9t\xc3\xa9") == "/tmp/\\xe9té"
    assert display_text(None) is None


# -- against the real kernel -------------------------------------------------------------


def collect(nl: object, until: float, want: object) -> list[Event]:
    """Read multicast records into events until `want(events)` or the deadline."""
    coalescer = Coalescer(timeout=1)
    events: list[Event] = []
    while time.monotonic() < until and not want(events):  # type: ignore[operator]
        message = nl.recv(0.2)  # type: ignore[attr-defined]
        now = time.monotonic()
        if message is not None:
            events.extend(coalescer.add(*message, now))
        events.extend(coalescer.expire(now))
    return events + coalescer.flush()


@pytest.mark.kernel
def test_real_multicast_join_and_user_message(audit_enabled: None) -> None:
    """Read-only: our own multicast join (EVENT_LISTENER, then SYSCALL ... EOE) and a user
    message from auditctl -m come out as the events the coalescer docstring describes."""
    from osquery_audit_ext.audit.netlink import AuditNetlink

    marker = f"oaetest_c_{os.getpid()}_{time.monotonic_ns()}"
    with AuditNetlink(multicast=True) as nl:
        subprocess.run(["auditctl", "-m", marker], check=True, capture_output=True)

        def done(events: list[Event]) -> bool:
            return any(marker in (e.records[0].raw("msg") or "") for e in events if e.records)

        events = collect(nl, time.monotonic() + 10, done)
    user = [e for e in events if e.records and marker in (e.records[0].raw("msg") or "")]
    assert len(user) == 1 and user[0].ended and [r.type for r in user[0].records] == [1005]
    ours = [
        e
        for e in events
        if e.records and e.records[0].type == 1335 and e.records[0].decimal("pid") == os.getpid()
    ]
    if ours:  # logged only when our task has an audit context
        assert ours[0].ended
        assert [r.type for r in ours[0].records][:2] == [1335, 1300]
        assert socket_row(ours[0], 0.0) is None


ODD_ARGS = [
    "",
    "two words",
    'quote"d',
    "it's",
    "tab\tsep",
    "café",
    *[f"arg{i}" for i in range(3, 12)],
    "L" * 9000,
    "back\\slash",
]


@pytest.mark.kernel
def test_real_execve_argv_is_exact(kernel_rw: None, audit_enabled: None, auditctl: object) -> None:
    """Audit our children's execve, run one with odd arguments, and compare argv exactly."""
    from osquery_audit_ext.audit.netlink import AuditNetlink

    key = f"oaetest_c_{os.getpid()}"
    arch_token = "b64" if sys.maxsize > 2**32 else "b32"
    rule = [
        "-a",
        "always,exit",
        "-F",
        f"arch={arch_token}",
        "-S",
        "execve",
        "-F",
        f"ppid={os.getpid()}",
        "-k",
        key,
    ]
    argv = ["/bin/true", *ODD_ARGS, "\udcff"]
    with AuditNetlink(multicast=True) as nl:
        auditctl(*rule)  # type: ignore[operator]
        try:
            subprocess.run(argv, check=True)

            def done(events: list[Event]) -> bool:
                return any(
                    process_row(e, 0.0) and process_row(e, 0.0)["key"] == key for e in events
                )  # type: ignore[index]

            events = collect(nl, time.monotonic() + 10, done)
        finally:
            auditctl("-d", *rule[1:])  # type: ignore[operator]
    rows = [r for r in (process_row(e, 0.0) for e in events) if r and r["key"] == key]
    assert len(rows) == 1
    row = rows[0]
    assert [a.encode("utf-8", "surrogateescape") for a in json.loads(row["argv"])] == [
        os.fsencode(a) for a in argv
    ]
    assert row["path"] == "/bin/true" and row["parent"] == os.getpid()
    assert row["cmdline"] == display_text(b" ".join(os.fsencode(a) for a in argv))
    assert row["overflows"] == ""


@pytest.mark.kernel
def test_real_connect_row(kernel_rw: None, audit_enabled: None, auditctl: object) -> None:
    """Audit connect from our own pid, connect to a closed local port, and read the row."""
    from osquery_audit_ext.audit.netlink import AuditNetlink

    key = f"oaetest_c_{os.getpid()}_net"
    arch_token = "b64" if sys.maxsize > 2**32 else "b32"
    rule = [
        "-a",
        "always,exit",
        "-F",
        f"arch={arch_token}",
        "-S",
        "connect",
        "-F",
        f"pid={os.getpid()}",
        "-k",
        key,
    ]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens: the connect is refused
    with AuditNetlink(multicast=True) as nl:
        auditctl(*rule)  # type: ignore[operator]
        try:
            client = socket.socket()
            with pytest.raises(ConnectionRefusedError):
                client.connect(("127.0.0.1", port))
            fd = client.fileno()
            client.close()

            def done(events: list[Event]) -> bool:
                return any((socket_row(e, 0.0) or {}).get("key") == key for e in events)

            events = collect(nl, time.monotonic() + 10, done)
        finally:
            auditctl("-d", *rule[1:])  # type: ignore[operator]
    rows = [r for r in (socket_row(e, 0.0) for e in events) if r and r["key"] == key]
    assert len(rows) == 1
    row = rows[0]
    assert (row["action"], row["family"], row["remote_address"], row["remote_port"]) == (
        "connect",
        2,
        "127.0.0.1",
        port,
    )
    assert (row["status"], row["success"], row["exit"], row["fd"]) == ("failed", 0, -111, str(fd))
    assert row["pid"] == os.getpid()


# -- the fast path of socket rows -----------------------------------------------------------


def _careful_and_fast(ev: Event) -> tuple[object, dict | None]:
    fast = rows_module._fast_socket_row(ev, BOOT)
    careful = rows_module._socket_row(Event(ev.types, list(ev.payloads)), BOOT)
    return fast, careful


def test_fast_socket_rows_equal_the_careful_ones_on_the_goldens() -> None:
    taken = 0
    for path in sorted(GOLDEN.glob("*.log")):
        for ev in events_of(read_log(path)):
            fast, careful = _careful_and_fast(ev)
            if fast is not rows_module._SLOW:
                taken += 1
                assert fast == careful, (path.name, ev.serial)
    assert taken >= 3


def _kernel_text(data: bytes) -> str:
    """An untrusted string as the kernel logs it: quoted, or hex when it must be."""
    if any(b == 0x22 or b < 0x21 or b > 0x7E for b in data) or not data:
        return data.hex().upper()
    return '"' + data.decode() + '"'


@given(
    nr=st.sampled_from([42, 49, 43, 288, 41, 59]),
    success=st.booleans(),
    exit_code=st.sampled_from([0, 3, -11, -111, -115, -13]),
    a0=st.integers(min_value=0, max_value=2**64 - 1),
    saddr=st.one_of(
        st.binary(max_size=30),
        st.tuples(st.integers(0, 65535), st.binary(min_size=4, max_size=4)).map(
            lambda t: b"\x02\x00" + t[0].to_bytes(2, "big") + t[1] + bytes(8)
        ),
        st.binary(max_size=20).map(lambda p: b"\x01\x00" + p),
        st.binary(min_size=16, max_size=16).map(lambda a: b"\x0a\x00\x01\xbb" + bytes(4) + a),
    ),
    comm=st.binary(min_size=1, max_size=8),
    key=st.one_of(st.just(b""), st.binary(min_size=1, max_size=8)),
    ids=st.sampled_from(["1000", "0", "4294967295", "1000 pid=7", "1 a0=9"]),
)
def test_fast_socket_rows_equal_the_careful_ones(
    nr: int, success: bool, exit_code: int, a0: int, saddr: bytes, comm: bytes, key: bytes, ids: str
) -> None:
    key_text = _kernel_text(key) if key else "(null)"
    body = (
        f"arch=c000003e syscall={nr} success={'yes' if success else 'no'} exit={exit_code} "
        f"a0={a0:x} a1=7ffd a2=10 a3=0 items=0 ppid=10 pid=20 auid={ids} uid={ids} gid=1 "
        f"euid={ids} suid=1 fsuid=1 egid=1 sgid=1 fsgid=1 tty=(none) ses={ids} "
        f"comm={_kernel_text(comm)} exe={_kernel_text(b'/usr/bin/' + comm)} key={key_text}"
    )
    ev = event((1300, body), (1306, f"saddr={saddr.hex().upper()}"), (1327, "proctitle=6162"))
    fast, careful = _careful_and_fast(ev)
    if fast is not rows_module._SLOW:
        assert fast == careful
    assert socket_row(ev, BOOT) == careful


def test_fast_exec_rows_equal_the_careful_ones_on_the_goldens() -> None:
    taken = 0
    for path in sorted(GOLDEN.glob("*.log")):
        for ev in events_of(read_log(path)):
            fast = rows_module._fast_exec_row(ev, BOOT)
            if fast is not rows_module._SLOW:
                taken += 1
                careful = rows_module._process_row(Event(ev.types, list(ev.payloads)), BOOT, False)
                assert fast == careful, (path.name, ev.serial)
    assert taken >= 3


@given(
    args=st.lists(st.binary(max_size=6), max_size=5),
    cwd=st.binary(min_size=1, max_size=10),
    name=st.sampled_from([b"/usr/bin/ls", b"ls", b"./x y", b"", b"././a"]),
    items=st.sampled_from([("0",), ("1", "0"), ("1",), ()]),
    extra=st.sampled_from(["", "pid=5", "a0=1 exit=3"]),
    success=st.booleans(),
)
def test_fast_exec_rows_equal_the_careful_ones(
    args: list, cwd: bytes, name: bytes, items: tuple, extra: str, success: bool
) -> None:
    execve = f"argc={len(args)} " + " ".join(
        f"a{i}={_kernel_text(a) if a else chr(34) * 2}" for i, a in enumerate(args)
    )
    paths = [
        (
            1302,
            f"item={item} name={_kernel_text(name) if name else '(null)'} inode=5 mode=0100755 ouid={item} ogid=0",
        )
        for item in items
    ]
    ev = event(
        (1300, syscall(59, extra, success="yes" if success else "no")),
        (1309, execve.rstrip()),
        (1307, f"cwd={_kernel_text(cwd)}"),
        *paths,
        (1327, "proctitle=6C73"),
    )
    fast = rows_module._fast_exec_row(ev, BOOT)
    careful = rows_module._process_row(Event(ev.types, list(ev.payloads)), BOOT, False)
    if fast is not rows_module._SLOW:
        assert fast == careful
    assert process_row(ev, BOOT) == careful


@pytest.mark.parametrize(
    "execve",
    [
        'argc=2 a0="ls" a1=ab\x1ccd',  # a separator str.split() splits on, unquoted
        'argc=2 a0="ls" a1="a\x1fb"',
        "argc=2 a0=6C73 a1=(null)",
        'argc=3 a0="ls" a2="x" a1="y"',  # out of order: the careful way
        'argc=1 a0="ls" a0="ls"',
        'argc=02 a0="ls" a1="-l"',  # argc not as the kernel prints it
        'argc=2 a0="ls" a1="-l" ',  # a trailing space
        'argc=2  a0="ls" a1="-l"',
        'argc=2 a0="ls"a1="-l"',
        'argc=1 a0="l s"',
        'argc=1 a0="ls" x',
        "argc=0",
        'argc=0 a0="ls"',
    ],
)
def test_fast_exec_rows_on_odd_execve_records(execve: str) -> None:
    ev = event(
        (1300, syscall(59)),
        (1309, execve),
        (1307, ' cwd="/"'),
        (1302, 'item=0 name="/bin/ls" inode=5 mode=0100755 ouid=0 ogid=0'),
    )
    fast = rows_module._fast_exec_row(ev, BOOT)
    careful = rows_module._process_row(Event(ev.types, list(ev.payloads)), BOOT, False)
    assert fast is rows_module._SLOW or fast == careful
    assert process_row(ev, BOOT) == careful
