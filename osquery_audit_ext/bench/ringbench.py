"""Ring, query and memory figures, with no kernel rules needed.

Realistic record text (the kernel's formats for an execve, a refused connect and a file
opened for writing under a watched tree: a file write storm) goes
through the real path: Coalescer -> AuditService.route_events (routing.EventRouter) ->
EventRing; queries build rows (rows.process_row / socket_row, file_rows.file_row) from what
the ring keeps. In-process: a pid-filtered query, a full generate and a full count(*) are
timed through EventTable.generate directly and through SQL on an embedded core
(LocalTableSource: the plugin handler's row encoding, then SQLite), and the resident memory
the rows added is divided by the rows buffered. End to end: the same rings served by an
extension process (ring_extension) to an embedded core, queried over the core's socket as
`osquery-audit-ext query` does: SELECT *, one column and count(*).

The durable ring's cost is measured by filling the same rings again with the segment files
on: the CPU per event with the default flush (none) and with incremental_async (whose
fdatasync runs on a thread of its own and is counted in the process's CPU), the wall time
per event with flush = data (one fdatasync per batch: the events one recvmmsg's 64 records
complete), and the bytes on disk per event.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ..app.service import AuditService
from ..app.settings import Settings
from ..app.state import StateSettings
from ..app.tables import EventTable
from ..audit.consts import (
    AUDIT_CWD,
    AUDIT_EOE,
    AUDIT_EXECVE,
    AUDIT_PATH,
    AUDIT_PROCTITLE,
    AUDIT_SOCKADDR,
    AUDIT_SYSCALL,
)
from ..audit.mmsg import BATCH
from ..core.manager import CoreError, EmbeddedCore
from ..events.coalesce import Coalescer
from ..sdk.plugin import EQUALS, Constraint, ConstraintList, QueryContext
from . import BenchError
from .extension_run import BENCH_KEY, bench_settings
from .procstat import sample

Records = list[tuple[int, bytes]]

# Programs an exec event runs: comm, exe, argument templates ({n} is the event number).
PROGRAMS = (
    ("git", "/usr/bin/git", ("git", "-C", "/home/alice/src/project{m}", "status", "--short")),
    ("curl", "/usr/bin/curl", ("curl", "-fsS", "https://api.example.com/v1/items/{n}")),
    ("python3", "/usr/bin/python3.11", ("python3", "/opt/app/worker.py", "--job", "{n}")),
    ("ls", "/usr/bin/ls", ("ls", "-la", "/var/log/app{m}")),
    ("grep", "/usr/bin/grep", ("grep", "-r", "error {n}", "/var/log/syslog")),
    ("sed", "/usr/bin/sed", ("sed", "-i", "s/old{n}/new/", "/etc/app/app.conf")),
    ("ssh", "/usr/bin/ssh", ("ssh", "-o", "BatchMode=yes", "deploy@10.0.{m}.7", "uptime")),
    ("bash", "/usr/bin/bash", ("bash", "-c", "echo job {n} && sleep 0")),
    ("cat", "/usr/bin/cat", ("cat", "/proc/{n}/status")),
    ("systemctl", "/usr/bin/systemctl", ("systemctl", "is-active", "app{m}.service")),
    ("node", "/usr/bin/node", ("node", "/srv/web/server.js", "--port", "{n}")),
    ("tar", "/usr/bin/tar", ("tar", "czf", "/backup/home-{n}.tgz", "/home/alice")),
)
CWDS = ("/home/alice", "/home/alice/src/project", "/", "/var/lib/app", "/tmp", "/root")
LOADER = "/lib64/ld-linux-x86-64.so.2"
CONNECTERS = (
    ("curl", "/usr/bin/curl"),
    ("python3", "/usr/bin/python3.11"),
    ("ssh", "/usr/bin/ssh"),
)
EVENTS_PER_SECOND = 2000  # spacing of the synthetic timestamps
PIDS = 40_000  # distinct pids cycled through; a pid gets ~3 events in a row


def _quoted(text: str) -> str:
    """An untrusted string as the kernel logs it: quoted, or hex when it must be."""
    data = text.encode()
    if any(b == 0x22 or b < 0x21 or b > 0x7E for b in data):
        return data.hex().upper()
    return f'"{text}"'


def _header(sec: int, msec: int, serial: int) -> str:
    return f"audit({sec}.{msec:03d}:{serial}): "


def _task(n: int, comm: str, exe: str, uid: int) -> tuple[int, str]:
    """(pid, the task part of a SYSCALL record) for event n."""
    pid = 10_000 + (n // 3) % PIDS
    ses = 3 if uid else 4294967295
    auid = uid if uid else 4294967295
    ids = " ".join(f"{name}={uid}" for name in ("uid", "gid", "euid", "suid", "fsuid"))
    ids += " " + " ".join(f"{name}={uid}" for name in ("egid", "sgid", "fsgid"))
    text = (
        f"ppid={pid - 1} pid={pid} auid={auid} {ids} tty={'pts0' if uid else '(none)'} "
        f'ses={ses} comm="{comm}" exe="{exe}" subj=unconfined key="{BENCH_KEY}"'
    )
    return pid, text


def exec_event_records(n: int, sec: int, msec: int, serial: int) -> Records:
    """The records of one execve, as the kernel sends them (SYSCALL ... PROCTITLE, EOE)."""
    program = n % len(PROGRAMS)
    comm, exe, template = PROGRAMS[program]
    args = [arg.format(n=n, m=n % 17) for arg in template]
    uid = 1000 if n % 4 else 0
    _pid, task = _task(n, comm, exe, uid)
    head = _header(sec, msec, serial)
    syscall = (
        f"arch=c000003e syscall=59 success=yes exit=0 a0=55d1f0c1e6b0 a1=55d1f0c1e5f0 "
        f"a2=55d1f0c24fb0 a3=8 items=2 {task}"
    )
    execve = f"argc={len(args)} " + " ".join(f"a{i}={_quoted(a)}" for i, a in enumerate(args))
    path_tail = "dev=fe:01 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL"
    caps = "cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0"
    title = "\0".join(args).encode()[:128]
    return [
        (AUDIT_SYSCALL, (head + syscall).encode()),
        (AUDIT_EXECVE, (head + execve).encode()),
        (AUDIT_CWD, (head + f" cwd={_quoted(CWDS[n % len(CWDS)])}").encode()),
        (
            AUDIT_PATH,
            # One file, one inode: every exec of a program names the same PATH item 0.
            (head + f'item=0 name="{exe}" inode={1_300_000 + program} {path_tail} {caps}').encode(),
        ),
        (AUDIT_PATH, (head + f'item=1 name="{LOADER}" inode=1311020 {path_tail} {caps}').encode()),
        (AUDIT_PROCTITLE, (head + f"proctitle={title.hex().upper()}").encode()),
        (AUDIT_EOE, head.encode()),
    ]


def connect_event_records(n: int, sec: int, msec: int, serial: int) -> Records:
    """The records of one refused IPv4 connect (SYSCALL, SOCKADDR, PROCTITLE, EOE)."""
    comm, exe = CONNECTERS[n % len(CONNECTERS)]
    _pid, task = _task(n, comm, exe, 1000)
    head = _header(sec, msec, serial)
    syscall = (
        f"arch=c000003e syscall=42 success=no exit=-111 a0={3 + n % 20:x} a1=7ffc4b1e2a10 "
        f"a2=10 a3=0 items=0 {task}"
    )
    port = 1024 + n % 50_000
    saddr = f"0200{port:04X}0A{n % 250:02X}{(n >> 8) % 250:02X}07" + "0" * 16
    title = f"{comm}\0https://10.0.0.{n % 250}:{port}/".encode()
    return [
        (AUDIT_SYSCALL, (head + syscall).encode()),
        (AUDIT_SOCKADDR, (head + f"saddr={saddr}").encode()),
        (AUDIT_PROCTITLE, (head + f"proctitle={title.hex().upper()}").encode()),
        (AUDIT_EOE, head.encode()),
    ]


# The file write storm: files under one watched tree, opened for appending by a logger.
FILE_TREE = "/var/lib/app"
FILE_PATHS = {"app": (f"{FILE_TREE}/data/%%",)}
O_WRONLY_CREAT_APPEND = 0x441


def file_write_event_records(n: int, sec: int, msec: int, serial: int) -> Records:
    """The records of one openat(AT_FDCWD, "data/logN.log", O_WRONLY|O_CREAT|O_APPEND) under
    a watch rule (SYSCALL, CWD, PATH parent and file, PROCTITLE, EOE)."""
    comm, exe = CONNECTERS[n % len(CONNECTERS)]
    _pid, task = _task(n, comm, exe, 1000)
    head = _header(sec, msec, serial)
    syscall = (
        f"arch=c000003e syscall=257 success=yes exit=3 a0=ffffff9c a1=7ffc4b1e2a10 "
        f"a2={O_WRONLY_CREAT_APPEND:x} a3=1b6 items=2 {task}"
    )
    caps = "cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0"
    tail = "dev=fe:01 ouid=1000 ogid=1000 rdev=00:00"
    name = f"data/log{n % 500}.log"
    title = f"{comm}\0--log\0{name}".encode()
    return [
        (AUDIT_SYSCALL, (head + syscall).encode()),
        (AUDIT_CWD, (head + f' cwd="{FILE_TREE}"').encode()),
        (
            AUDIT_PATH,
            (
                head
                + f'item=0 name="data/" inode=1400000 {tail} mode=040755 nametype=PARENT {caps}'
            ).encode(),
        ),
        (
            AUDIT_PATH,
            (
                head + f'item=1 name="{name}" inode={1_400_001 + n % 500} {tail} mode=0100644 '
                f"nametype=NORMAL {caps}"
            ).encode(),
        ),
        (AUDIT_PROCTITLE, (head + f"proctitle={title.hex().upper()}").encode()),
        (AUDIT_EOE, head.encode()),
    ]


def synthetic_records(
    make: Callable[[int, int, int, int], Records], count: int, start: float, first_serial: int
) -> Iterator[tuple[int, bytes]]:
    """`count` events' records, EVENTS_PER_SECOND apart from `start` (epoch seconds)."""
    for n in range(count):
        when = start + n / EVENTS_PER_SECOND
        sec = int(when)
        yield from make(n, sec, int((when - sec) * 1000), first_serial + n)


@dataclass
class TableFigures:
    """One table's figures over a full ring."""

    table: str
    events: int  # rows buffered
    pipeline_us_per_event: float  # CPU of parse -> coalesce -> rows -> ring, per event
    rss_bytes_per_event: float
    pid_rows: int  # rows the pid-filtered query returns
    generate_pid_ms: float
    generate_full_ms: float
    sql_pid_ms: float
    sql_count_ms: float
    sql_count: int  # what count(*) said: must be `events`
    # End to end through an extension process and the core's socket (None: not measured).
    e2e_star_ms: float | None = None
    e2e_column_ms: float | None = None
    e2e_count_ms: float | None = None
    e2e_error: str | None = None
    # CPU seconds of the extension, the core and the client in each query's best run.
    e2e_cpu: dict[str, dict[str, float]] | None = None
    durable_us_per_event: float | None = None  # CPU, the same with the durable ring (flush none)
    durable_async_us_per_event: float | None = None  # CPU, flush = incremental_async
    durable_data_wall_us: float | None = None  # wall time per event with flush = data
    disk_bytes_per_event: float | None = None  # segment bytes per event kept


def fill(service: AuditService, make: Callable[..., Records], count: int) -> None:
    """Push `count` synthetic events through records -> coalescer -> rows -> ring."""
    coalescer = Coalescer(
        timeout=service.settings.reader.event_timeout,
        max_inflight=service.settings.reader.max_inflight,
    )
    start = time.time() - count / EVENTS_PER_SECOND - 5  # all well inside the ring's expiry
    route = service.route_events
    completed: list = []
    # As the reader does: events completed by one recvmmsg batch are routed together.
    for number, (msg_type, payload) in enumerate(
        synthetic_records(make, count, start, 1_000_000), start=1
    ):
        done = coalescer.add(msg_type, payload)
        if done:
            completed.extend(done)
        if number % BATCH == 0 and completed:
            route(completed)
            completed = []
    completed.extend(coalescer.flush())
    if completed:
        route(completed)


def pid_context(pid: int) -> QueryContext:
    """The context core sends for `WHERE pid = <pid>`."""
    return QueryContext(columns={"pid": ConstraintList("INTEGER", (Constraint(EQUALS, str(pid)),))})


def best_of(repeat: int, run: Callable[[], int], budget: float | None = None) -> tuple[float, int]:
    """Best wall time in seconds of `repeat` runs, and what the last run returned; with a
    `budget` (seconds), no new run once the runs so far took that long (at least two run)."""
    best = float("inf")
    result = 0
    spent = 0.0
    for number in range(repeat):
        if budget is not None and number >= 2 and spent >= budget:
            break
        start = time.perf_counter()
        result = run()
        took = time.perf_counter() - start
        best = min(best, took)
        spent += took
    return best, result


# A full scan builds every row: as many runs as the other figures, on a noisy host the best
# of them the figure, but no more than ~8 s of them (process_file_events takes ~8 s a run).
FULL_SCAN_BUDGET = 8.0


def measure_table(
    table: EventTable,
    core: EmbeddedCore,
    pid: int,
    repeat: int,
    pipeline_seconds: float,
    rss_delta: int,
) -> TableFigures:
    name = table.spec.name
    ring = table.ring
    context = pid_context(pid)
    gen_pid, pid_rows = best_of(repeat, lambda: len(list(table.generate(context))))
    full_repeat = max(2, repeat // 2)  # count(*): fewer runs
    gen_full, _ = best_of(
        repeat, lambda: len(list(table.generate(QueryContext()))), FULL_SCAN_BUDGET
    )
    sql_pid, sql_rows = best_of(
        repeat, lambda: len(core.query(f"SELECT * FROM {name} WHERE pid = {pid}").rows)
    )
    sql_count_s, count = best_of(
        full_repeat,
        lambda: int(core.query(f"SELECT count(*) AS n FROM {name}").rows[0]["n"]),
    )
    events = len(ring)
    if sql_rows != pid_rows:
        raise BenchError(f"{name}: SQL gave {sql_rows} rows for pid {pid}, generate {pid_rows}")
    return TableFigures(
        table=name,
        events=events,
        pipeline_us_per_event=pipeline_seconds / events * 1e6 if events else 0.0,
        rss_bytes_per_event=rss_delta / events if events else 0.0,
        pid_rows=pid_rows,
        generate_pid_ms=gen_pid * 1000,
        generate_full_ms=gen_full * 1000,
        sql_pid_ms=sql_pid * 1000,
        sql_count_ms=sql_count_s * 1000,
        sql_count=count,
    )


# flush = data syncs once per event here: a few thousand events tell the cost per event.
DATA_FLUSH_EVENTS = 2000


def ring_settings(events: int, state_dir: Path, flush: str = "none") -> Settings:
    """The bench's settings with the file table on, watching the storm's tree, and a state
    dir of the bench's own (created): never the default one, which a host running the
    extension uses."""
    state_dir.mkdir(parents=True, exist_ok=True)
    settings = bench_settings("unicast", events)
    return replace(
        settings,
        events=replace(settings.events, fim=True),
        file_paths=FILE_PATHS,
        state=StateSettings(str(state_dir), flush=flush),
    )


def durable_service(events: int, directory: Path, flush: str) -> AuditService:
    """A service (not started: no kernel) whose rings write segment files in `directory`."""
    service = AuditService(ring_settings(events, directory, flush))
    service.state.open()
    service.open_durable_ring()
    return service


@dataclass
class DurableFigures:
    """One table's pipeline again, with the durable ring's segment files on."""

    none_us: float  # CPU us/event, flush = none (the default)
    async_us: float  # CPU us/event, flush = incremental_async (its sync thread included)
    data_wall_us: float  # wall us/event, flush = data (the reader waits for the disk)
    disk_bytes: float  # segment bytes per event


def durable_figures(
    name: str, make: Callable[..., Records], events: int, workdir: Path
) -> DurableFigures:
    runs = {}
    data_events = min(events, DATA_FLUSH_EVENTS)
    for flush, count in (("none", events), ("incremental_async", events), ("data", data_events)):
        directory = workdir / f"durable-{name}-{flush}"
        service = durable_service(count, directory, flush)
        try:
            cpu, wall = time.process_time(), time.perf_counter()
            fill(service, make, count)
            service.close_durable_ring()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            disk = sum(p.stat().st_size for p in (directory / "ring" / name).glob("*.seg"))
        finally:
            service.state.close()
            shutil.rmtree(directory, ignore_errors=True)
        runs[flush] = (cpu / count * 1e6, wall / count * 1e6, disk / count)
    return DurableFigures(
        none_us=runs["none"][0],
        async_us=runs["incremental_async"][0],
        data_wall_us=runs["data"][1],
        disk_bytes=runs["none"][2],
    )


def ring_bench(
    events: int, workdir: Path, repeat: int = 7, progress: Callable[[str], None] = print
) -> list[TableFigures]:
    """Fill the process_events, socket_events and process_file_events rings with `events`
    each; time and weigh them."""
    service = AuditService(ring_settings(events, workdir / "ring-state"))
    measured: dict[str, tuple[float, int]] = {}
    for name, make in (
        ("process_events", exec_event_records),
        ("socket_events", connect_event_records),
        ("process_file_events", file_write_event_records),
    ):
        progress(f"ring: filling {name} with {events} events through the real pipeline")
        gc.collect()
        before = sample()
        cpu = time.process_time()
        fill(service, make, events)
        cpu = time.process_time() - cpu
        gc.collect()
        after = sample()
        measured[name] = (cpu, after.rss_bytes - before.rss_bytes)
    core = EmbeddedCore(str(workdir / "ring.em"), builtin_tables=False)
    tables = [
        EventTable(name, ring, service.router.builder(name))
        for name, ring in service.router.rings().items()
        if name in measured
    ]
    for table in tables:
        core.add_table(table)
    # A pid from the middle of the ring: a few events of one process among `events`.
    pid = 10_000 + (events // 2 // 3) % PIDS
    figures = []
    makers = {
        "process_events": exec_event_records,
        "socket_events": connect_event_records,
        "process_file_events": file_write_event_records,
    }
    for table in tables:
        name = table.spec.name
        progress(f"ring: timing queries over {name} (best of {repeat})")
        cpu, rss = measured[name]
        figure = measure_table(table, core, pid, repeat, cpu, rss)
        progress(f"ring: {name} again with the durable ring (segment files in {workdir})")
        durable = durable_figures(name, makers[name], events, workdir)
        figure.durable_us_per_event = durable.none_us
        figure.durable_async_us_per_event = durable.async_us
        figure.durable_data_wall_us = durable.data_wall_us
        figure.disk_bytes_per_event = durable.disk_bytes
        figures.append(figure)
    end_to_end(figures, events, workdir, repeat, progress)
    return figures


RING_EXTENSION = "oae_bench_rings"  # ring_extension's name
E2E_COLUMN = "path"  # the one-column query: a column both tables build from the records
E2E_TABLES = ("process_events", "socket_events")  # the tables ring_extension serves
E2E_REGISTER_TIMEOUT = 900.0  # the extension fills its rings before registering
E2E_QUERY_TIMEOUT = 600.0  # one query from the client process


def end_to_end(
    figures: list[TableFigures],
    events: int,
    workdir: Path,
    repeat: int,
    progress: Callable[[str], None],
) -> None:
    """Time SELECT *, one column and count(*) per table through the ring extension."""
    figures = [f for f in figures if f.table in E2E_TABLES]
    core = EmbeddedCore(str(workdir / "e2e.em"), builtin_tables=False, interval=3.0)
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    with core:
        progress(f"end to end: an extension fills {events} events per table, then serves them")
        process = core.launch(
            [
                sys.executable,
                "-m",
                "osquery_audit_ext.bench.ring_extension",
                "--events",
                str(events),
                "--state-dir",
                str(workdir / "e2e-state"),
            ],
            env=env,
        )
        try:
            core.wait_for_extension(RING_EXTENSION, E2E_REGISTER_TIMEOUT, process=process)
        except CoreError as exc:
            for f in figures:
                f.e2e_error = str(exc)
            return
        runs = max(1, min(repeat, 2))
        for f in figures:
            progress(f"end to end: SELECT *, one column, count(*) over {f.table} (best of {runs})")
            statements = {
                "SELECT *": f"SELECT * FROM {f.table}",
                "one column": f"SELECT {E2E_COLUMN} FROM {f.table}",
                "count(*)": f"SELECT count(*) AS n FROM {f.table}",
            }
            try:
                timed = {
                    what: best_client_run(runs, core.socket_path, sql, process.pid, env)
                    for what, sql in statements.items()
                }
            except BenchError as exc:
                f.e2e_error = str(exc)
                continue
            star, column, count = timed.values()
            counted = int(count.first.get("n", -1))
            if not star.rows == column.rows == counted == f.events:
                f.e2e_error = (
                    f"rows: SELECT * {star.rows}, one column {column.rows}, count(*) {counted},"
                    f" ring {f.events}"
                )
            f.e2e_star_ms, f.e2e_column_ms, f.e2e_count_ms = (
                star.wall * 1000,
                column.wall * 1000,
                count.wall * 1000,
            )
            f.e2e_cpu = {what: run.cpu_split() for what, run in timed.items()}


@dataclass
class ClientRun:
    """One query from a client process: its wall time, and the CPU each process spent."""

    wall: float
    rows: int
    first: dict[str, str]
    client_cpu: float
    core_cpu: float  # this process: the embedded core's threads
    extension_cpu: float

    def cpu_split(self) -> dict[str, float]:
        return {
            "extension": round(self.extension_cpu, 3),
            "core": round(self.core_cpu, 3),
            "client": round(self.client_cpu, 3),
        }


def client_run(socket_path: str, sql: str, extension_pid: int, env: dict[str, str]) -> ClientRun:
    """`sql` from a client process of its own (query_client), the CPU of all three taken."""
    extension_before, core_before = sample(extension_pid), sample()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "osquery_audit_ext.bench.query_client", socket_path, sql],
            env=env,
            capture_output=True,
            text=True,
            timeout=E2E_QUERY_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"{sql}: no answer in {E2E_QUERY_TIMEOUT:.0f} s") from None
    extension_cpu = (sample(extension_pid) - extension_before).cpu_seconds
    core_cpu = (sample() - core_before).cpu_seconds
    try:
        answer = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        problem = done.stderr.strip() or done.stdout.strip()
        raise BenchError(f"query client failed: {problem}") from None
    if "error" in answer:
        raise BenchError(f"{sql}: {answer['error']}")
    return ClientRun(
        answer["wall"],
        answer["rows"],
        answer["first"],
        answer["cpu"],
        core_cpu,
        extension_cpu,
    )


def best_client_run(
    runs: int, socket_path: str, sql: str, extension_pid: int, env: dict[str, str]
) -> ClientRun:
    """The fastest of `runs` client runs of `sql`."""
    found = [client_run(socket_path, sql, extension_pid, env) for _ in range(runs)]
    return min(found, key=lambda run: run.wall)


def figures_dict(figures: list[TableFigures]) -> list[dict[str, object]]:
    return [asdict(f) for f in figures]
