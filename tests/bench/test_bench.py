"""The benchmark's pure helpers: storm build and output, /proc parsing, log counting, the
in-process ring path, waiting, and the report (the bench itself is `make bench`, not a test).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from osquery_audit_ext.app.managed_rules import desired_rule_texts
from osquery_audit_ext.bench import BenchError
from osquery_audit_ext.bench.__main__ import parse_args
from osquery_audit_ext.bench.auditd_log import count_storm_events, storm_syscall
from osquery_audit_ext.bench.extension_run import (
    BENCH_KEY,
    STATUS_COUNTERS,
    bench_config_text,
    bench_settings,
)
from osquery_audit_ext.bench.kernel_state import KernelSnapshot, rule_lines, setting_lines
from osquery_audit_ext.bench.procstat import parse_stat_cpu, parse_statm_rss, sample
from osquery_audit_ext.bench.report import (
    MISS,
    NA,
    PASS,
    all_targets,
    format_table,
    json_text,
    loss_figures,
    ring_section,
    summary_line,
)
from osquery_audit_ext.bench.ringbench import (
    E2E_TABLES,
    TableFigures,
    connect_event_records,
    exec_event_records,
    ring_bench,
)
from osquery_audit_ext.bench.runs import (
    AUDITD,
    NO_RULES,
    OURS_UNICAST,
    SINK,
    OursFigures,
    RunResult,
    StormFigures,
    storm_rows_evicted,
)
from osquery_audit_ext.bench.settle import wait_settled
from osquery_audit_ext.bench.storm import (
    Storm,
    StormResult,
    build_storm,
    exec_target,
    parse_storm_output,
    refused_port,
)
from osquery_audit_ext.events.coalesce import Coalescer
from osquery_audit_ext.events.rows import process_row, socket_row

# -- storm generator ------------------------------------------------------------------------


def test_parse_storm_output():
    assert parse_storm_output("calls=200000 seconds=3.250000 errors=2\n") == (200000, 3.25, 2)
    with pytest.raises(BenchError, match="no result"):
        parse_storm_output("usage: storm connect N PORT\n")


@pytest.fixture(scope="module")
def storm(tmp_path_factory) -> Storm:
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        pytest.skip("gcc is not installed (make sysdeps installs it)")
    return Storm(build_storm(tmp_path_factory.mktemp("storm")))


def test_connect_storm_to_a_refused_port(storm):
    with refused_port() as port:
        result = storm.connect(50, port)
    assert (result.kind, result.calls, result.errors) == ("connect", 50, 0)
    assert result.seconds > 0 and result.rate > 0 and result.pid > 0


def test_exec_storm_runs_each_child(storm):
    result = storm.exec(5, exec_target())
    assert (result.calls, result.errors) == (5, 0)


def test_exec_storm_counts_failed_children(storm):
    result = storm.exec(3, "/nonexistent/program")
    assert result.errors == 3  # execve failed: each child exits 127


@pytest.mark.kernel
def test_sink_is_the_audit_daemon_while_it_runs_and_gives_the_pid_back(storm, audit_enabled):
    from osquery_audit_ext.bench.kernel_state import audit_pid_holder

    holder = audit_pid_holder()
    if holder and os.path.exists(f"/proc/{holder}"):
        pytest.skip(f"the audit pid is held by a running process ({holder})")
    with storm.sink() as sink:
        assert audit_pid_holder() == sink.pid
        sent = storm.usermsg(200)
        assert sent.errors == 0
        time.sleep(0.5)
    assert sink.returncode == 0
    received = int(sink.stdout.read().split("records=")[1])
    assert received >= 200  # its own and ours, discarded unread
    assert audit_pid_holder() == holder


def test_storm_usage_error_is_a_bench_error(storm):
    with pytest.raises(BenchError, match="exit 2"):
        storm._run("nonsense", "1", "2")


def test_build_storm_reports_compiler_failure(tmp_path):
    with pytest.raises(BenchError, match="building the storm generator failed"):
        build_storm(tmp_path, compiler="false")


# -- /proc ----------------------------------------------------------------------------------


def test_parse_stat_cpu_with_odd_comm():
    fields = ["S", "1", "2", "3", "0", "-1", "4194560", "100", "0", "0", "0", "250", "150"]
    stat = "1234 (a) b (c)) " + " ".join(fields + ["20"] * 30)
    ticks = os.sysconf("SC_CLK_TCK")
    assert parse_stat_cpu(stat) == pytest.approx(400 / ticks)


def test_parse_statm_rss():
    assert parse_statm_rss("5000 1200 300 10 0 900 0\n") == 1200 * os.sysconf("SC_PAGE_SIZE")


def test_sample_sees_this_process_work():
    before = sample(os.getpid())
    sum(i * i for i in range(2_000_000))
    used = sample(os.getpid()) - before
    assert used.cpu_seconds > 0
    assert sample().rss_bytes > 10 * 1024 * 1024


# -- kernel state views ---------------------------------------------------------------------

AUDITCTL_S = """\
enabled 1
failure 1
pid 812
rate_limit 0
backlog_limit 8192
lost 17
backlog 3
backlog_wait_time 60000
backlog_wait_time_actual 12
loginuid_immutable 0 unlocked
"""


def test_setting_lines_skip_moving_counters():
    assert setting_lines(AUDITCTL_S) == (
        "enabled 1",
        "failure 1",
        "pid 812",
        "rate_limit 0",
        "backlog_limit 8192",
        "backlog_wait_time 60000",
        "loginuid_immutable 0 unlocked",
    )


def test_snapshot_differences():
    rule = "-a always,exit -F arch=b64 -S connect -F key=mine"
    before = KernelSnapshot(setting_lines(AUDITCTL_S), rule_lines(rule + "\n"))
    same = KernelSnapshot(
        setting_lines(AUDITCTL_S.replace("lost 17", "lost 99")), rule_lines(rule + "\n")
    )
    assert before.differences(same) == []
    after = KernelSnapshot(
        setting_lines(AUDITCTL_S.replace("pid 812", "pid 0")), rule_lines("No rules\n")
    )
    assert before.differences(after) == [
        "auditctl -s: - pid 812",
        "auditctl -s: + pid 0",
        f"auditctl -l: - {rule}",
    ]


# -- bench config ---------------------------------------------------------------------------


def test_bench_config_audits_refused_connects():
    settings = bench_settings("multicast", 1234)
    assert (settings.mode, settings.key, settings.ring.capacity) == ("multicast", BENCH_KEY, 1234)
    assert settings.events.process and settings.events.sockets and settings.events.socket_failed
    connect_rules = [r for r in desired_rule_texts(settings, "x86_64") if "connect" in r]
    assert connect_rules and not any("success" in r for r in connect_rules)
    assert f'key = "{BENCH_KEY}"' in bench_config_text("unicast", 10)


def test_parse_args_defaults_and_quick():
    args = parse_args([])
    assert (args.calls, args.execs, args.ring, args.usermsgs) == (200_000, 5_000, 100_000, 200_000)
    quick = parse_args(["--quick", "--execs", "7"])
    assert (quick.calls, quick.execs, quick.ring) == (20_000, 7, 10_000)


# -- auditd log -----------------------------------------------------------------------------


def _syscall_line(nr: int, pid: int, ppid: int, key: str) -> str:
    return (
        f"type=SYSCALL msg=audit(1700000000.123:{pid}): arch=c000003e syscall={nr} "
        f"success=no exit=-111 a0=3 a1=7ffd a2=10 a3=0 items=0 ppid={ppid} pid={pid} "
        f'auid=0 uid=0 comm="storm" exe="/tmp/storm" subj=unconfined key={key}'
    )


def test_count_storm_events_in_auditd_log():
    connect, execve = storm_syscall("connect", "x86_64"), storm_syscall("exec", "x86_64")
    assert (connect, execve) == (42, 59)
    storms = [StormResult("connect", 3, 1.0, 0, 500), StormResult("exec", 2, 1.0, 0, 600)]
    other_keys = BENCH_KEY.encode().hex().upper() + "01" + b"other".hex().upper()
    lines = [
        _syscall_line(42, 500, 1, f'"{BENCH_KEY}"'),
        _syscall_line(42, 500, 1, other_keys),  # our key among several (hex, 0x01 joined)
        _syscall_line(42, 501, 1, f'"{BENCH_KEY}"'),  # another process
        _syscall_line(42, 500, 1, '"somebody_else"'),  # another rule's key
        _syscall_line(59, 601, 600, f'"{BENCH_KEY}"'),  # a child of the exec storm
        _syscall_line(59, 602, 600, f'"{BENCH_KEY}"'),
        _syscall_line(59, 600, 1, f'"{BENCH_KEY}"'),  # the storm's own exec: not counted
        "type=SOCKADDR msg=audit(1700000000.123:500): saddr=0200",
        "type=EOE msg=audit(1700000000.123:500): ",
        "garbage",
    ]
    assert count_storm_events(lines, storms, BENCH_KEY, "x86_64") == {"connect": 2, "exec": 2}


def test_count_usermsg_events_in_auditd_log():
    storms = [StormResult("usermsg", 2, 1.0, 0, 700)]
    line = (
        "type=TRUSTED_APP msg=audit(1700000000.200:9): pid={pid} uid=0 auid=4294967295 "
        "ses=4294967295 subj=unconfined msg='oae_bench usermsg pid {pid} n 0'"
    )
    lines = [line.format(pid=700), line.format(pid=700), line.format(pid=701)]
    assert count_storm_events(lines, storms, BENCH_KEY) == {"usermsg": 2}


# -- synthetic records through the real path ------------------------------------------------


def _events(records):
    coalescer = Coalescer()
    done = []
    for msg_type, payload in records:
        done += coalescer.add(msg_type, payload)
    return done


def test_exec_records_become_the_expected_row():
    (event,) = _events(exec_event_records(0, 1700000000, 250, 77))
    row = process_row(event, 1600000000.0)
    assert json.loads(row["argv"]) == [
        "git",
        "-C",
        "/home/alice/src/project0",
        "status",
        "--short",
    ]
    assert (row["path"], row["cwd"], row["syscall"], row["key"]) == (
        "/usr/bin/git",
        "/home/alice",
        "execve",
        BENCH_KEY,
    )
    assert (row["pid"], row["parent"], row["time_ms"], row["serial"]) == (
        10000,
        9999,
        1700000000250,
        77,
    )


def test_connect_records_become_the_expected_row():
    (event,) = _events(connect_event_records(7, 1700000000, 0, 5))
    row = socket_row(event, 1600000000.0)
    assert (row["action"], row["status"], row["success"], row["family"]) == (
        "connect",
        "failed",
        0,
        2,
    )
    assert (row["remote_address"], row["remote_port"]) == ("10.7.0.7", 1031)


def test_ring_bench_small(tmp_path):
    figures = ring_bench(300, tmp_path, repeat=1, progress=lambda _m: None)
    assert [f.table for f in figures] == ["process_events", "socket_events", "process_file_events"]
    for f in figures:
        assert f.events == f.sql_count == 300
        assert f.pid_rows == 3  # each synthetic pid has three events in a row
        assert f.pipeline_us_per_event > 0
        if f.table in E2E_TABLES:
            # End to end through a real extension process: every row came back.
            assert f.e2e_error is None
            assert f.e2e_star_ms and f.e2e_column_ms and f.e2e_count_ms
            # Each query came from a client process of its own; all three spent CPU on it.
            assert f.e2e_cpu is not None
            assert set(f.e2e_cpu) == {"SELECT *", "one column", "count(*)"}
            star = f.e2e_cpu["SELECT *"]
            assert set(star) == {"extension", "core", "client"}
            # /proc counts CPU in clock ticks (10 ms): 300 rows may cost the core or the
            # extension none; the client's own process_time is finer.
            assert star["client"] > 0 and star["core"] >= 0 and star["extension"] >= 0
        else:
            assert f.e2e_star_ms is None and f.e2e_error is None
        assert f.durable_us_per_event and f.durable_us_per_event > 0
        assert f.durable_async_us_per_event and f.durable_async_us_per_event > 0
        assert f.durable_data_wall_us and f.durable_data_wall_us > 0
        assert f.disk_bytes_per_event and 10 < f.disk_bytes_per_event < 4000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("durable-")]
    # The printed report shows the CPU split of every end-to-end query.
    text = ring_section(figures, [])
    split = text[text.index("where the CPU went") :]
    for table in E2E_TABLES:
        for what in ("SELECT *", "one column", "count(*)"):
            assert any(table in line and what in line for line in split.splitlines())


# -- waiting --------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_wait_settled_tolerates_a_trickle():
    clock = FakeClock()
    values = iter([0, 5000, 9000, 9100, 9110, 9120, 9130, 9140, 9150, 9160, 9170] + [9180] * 50)
    assert wait_settled(
        lambda: next(values), trickle=100, settle=1.0, interval=0.25, clock=clock, sleep=clock.sleep
    )
    assert 1.0 <= clock.now <= 2.5


def test_wait_settled_times_out_while_growing():
    clock = FakeClock()
    counter = iter(range(0, 10**9, 1000))
    assert not wait_settled(
        lambda: next(counter), trickle=100, timeout=5, clock=clock, sleep=clock.sleep
    )
    assert 5.0 <= clock.now <= 5.5


# -- report ---------------------------------------------------------------------------------


def test_format_table_aligns_text_left_and_figures_right():
    text = format_table(["name", "rate"], [["auditd", 1234], ["ours", 98765.4]])
    assert text.splitlines() == [
        "  name        rate",
        "  ------  --------",
        "  auditd     1,234",
        "  ours    98,765.4",
    ]


def _storm(consumer, kind, calls, rate, ours=None, lost=0, auditd_us=None):
    return StormFigures(
        consumer,
        kind,
        calls,
        calls / rate,
        rate,
        0,
        1,
        lost,
        True,
        auditd_cpu_us_per_event=auditd_us,
        ours=ours,
    )


def _ours(calls, visible, evicted=0, capacity_before=0, **counters):
    base = dict.fromkeys(STATUS_COUNTERS, 0)
    base.update(records_received=calls * 4, ring_evicted=evicted, events_buffered=calls - evicted)
    base.update(counters)
    return OursFigures(
        OURS_UNICAST, base, capacity_before, calls, calls, visible, evicted, 1.0, 5.0, 0, None, True
    )


def _ring_figures(pid_ms=3.0, rss=500.0, full_ms=800.0, e2e=(4000.0, 1500.0, 300.0)):
    return [
        TableFigures(
            "process_events", 100_000, 70.0, rss, 3, 1.0, full_ms, pid_ms, 900.0, 100_000, *e2e
        )
    ]


def test_targets_pass_when_ours_is_faster_and_complete():
    runs = [
        RunResult(NO_RULES, [_storm(NO_RULES, "connect", 1000, 5000.0)]),
        RunResult(AUDITD, [_storm(AUDITD, "connect", 1000, 1000.0, auditd_us=10.0)]),
        RunResult(SINK, [_storm(SINK, "connect", 1000, 1400.0)]),
        RunResult(OURS_UNICAST, [_storm(OURS_UNICAST, "connect", 1000, 1300.0, _ours(1000, 1000))]),
    ]
    targets = {t.name: t for t in all_targets(runs, _ring_figures(), 100_000, locked=False)}
    cpu = targets["CPU per connect event, ours unicast / auditd"]
    assert (cpu.verdict, cpu.value) == (PASS, "0.50x (5.0 / 10.0 us)")
    assert targets["CPU per exec event, ours unicast / auditd"].verdict == NA
    sink = targets["connect rate, ours unicast / discarding consumer"]
    assert (sink.verdict, sink.value) == (PASS, "0.93x (1,300 / 1,400 calls/s)")
    assert targets["full generate in-process, process_events"].verdict == PASS
    for what in ("SELECT *", "one column", "count(*)"):
        assert targets[f"end to end {what}, process_events"].verdict == PASS
    assert targets["connect rate, ours unicast / auditd"].verdict == PASS
    assert targets["connect rate, ours unicast / auditd"].value == "1.30x"
    assert targets["exec rate, ours unicast / auditd"].verdict == NA
    assert targets["zero loss at default settings"].verdict == PASS
    assert targets["every call made visible as a row (ours unicast, connect)"].verdict == PASS
    assert targets["pid-filtered query over a full ring"].verdict == PASS
    assert targets["memory per buffered event, process_events"].verdict == PASS


def test_speed_goals_scale_to_a_small_ring_and_name_what_failed():
    ring = _ring_figures(full_ms=200.0, e2e=(600.0, 150.0, 50.0))
    ring[0].e2e_error = None
    targets = {t.name: t for t in all_targets([], ring, 10_000, locked=False)}
    generate = targets["full generate in-process, process_events"]
    assert (generate.goal, generate.verdict) == ("<= 90 ms", MISS)
    assert "scaled to a 10,000-event ring" in generate.note
    star = targets["end to end SELECT *, process_events"]
    assert (star.goal, star.verdict) == ("<= 500 ms", MISS)
    assert targets["end to end count(*), process_events"].verdict == PASS
    ring[0].e2e_error = "extension oae_bench_rings did not register within 900 s"
    targets = {t.name: t for t in all_targets([], ring, 10_000, locked=False)}
    star = targets["end to end SELECT *, process_events"]
    assert star.verdict == NA and "did not register" in star.note


def test_rate_target_above_the_no_rules_rate_is_not_applicable():
    """exec: auditd already runs at the rate without audit, so no consumer can be 1.2x it."""
    runs = [
        RunResult(
            NO_RULES,
            [_storm(NO_RULES, "exec", 100, 32.0), _storm(NO_RULES, "connect", 1000, 8896.0)],
        ),
        RunResult(
            AUDITD, [_storm(AUDITD, "exec", 100, 35.0), _storm(AUDITD, "connect", 1000, 3433.0)]
        ),
        RunResult(
            OURS_UNICAST,
            [
                _storm(OURS_UNICAST, "exec", 100, 33.0, _ours(100, 100)),
                _storm(OURS_UNICAST, "connect", 1000, 3411.0, _ours(1000, 1000)),
            ],
        ),
    ]
    targets = {t.name: t for t in all_targets(runs, _ring_figures(), 100_000, locked=False)}
    exec_rate = targets["exec rate, ours unicast / auditd"]
    assert (exec_rate.verdict, exec_rate.value) == (NA, "0.94x")
    assert "with no rules the storm runs at only 0.91x auditd" in exec_rate.note
    connect_rate = targets["connect rate, ours unicast / auditd"]
    assert (connect_rate.verdict, connect_rate.value) == (MISS, "0.99x")
    # A consumer that discards everything no faster than auditd: the target is out of reach.
    runs.append(RunResult(SINK, [_storm(SINK, "connect", 1000, 3500.0)]))
    targets = {t.name: t for t in all_targets(runs, _ring_figures(), 100_000, locked=False)}
    connect_rate = targets["connect rate, ours unicast / auditd"]
    assert connect_rate.verdict == NA
    assert "with a consumer that discards every record the storm runs at only 1.02x" in (
        connect_rate.note
    )
    # Measured above the target anyway (the storms' noise): that is a pass, not n/a.
    runs[2].storms[1] = _storm(OURS_UNICAST, "connect", 1000, 4200.0, _ours(1000, 1000))
    targets = {t.name: t for t in all_targets(runs, _ring_figures(), 100_000, locked=False)}
    assert targets["connect rate, ours unicast / auditd"].verdict == PASS


def test_targets_miss_on_slow_lossy_or_heavy():
    ours = _ours(1000, 990, enobufs=3)
    runs = [
        RunResult(AUDITD, [_storm(AUDITD, "connect", 1000, 1000.0)]),
        RunResult(OURS_UNICAST, [_storm(OURS_UNICAST, "connect", 1000, 1100.0, ours, lost=2)]),
    ]
    ring = _ring_figures(pid_ms=60.0, rss=1500.0, full_ms=2000.0, e2e=(9000.0, 3000.0, 1200.0))
    targets = {t.name: t for t in all_targets(runs, ring, 100_000, locked=False)}
    assert targets["full generate in-process, process_events"].verdict == MISS
    assert targets["end to end count(*), process_events"].verdict == MISS
    assert targets["connect rate, ours unicast / auditd"].verdict == MISS
    loss = targets["zero loss at default settings"]
    assert loss.verdict == MISS
    assert "kernel lost 2" in loss.value and "enobufs 3" in loss.value
    assert "calls without a row 10" in loss.value
    assert targets["every call made visible as a row (ours unicast, connect)"].verdict == MISS
    assert targets["pid-filtered query over a full ring"].verdict == MISS
    assert targets["memory per buffered event, process_events"].verdict == MISS


def test_capacity_evictions_are_not_loss_but_expiry_is():
    # 2000 calls into a 1000-row ring: 1000 visible, 1000 evicted by capacity.
    full = _storm(OURS_UNICAST, "connect", 2000, 1000.0, _ours(2000, 1000, evicted=1000))
    assert not any(loss_figures(full, capacity=1000).values())
    # 500 calls into a 1000-row ring, 20 evicted anyway (expiry): a loss.
    expired = _storm(OURS_UNICAST, "connect", 500, 1000.0, _ours(500, 480, evicted=20))
    assert loss_figures(expired, capacity=1000)["ring evictions not due to capacity"] == 20


def test_a_row_held_in_the_other_ring_is_not_a_call_without_a_row():
    """Issue 12's "calls without a row 1": 2000 connects into a 1000-row socket ring while
    8 other processes' connects came last and one exec row sat in the process ring before.
    audit_status sums both rings, so ring_evicted - buffered_before counted one eviction too
    few; the storm table's own positions account for every call."""
    ours = _ours(2000, 992, evicted=1008 - 1)  # what the summed counters gave
    ours.buffered_before = 1
    summed = _storm(OURS_UNICAST, "connect", 2000, 1000.0, ours)
    assert loss_figures(summed, capacity=1000)["calls without a row"] == 1
    ours = _ours(2000, 992, evicted=storm_rows_evicted(2008, 1000))
    ours.table, ours.table_before, ours.table_appended, ours.table_after = (
        "socket_events",
        0,
        2008,
        1000,
    )
    exact = _storm(OURS_UNICAST, "connect", 2000, 1000.0, ours)
    assert not any(loss_figures(exact, capacity=1000).values())
    ours.table_after = 990  # 10 rows gone beyond what capacity explains: a loss
    assert loss_figures(exact, capacity=1000)["ring evictions not due to capacity"] == 10


def test_locked_targets_say_why_and_summary_says_locked():
    runs = [
        RunResult(AUDITD, [_storm(AUDITD, "usermsg", 1000, 1000.0)]),
        RunResult(OURS_UNICAST, [_storm(OURS_UNICAST, "usermsg", 1000, 1500.0, _ours(1000, None))]),
    ]
    targets = all_targets(runs, _ring_figures(), 100_000, locked=True)
    by_name = {t.name: t for t in targets}
    assert by_name["syscall rate, ours unicast / auditd"].verdict == NA
    assert "locked" in by_name["syscall rate, ours unicast / auditd"].note
    assert by_name["usermsg rate, ours unicast / auditd"].verdict == PASS
    assert "substitute" in by_name["usermsg rate, ours unicast / auditd"].note
    assert by_name["every call made visible as a row"].verdict == NA
    line = summary_line(targets, locked=True, state_ok=True)
    assert line.startswith("bench: 8 PASS, 0 MISS, 5 n/a") and "LOCKED" in line
    assert "restored" in line


def test_json_text_is_plain_json():
    runs = [RunResult(AUDITD, [_storm(AUDITD, "connect", 10, 5.0)])]
    document = json.loads(json_text({"runs": runs, "best": float("inf")}))
    assert document["runs"][0]["storms"][0]["calls"] == 10
    assert document["best"] is None


def test_bench_module_help_runs():
    done = subprocess.run(
        [os.sys.executable, "-m", "osquery_audit_ext.bench", "--help"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
    )
    assert done.returncode == 0 and "--calls" in done.stdout and "--json" in done.stdout
