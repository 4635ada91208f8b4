"""The consumer runs: the same storms with no rules, under auditd, under our extension in
unicast mode, and under our extension in multicast mode beside auditd.

Every storm is measured the same way whatever consumes it: the kernel's lost counter before
and after, the consumer's CPU (and for ours, memory and loss counters) before and after, the
kernel backlog drained before the after-figures are read. Kernel state is changed only inside
`with` blocks that undo it.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..audit.control import AuditControl
from . import BenchError
from .auditd import PrivateAuditd
from .auditd_log import count_storm_events, read_log_lines
from .extension_run import BENCH_KEY, ExtensionUnderTest, running_extension
from .kernel_state import audit_pid_holder, installed_rules, kernel_lost
from .procstat import sample
from .settle import wait_settled
from .storm import Storm, StormResult

DRAIN_TIMEOUT = 300.0  # seconds a consumer may take to catch up after a storm

NO_RULES = "no rules"
AUDITD = "auditd"
OURS_UNICAST = "ours unicast"
OURS_MULTICAST = "ours multicast + auditd"
SINK = "discarding consumer"


@dataclass
class BenchPlan:
    """What to run: storm sizes, the storm generator, and the rules auditd gets."""

    calls: int
    execs: int
    usermsgs: int
    ring: int
    repeat: int
    workdir: Path
    storm: Storm
    port: int
    exec_path: str
    rules: Sequence[bytes]
    key: str = BENCH_KEY
    progress: Callable[[str], None] = print

    def size(self, kind: str) -> int:
        return {"connect": self.calls, "exec": self.execs, "usermsg": self.usermsgs}[kind]

    def run_storm(self, kind: str) -> StormResult:
        self.progress(f"  storm {kind} x {self.size(kind)}")
        if kind == "connect":
            return self.storm.connect(self.calls, self.port)
        if kind == "exec":
            return self.storm.exec(self.execs, self.exec_path)
        if kind == "usermsg":
            return self.storm.usermsg(self.usermsgs)
        raise BenchError(f"unknown storm {kind!r}")


@dataclass
class OursFigures:
    """Our extension's side of one storm (counter values are deltas over the storm)."""

    mode: str
    counters: dict[str, int]
    buffered_before: int
    rows_appended: int  # rows added to the rings during the storm (any process)
    events: int  # what CPU is charged to: rows appended, or records received for usermsg
    visible: int | None  # rows of this storm in our table afterwards (None: no table rows)
    evicted_in_run: int  # rows of this run pushed out by the ring's capacity
    cpu_seconds: float
    cpu_us_per_event: float | None
    rss_delta_bytes: int
    rss_bytes_per_buffered_event: float | None
    drained: bool
    # The storm's own table (None for user messages): rows held before and after, and rows
    # appended to it (by its eids). audit_status sums both rings, and a row held before in
    # the *other* ring is never evicted by this storm: counting it as evicted hid one call.
    table: str | None = None
    table_before: int = 0
    table_appended: int = 0
    table_after: int = 0


@dataclass
class StormFigures:
    """One storm under one consumer."""

    consumer: str
    kind: str
    calls: int
    seconds: float
    rate: float
    errors: int
    pid: int
    kernel_lost: int
    backlog_drained: bool
    auditd_events: int | None = None
    auditd_cpu_seconds: float | None = None
    auditd_cpu_us_per_event: float | None = None
    ours: OursFigures | None = None


@dataclass
class ExtensionQueryFigures:
    """Queries through the real extension (Thrift) over the ring a storm filled."""

    table: str
    buffered: int
    capacity: int
    pid_ms: float
    pid_rows: int
    count_ms: float
    count: int


@dataclass
class RunResult:
    consumer: str
    storms: list[StormFigures] = field(default_factory=list)
    queries: ExtensionQueryFigures | None = None
    error: str | None = None


# -- waiting for consumers ------------------------------------------------------------------


def wait_backlog_empty(timeout: float = DRAIN_TIMEOUT) -> bool:
    """Wait until the kernel has handed every queued record to the audit daemon."""
    deadline = time.monotonic() + timeout
    with AuditControl() as control:  # one socket: each new one is a bind our rules audit
        while time.monotonic() < deadline:
            if control.get_status().backlog == 0:
                return True
            time.sleep(0.1)
    return False


def wait_log_settled(path: Path, timeout: float = DRAIN_TIMEOUT) -> bool:
    """Wait until auditd's log grows by at most 64 KiB a second (it has caught up)."""
    return wait_settled(
        lambda: path.stat().st_size if path.exists() else 0,
        trickle=65536,
        timeout=timeout,
        interval=0.2,
    )


# -- one storm ------------------------------------------------------------------------------


STORM_TABLES = {"connect": "socket_events", "exec": "process_events"}


def table_position(ext: ExtensionUnderTest, table: str) -> tuple[int, int]:
    """(rows held, newest eid) of one table: eids count what was appended in between."""
    (row,) = ext.query(f"SELECT count(*) AS n, max(eid) AS e FROM {table}")
    return int(row["n"] or 0), int(row["e"] or 0)


def storm_rows_evicted(appended: int, held_after: int) -> int:
    """Rows of a storm its table evicted: the ring evicts oldest first, so the rows held
    before the storm went first, and what the table holds after is the newest it was given."""
    return max(0, appended - held_after)


def visible_rows(ext: ExtensionUnderTest, storm: StormResult) -> int | None:
    """Rows of this storm in our tables, counted through SQL on the core."""
    if storm.kind == "connect":
        return ext.count(
            f"SELECT count(*) FROM socket_events WHERE pid = {storm.pid} AND action = 'connect'"
        )
    if storm.kind == "exec":
        return ext.count(
            f"SELECT count(*) FROM process_events WHERE parent = {storm.pid} AND syscall = 'execve'"
        )
    return None


def per_event_us(seconds: float, events: int | None) -> float | None:
    return seconds / events * 1e6 if events else None


def storm_under(
    plan: BenchPlan,
    consumer: str,
    kind: str,
    *,
    ext: ExtensionUnderTest | None = None,
    auditd: PrivateAuditd | None = None,
) -> StormFigures:
    """Run one storm with the given consumers in place and read every figure around it."""
    lost_before = kernel_lost()
    counters_before = ext.counters() if ext is not None else None
    table = STORM_TABLES.get(kind)
    position_before = table_position(ext, table) if ext is not None and table else (0, 0)
    ext_before = ext.sample() if ext is not None else None
    auditd_before = sample(auditd.pid) if auditd is not None else None
    result = plan.run_storm(kind)
    plan.progress(f"  {result.rate:,.0f} calls/s; waiting for the consumers to catch up")
    started = time.monotonic()
    drained = wait_backlog_empty()
    ours_drained = ext.wait_drained(DRAIN_TIMEOUT) if ext is not None else True
    if auditd is not None:
        wait_log_settled(auditd.log_path)
    if time.monotonic() - started > 5:
        plan.progress(f"  consumers caught up after {time.monotonic() - started:.0f} s")
    figures = StormFigures(
        consumer=consumer,
        kind=kind,
        calls=result.calls,
        seconds=result.seconds,
        rate=result.rate,
        errors=result.errors,
        pid=result.pid,
        kernel_lost=kernel_lost() - lost_before,
        backlog_drained=drained,
    )
    if auditd is not None and auditd_before is not None:
        figures.auditd_cpu_seconds = (sample(auditd.pid) - auditd_before).cpu_seconds
    if ext is not None and counters_before is not None and ext_before is not None:
        used = ext.sample() - ext_before
        after = ext.counters()
        delta = {name: after[name] - counters_before[name] for name in after}
        appended = delta["events_buffered"] + delta["ring_evicted"]
        buffered_before = counters_before["events_buffered"]
        events = delta["records_received"] if kind == "usermsg" else appended
        position_after = table_position(ext, table) if table else (0, 0)
        table_appended = position_after[1] - position_before[1]
        figures.ours = OursFigures(
            mode=consumer,
            counters=delta,
            buffered_before=buffered_before,
            rows_appended=appended,
            events=events,
            visible=visible_rows(ext, result),
            # Rows held before the storm go first (the ring evicts oldest first).
            evicted_in_run=(
                storm_rows_evicted(table_appended, position_after[0])
                if table
                else max(0, delta["ring_evicted"] - buffered_before)
            ),
            cpu_seconds=used.cpu_seconds,
            cpu_us_per_event=per_event_us(used.cpu_seconds, events),
            rss_delta_bytes=used.rss_bytes,
            rss_bytes_per_buffered_event=(
                used.rss_bytes / delta["events_buffered"]
                if kind != "usermsg" and delta["events_buffered"] > 0
                else None
            ),
            drained=ours_drained,
            table=table,
            table_before=position_before[0],
            table_appended=table_appended,
            table_after=position_after[0],
        )
    return figures


# -- consumers ------------------------------------------------------------------------------


@contextlib.contextmanager
def private_auditd() -> Iterator[PrivateAuditd]:
    """Debian's auditd as the audit daemon; stopped by its pid and its files removed."""
    daemon = PrivateAuditd()
    try:
        try:
            daemon.__enter__()
        except (RuntimeError, OSError) as exc:
            raise BenchError(f"cannot run auditd: {exc}") from None
        try:
            yield daemon
        finally:
            daemon.__exit__(None, None, None)
    finally:
        daemon.cleanup()


def count_auditd_events(
    plan: BenchPlan, daemon: PrivateAuditd, figures: list[StormFigures]
) -> None:
    """Fill in how many of each storm's events auditd logged (read once it has stopped)."""
    storms = [StormResult(f.kind, f.calls, f.seconds, f.errors, f.pid) for f in figures]
    counts = count_storm_events(read_log_lines(daemon.log_path), storms, plan.key)
    for f in figures:
        f.auditd_events = counts.get(f.kind, 0)
        if f.auditd_cpu_seconds is not None:
            f.auditd_cpu_us_per_event = per_event_us(f.auditd_cpu_seconds, f.auditd_events)


def run_no_rules(plan: BenchPlan, kinds: Sequence[str]) -> RunResult:
    """The storms with no audit rules in place (and no consumer): the baseline rate."""
    plan.progress(f"run: {NO_RULES}")
    run = RunResult(NO_RULES)
    for kind in kinds:
        run.storms.append(storm_under(plan, NO_RULES, kind))
    return run


def run_auditd(plan: BenchPlan, kinds: Sequence[str], *, add_rules: bool) -> RunResult:
    """auditd as the consumer, with the benchmark's rules added for the run (if add_rules)."""
    plan.progress(f"run: {AUDITD}")
    run = RunResult(AUDITD)
    with private_auditd() as daemon:
        rules = installed_rules(plan.rules) if add_rules else contextlib.nullcontext()
        with rules:
            for kind in kinds:
                run.storms.append(storm_under(plan, AUDITD, kind, auditd=daemon))
        wait_backlog_empty()
        wait_log_settled(daemon.log_path)
        daemon.__exit__(None, None, None)  # stop it: its log is complete once it has exited
        count_auditd_events(plan, daemon, run.storms)
    return run


def run_sink(plan: BenchPlan, kinds: Sequence[str]) -> RunResult:
    """A consumer that costs nothing (storm.c's sink discards every record unread): how fast
    the storms go when the consumer is not what holds them back."""
    plan.progress(f"run: {SINK}")
    run = RunResult(SINK)
    with plan.storm.sink(), installed_rules(plan.rules):
        for kind in kinds:
            run.storms.append(storm_under(plan, SINK, kind))
        wait_backlog_empty()
    return run


def run_ours(
    plan: BenchPlan, kinds: Sequence[str], *, multicast: bool, time_queries: bool
) -> RunResult:
    """Our extension as the consumer: unicast alone, or multicast beside auditd."""
    consumer = OURS_MULTICAST if multicast else OURS_UNICAST
    plan.progress(f"run: {consumer}")
    run = RunResult(consumer)
    mode = "multicast" if multicast else "unicast"
    daemon_context = private_auditd() if multicast else contextlib.nullcontext()
    with daemon_context as daemon:
        with running_extension(mode, plan.ring, plan.workdir, plan.key) as ext:
            status = ext.status()
            if status.get("mode") != mode:
                raise BenchError(
                    f"our extension reads in {status.get('mode') or 'no'} mode, not {mode}: "
                    f"{status.get('mode_reason', '')}"
                )
            for kind in kinds:
                run.storms.append(storm_under(plan, consumer, kind, ext=ext, auditd=daemon))
            if time_queries:
                run.queries = extension_queries(plan, ext)
        if daemon is not None:
            wait_backlog_empty()
            wait_log_settled(daemon.log_path)
            daemon.__exit__(None, None, None)
            count_auditd_events(plan, daemon, run.storms)
    holder = audit_pid_holder()
    if holder and holder != os.getpid() and not os.path.exists(f"/proc/{holder}"):
        plan.progress(f"  note: the audit pid still names {holder}, which has exited")
    return run


def extension_queries(plan: BenchPlan, ext: ExtensionUnderTest) -> ExtensionQueryFigures:
    """Time a pid-filtered query and a full count(*) on socket_events through the extension."""
    table = "socket_events"
    buffered = ext.count(f"SELECT count(*) FROM {table}")
    plan.progress(f"  timing queries through the extension over {buffered} {table} rows")
    probe = os.getpid()  # a pid with no connects of its own: the cost is the ring scan
    pid_s, pid_rows = ext.timed_query(f"SELECT * FROM {table} WHERE pid = {probe}", plan.repeat)
    count_s = float("inf")
    count = 0
    for _ in range(max(2, plan.repeat // 2)):
        start = time.perf_counter()
        count = ext.count(f"SELECT count(*) FROM {table}")
        count_s = min(count_s, time.perf_counter() - start)
    return ExtensionQueryFigures(
        table=table,
        buffered=buffered,
        capacity=plan.ring,
        pid_ms=pid_s * 1000,
        pid_rows=pid_rows,
        count_ms=count_s * 1000,
        count=count,
    )
