"""The data plane against the real kernel: known execve, socket, user-message, file and
seccomp events appear exactly.

Each test runs the whole pipeline in-process (reader -> records -> events -> rows -> ring)
with its own rule key, and the service restores the kernel's rules and settings on exit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from osquery_audit_ext.app.extension import audit_tables
from osquery_audit_ext.app.service import AuditService
from osquery_audit_ext.app.settings import EventSettings, ReaderSettings, Settings
from osquery_audit_ext.app.tables import AuditRulesTable
from osquery_audit_ext.sdk.plugin import EQUALS, Constraint, ConstraintList, QueryContext

pytestmark = pytest.mark.kernel

TRUE = shutil.which("true") or "/bin/true"

# Arguments that break other tools: >10 of them, a 20,000-byte one, empty ones, spaces,
# quotes, newlines and bytes that are not ASCII (nor UTF-8).
ODD_ARGV: list[bytes] = [
    TRUE.encode(),
    b"",
    b"two words",
    b'"quoted"',
    b"it's",
    b"line\nbreak",
    b"tab\there",
    "caf\u00e9".encode(),
    b"\xff\xfe raw",
    b"x" * 20000,
    b"",
    *[f"arg{i}".encode() for i in range(11, 16)],
]


def table_rows(service: AuditService, table: str, pids: set[int]) -> list[dict]:
    """Rows as the extension's table serves `WHERE pid IN (...)`: the real table, one call."""
    tables = {t.spec.name: t for t in audit_tables(service)}
    terms = tuple(Constraint(EQUALS, str(pid)) for pid in sorted(pids))
    return list(tables[table].generate(QueryContext({"pid": ConstraintList(constraints=terms)})))


def wait_rows(service, table, pids, predicate, timeout=15.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        rows = table_rows(service, table, set(pids))
        found = [r for r in rows if predicate(r)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def start_service(
    key: str, file_paths: dict[str, tuple[str, ...]] | None = None, **events: bool
) -> AuditService:
    settings = Settings(
        key=key,
        events=EventSettings(**events),
        reader=ReaderSettings(event_timeout=1.0, pid_check_interval=1.0),
        file_paths=file_paths or {},
    )
    service = AuditService(settings)
    service.start()
    return service


@pytest.fixture
def process_service(kernel_rw) -> Iterator[AuditService]:
    service = start_service(f"oaetest_proc_{os.getpid()}", process=True)
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture
def socket_service(kernel_rw) -> Iterator[AuditService]:
    service = start_service(
        f"oaetest_sock_{os.getpid()}",
        process=False,
        sockets=True,
        socket_unix=True,
        socket_failed=True,
    )
    try:
        yield service
    finally:
        service.stop()


def run_argv(argv: list[bytes]) -> int:
    proc = subprocess.Popen(argv, executable=argv[0], stdout=subprocess.DEVNULL)
    proc.wait()
    return proc.pid


def expected_argv_json(argv: list[bytes]) -> list[str]:
    return [os.fsdecode(a) for a in argv]


def test_execve_argv_is_exact(process_service):
    pid = run_argv(ODD_ARGV)
    rows = wait_rows(process_service, "process_events", [pid], lambda r: r["syscall"] == "execve")
    assert len(rows) == 1, rows
    row = rows[0]
    assert json.loads(row["argv"]) == expected_argv_json(ODD_ARGV)
    assert row["path"] == TRUE
    assert row["cwd"] == os.getcwd()
    assert row["parent"] == os.getpid()
    assert row["uid"] == os.getuid() and row["euid"] == os.geteuid()
    assert row["success"] == 1 and row["exit"] == 0
    assert row["arch"] == "b64"
    assert row["key"] == process_service.settings.key
    assert abs(row["time"] - time.time()) < 60
    # cmdline keeps argv order past 10 arguments: osquery sorts a0, a1, a10, a2 ...
    assert row["cmdline"].index("arg11") < row["cmdline"].index("arg15")
    assert row["cmdline"].startswith(TRUE + " ")
    # cmdline is osquery's plain join (no quoting); cmdline_size its length in bytes.
    assert row["cmdline"] == b" ".join(ODD_ARGV).decode("utf-8", "backslashreplace")
    assert row["cmdline_size"] == len(row["cmdline"].encode())


def test_many_execs_none_lost(process_service):
    pids = [run_argv([TRUE.encode(), f"n{i}".encode()]) for i in range(50)]
    rows = wait_rows(
        process_service,
        "process_events",
        pids,
        lambda r: r["syscall"] == "execve",
    )
    deadline = time.monotonic() + 10
    while len(rows) < len(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
        rows = table_rows(process_service, "process_events", set(pids))
    assert sorted(r["pid"] for r in rows) == sorted(pids)
    assert {json.loads(r["argv"])[1] for r in rows} == {f"n{i}" for i in range(50)}


def build_32bit_exec(tmp: Path) -> Path | None:
    source = tmp / "exec32.c"
    source.write_text(
        '#include <unistd.h>\nint main(void){char *a[]={"/bin/true","b32","a r g",0};'
        "char *e[]={0};execve(a[0],a,e);return 1;}\n"
    )
    binary = tmp / "exec32"
    gcc = shutil.which("gcc")
    if gcc is None:
        return None
    done = subprocess.run([gcc, "-m32", "-o", str(binary), str(source)], capture_output=True)
    return binary if done.returncode == 0 else None


def test_32bit_execve_is_seen(process_service, tmp_path):
    binary = build_32bit_exec(tmp_path)
    if binary is None:
        pytest.skip("cannot build a 32-bit program here (gcc-multilib missing)")
    proc = subprocess.Popen([str(binary)])
    assert proc.wait() == 0
    rows = wait_rows(
        process_service,
        "process_events",
        [proc.pid],  # the 32-bit program itself calls execve
        lambda r: r["arch"] == "b32" and json.loads(r["argv"]) == ["/bin/true", "b32", "a r g"],
    )
    assert rows and rows[0]["syscall"] == "execve"


# The kernel never audits the audit daemon's own syscalls, and in unicast mode that is this
# test process: every socket workload runs in a child process, and rows are looked up by its pid.
WORKLOADS = {
    "tcp": """
import json, socket, sys
family = getattr(socket, sys.argv[2]); host = sys.argv[3]
probe = socket.socket(family, socket.SOCK_STREAM); probe.bind((host, 0))
port = probe.getsockname()[1]; probe.close()  # audit logs the port asked for: ask for one
server = socket.socket(family, socket.SOCK_STREAM); server.bind((host, port)); server.listen(1)
client = socket.socket(family, socket.SOCK_STREAM); client.connect((host, port))
conn, _ = server.accept(); conn.close()
print(json.dumps({"server_fd": server.fileno(), "port": port,
                  "client_fd": client.fileno(), "client_port": client.getsockname()[1]}))
""",
    "refused": """
import json, socket
probe = socket.socket(); probe.bind(("127.0.0.1", 0)); port = probe.getsockname()[1]
probe.close()  # nobody listens there now
client = socket.socket()
try:
    client.connect(("127.0.0.1", port))
except ConnectionRefusedError:
    pass
print(json.dumps({"port": port}))
""",
    "nonblocking": """
import json, socket
server = socket.socket(socket.AF_INET6, socket.SOCK_STREAM); server.bind(("::1", 0))
server.listen(1); port = server.getsockname()[1]
client = socket.socket(socket.AF_INET6, socket.SOCK_STREAM); client.setblocking(False)
print(json.dumps({"port": port, "rc": client.connect_ex(("::1", port))}))
""",
    "unix": """
import json, socket, sys
address = sys.argv[2].replace("@", "\\0", 1) if sys.argv[2].startswith("@") else sys.argv[2]
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); server.bind(address); server.listen(1)
client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); client.connect(address)
print(json.dumps({}))
""",
}


def run_workload(name: str, *args: str) -> tuple[int, dict]:
    """Run a socket workload in a child process: (its pid, what it printed)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKLOADS[name], name, *args], stdout=subprocess.PIPE, text=True
    )
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    return proc.pid, json.loads(out)


def socket_rows(service, pid: int, predicate) -> list[dict]:
    return wait_rows(service, "socket_events", [pid], predicate)


@pytest.mark.parametrize(
    ("family", "host", "family_id"),
    [("AF_INET", "127.0.0.1", 2), ("AF_INET6", "::1", 10)],
)
def test_tcp_bind_connect_accept(socket_service, family, host, family_id):
    pid, seen = run_workload("tcp", family, host)
    port = seen["port"]
    binds = socket_rows(
        socket_service, pid, lambda r: r["action"] == "bind" and r["local_port"] == port
    )
    assert binds, "bind not seen"
    bind = binds[0]
    assert bind["local_address"] == host and bind["family"] == family_id
    assert bind["fd"] == str(seen["server_fd"]) and bind["status"] == "succeeded"
    assert bind["path"] == bind["exe"] == os.path.realpath(sys.executable)
    connects = socket_rows(
        socket_service, pid, lambda r: r["action"] == "connect" and r["remote_port"] == port
    )
    assert connects, "connect not seen"
    assert connects[0]["remote_address"] == host
    assert connects[0]["fd"] == str(seen["client_fd"])
    accepts = socket_rows(
        socket_service,
        pid,
        lambda r: r["action"] == "accept" and r["remote_port"] == seen["client_port"],
    )
    assert accepts, "accept not seen"
    assert accepts[0]["remote_address"] == host and accepts[0]["status"] == "succeeded"


def test_refused_connect_is_failed(socket_service):
    pid, seen = run_workload("refused")
    rows = socket_rows(socket_service, pid, lambda r: r["remote_port"] == seen["port"])
    assert rows and rows[0]["status"] == "failed" and rows[0]["success"] == 0
    assert rows[0]["exit"] == -111


def test_nonblocking_connect_in_progress(socket_service):
    pid, seen = run_workload("nonblocking")
    rows = socket_rows(
        socket_service, pid, lambda r: r["action"] == "connect" and r["remote_port"] == seen["port"]
    )
    assert rows
    assert rows[0]["status"] == ("in_progress" if seen["rc"] == 115 else "succeeded")


def test_unix_path_and_abstract(socket_service):
    with tempfile.TemporaryDirectory(prefix="oae") as tmp:
        for shown in (os.path.join(tmp, "s.sock"), f"@oaetest-abstract-{os.getpid()}"):
            pid, _ = run_workload("unix", shown)
            binds = socket_rows(
                socket_service, pid, lambda r, s=shown: r["action"] == "bind" and r["socket"] == s
            )
            assert binds and binds[0]["family"] == 1, shown
            connects = socket_rows(
                socket_service,
                pid,
                lambda r, s=shown: r["action"] == "connect" and r["socket"] == s,
            )
            assert connects, shown


def test_beside_auditd_nothing_lost(kernel_rw, running_auditd):
    auditd = running_auditd
    service = start_service(f"oaetest_beside_{os.getpid()}", process=True)
    try:
        assert service.reader.stats.mode == "multicast"
        assert "auditd" in service.reader.stats.mode_reason
        pids = [run_argv([TRUE.encode(), f"m{i}".encode()]) for i in range(40)]
        deadline = time.monotonic() + 15
        seen: set[int] = set()
        while seen != set(pids) and time.monotonic() < deadline:
            rows = table_rows(service, "process_events", set(pids))
            seen = {r["pid"] for r in rows}
            time.sleep(0.2)
        assert seen == set(pids)
    finally:
        service.stop()
    # auditd, the unicast consumer, still got every event.
    deadline = time.monotonic() + 10
    missing = set(pids)
    while missing and time.monotonic() < deadline:
        logged = "\n".join(auditd.log_lines())
        missing = {p for p in pids if f" pid={p} " not in logged}
        time.sleep(0.2)
    assert not missing


# -- user_events, process_file_events, seccomp_events ------------------------------------


@pytest.fixture
def quiet_service(kernel_rw) -> Iterator[AuditService]:
    """No rules at all: user messages and seccomp records need none (seccomp turned on)."""
    service = start_service(f"oaetest_user_{os.getpid()}", process=False, seccomp=True)
    try:
        yield service
    finally:
        service.stop()


@pytest.mark.parametrize(
    ("argv", "path", "types"),
    [
        (["su", "-s", TRUE, "nobody"], "/usr/bin/su", {1100, 1101, 1103, 1105, 1106, 1104}),
        (["runuser", "-u", "nobody", "--", TRUE], "/usr/sbin/runuser", {1103, 1105, 1106, 1104}),
    ],
)
def test_su_and_runuser_give_user_events(quiet_service, argv, path, types):
    """PAM's records of a real su/runuser, with osquery's columns: type, path, message."""
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed")
    proc = subprocess.run(argv, capture_output=True)
    assert proc.returncode == 0, proc.stderr
    # su and runuser fork a child for the command; PAM's records come from the parent.
    rows = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        rows = [
            r
            for r in audit_table(quiet_service, "user_events").generate(QueryContext({}))
            if r["path"] == path and r["time"] >= int(time.time()) - 60
        ]
        if types <= {r["type"] for r in rows}:
            break
        time.sleep(0.2)
    assert types <= {r["type"] for r in rows}, rows
    for row in rows:
        assert row["message"].startswith("op=PAM:")
        assert row["res"] == "success" and row["acct"] == "nobody"
        assert row["uid"] == 0 and row["msg"].startswith(row["message"] + " ")
    ops = {r["type"]: r["message"] for r in rows}
    assert ops[1105] == "op=PAM:session_open" and ops[1106] == "op=PAM:session_close"


def audit_table(service: AuditService, name: str):
    return {t.spec.name: t for t in audit_tables(service)}[name]


SECCOMP_SOURCE = Path(__file__).resolve().parents[1] / "helpers" / "seccomp_log.c"


def test_seccomp_log_gives_a_row(quiet_service, tmp_path):
    """A real seccomp filter returning SECCOMP_RET_LOG for getppid: one row per call."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed")
    binary = tmp_path / "seccomp_log"
    subprocess.run([gcc, "-O1", "-o", str(binary), str(SECCOMP_SOURCE)], check=True)
    done = subprocess.run([str(binary), "3"], capture_output=True, text=True, check=True)
    pid = int(done.stdout)
    rows = wait_rows(quiet_service, "seccomp_events", [pid], lambda r: len(r) > 0)
    deadline = time.monotonic() + 10
    while len(rows) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
        rows = table_rows(quiet_service, "seccomp_events", {pid})
    assert len(rows) == 3, rows
    row = rows[0]
    assert (row["code"], row["syscall"], row["exe"], row["comm"]) == (
        "LOG",
        "getppid",
        str(binary),
        "seccomp_log",
    )
    assert row["arch"] == ("X86_64" if os.uname().machine == "x86_64" else row["arch"])
    assert row["uid"] == os.getuid() and row["sig"] == 0 and row["ip"].startswith("0x")


FILE_SCRIPT = """
import os, sys, time
root = sys.argv[1]
os.chdir(root + "/watched")
os.mkdir("docs")                                   # the glob's own directory: no row
os.mkdir("docs/sub")                               # created after start: mkdir
fd = os.open("docs/sub/f.txt", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
os.write(fd, b"x"); os.close(fd)                   # open+truncate
fd = os.open(root + "/watched/docs/sub/f.txt", os.O_WRONLY | os.O_APPEND)
os.write(fd, b"y"); os.close(fd)                   # write
os.rename("docs/sub/f.txt", "docs/sub/g.txt")      # rename, with dest_path
with open("app.conf", "w") as f:                   # the conf category
    f.write("z")
with open("notes.txt", "w") as f:                  # watched tree, outside the globs
    f.write("z")
with open(root + "/outside/x.conf", "w") as f:     # outside the watched tree
    f.write("z")
with open("docs/sub/g.txt") as f:                  # a read: no row without fim_accesses
    f.read()
os.unlink("docs/sub/g.txt")                        # unlink
with open("docs/sub/h.txt", "w") as f:             # open+truncate
    f.write("z")
dfd = os.open("docs/sub", os.O_RDONLY | os.O_DIRECTORY)
os.unlink("h.txt", dir_fd=dfd)                     # unlinkat relative to a dir fd, as rm -r
time.sleep(1.0)                                    # ... still holding the fd, as rm -r does
os.close(dfd)
"""


def test_file_operations_under_a_watched_tree(kernel_rw, tmp_path):
    """Files and a directory created after start, a write, a rename and an unlink give
    osquery's rows with dest_path; files outside the globs give none; the managed file rule
    names the watched tree."""
    (tmp_path / "watched").mkdir()
    (tmp_path / "outside").mkdir()
    watched = tmp_path / "watched"
    key = f"oaetest_fim_{os.getpid()}"
    paths = {"docs": (f"{watched}/docs/%%",), "conf": (f"{watched}/%.conf",)}
    service = start_service(key, paths, process=False, fim=True)
    try:
        rules = list(AuditRulesTable(key).generate(QueryContext({})))
        managed = [r for r in rules if r["managed"]]
        assert [(r["path"], r["permissions"]) for r in managed] == [(str(watched), "wa")]
        proc = subprocess.Popen([sys.executable, "-c", FILE_SCRIPT, str(tmp_path)])
        assert proc.wait() == 0
        rows = wait_rows(service, "process_file_events", [proc.pid], lambda r: True)
        deadline = time.monotonic() + 10
        while len(rows) < 8 and time.monotonic() < deadline:
            time.sleep(0.2)
            rows = table_rows(service, "process_file_events", {proc.pid})
    finally:
        service.stop()
    sub = f"{watched}/docs/sub"
    assert [(r["operation"], r["path"], r["dest_path"], r["category"]) for r in rows] == [
        ("mkdir", sub, "", "docs"),
        ("open+truncate", f"{sub}/f.txt", "", "docs"),
        ("write", f"{sub}/f.txt", "", "docs"),
        ("rename", f"{sub}/f.txt", f"{sub}/g.txt", "docs"),
        ("open+truncate", f"{watched}/app.conf", "", "conf"),
        ("unlink", f"{sub}/g.txt", "", "docs"),
        ("open+truncate", f"{sub}/h.txt", "", "docs"),
        ("unlink", f"{sub}/h.txt", "", "docs"),  # its dir fd read from /proc at arrival
    ]
    assert all(r["partial"] == "false" and r["executable"] for r in rows)
    assert all(r["cwd"] == str(watched) and r["uid"] == str(os.getuid()) for r in rows)
