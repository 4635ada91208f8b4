"""`daemon --config_path` end to end on the real kernel: scheduled consumer queries log each
exec exactly once, across several intervals and a kill -9 of the extension (the core
respawns it), each consumer gets its own full copy, and eids keep growing.

Execs the extension had read but no consumer had been given when it was killed come back
from the durable ring with their eids and are delivered once after the respawn.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.harness import wait_until

from osquery_audit_ext.sdk.client import QueryError, query

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parents[2]
TRUE = shutil.which("true") or "/bin/true"


class Daemon:
    """`osquery-audit-ext daemon` in its own process, stopped by pid with SIGTERM."""

    def __init__(self, tmp: Path, schedule: dict, events: str = "process = true") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="oae-d"))  # short: sun_path is 107 bytes
        self.socket = str(self.dir / "osquery.em")
        self.logs = tmp / "logs"
        self.key = f"oaetest_daemon_{os.getpid()}"
        config = tmp / "ext.toml"
        config.write_text(
            f'key = "{self.key}"\n[events]\n{events}\n'
            "[reader]\nevent_timeout = 1.0\npid_check_interval = 1.0\n"
        )
        osquery_config = tmp / "osquery.conf"
        osquery_config.write_text(json.dumps(schedule))
        self.stderr = open(tmp / "daemon.stderr", "w+")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "osquery_audit_ext",
                "daemon",
                "--config",
                str(config),
                "--config_path",
                str(osquery_config),
                "--logger_path",
                str(self.logs),
                "--socket",
                self.socket,
                "--interval",
                "1",
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=self.stderr,
        )

    def query(self, sql: str) -> list[dict[str, str]]:
        return query(self.socket, sql, timeout=30).rows

    def extension_pid(self) -> int | None:
        """The pid of the audit extension, once it is registered and the only child."""
        if self.process.poll() is not None:
            self.stderr.seek(0)
            raise AssertionError(f"daemon exited: {self.stderr.read()}")
        children = []
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            try:
                children += (task / "children").read_text().split()
            except OSError:
                continue  # a thread that just ended
        try:
            rows = self.query(
                "SELECT name FROM osquery_extensions WHERE name = 'osquery_audit_ext'"
            )
        except QueryError:
            return None
        return int(children[0]) if rows and len(children) == 1 else None

    def results(self) -> list[dict]:
        path = self.logs / "osqueryd.results.log"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def daemon_factory(kernel_rw, audit_enabled, tmp_path) -> Iterator:
    # audit_enabled: audit is on before the extension starts, so the one killed with -9
    # changed no setting that a clean exit would have had to put back.
    started: list[Daemon] = []

    def start(schedule: dict, events: str = "process = true") -> Daemon:
        daemon = Daemon(tmp_path, schedule, events)
        started.append(daemon)  # stopped at teardown even when it never registers
        wait_until(daemon.extension_pid, 60, "the audit extension to register")
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


def run_batch(token: str, batch: int, count: int = 5) -> list[str]:
    """`count` execs of true, each with a unique argument; returns the arguments."""
    marks = [f"{token}-b{batch}-{i}" for i in range(count)]
    for mark in marks:
        subprocess.run([TRUE, mark], check=True)
    return marks


def logged(daemon: Daemon, name: str, token: str) -> Counter:
    """How many times each exec's argument was logged as "added" under a query name."""
    found: Counter = Counter()
    for line in daemon.results():
        if line["name"] == name and line["action"] == "added":
            for part in line["columns"]["cmdline"].split():
                if part.startswith(token):
                    found[part] += 1
    return found


def test_each_exec_once_per_consumer_across_intervals_and_a_kill(daemon_factory):
    token = f"oaemark{os.getpid()}x{int(time.time())}"
    select = (
        "SELECT pid, cmdline, eid FROM process_events WHERE consumer = '{}' AND cmdline LIKE '%{}%'"
    )
    schedule = {
        "schedule": {
            "execs_a": {"query": select.format("execs_a", token), "interval": 2},
            "execs_b": {"query": select.format("execs_b", token), "interval": 3},
            "execs_all": {  # no consumer: the whole ring each run, as before
                "query": f"SELECT cmdline FROM process_events WHERE cmdline LIKE '%{token}%'",
                "interval": 2,
            },
        }
    }
    daemon = daemon_factory(schedule)

    def delivered(marks: list[str], *names: str) -> bool:
        return all(set(marks) <= set(logged(daemon, n, token)) for n in names)

    before: list[str] = []
    for batch in (1, 2):  # several intervals apart
        marks = run_batch(token, batch)
        wait_until(lambda m=marks: delivered(m, "execs_a", "execs_b"), 30, f"batch {batch}")
        before += marks
    eids_before = [
        int(line["columns"]["eid"]) for line in daemon.results() if line["name"] == "execs_a"
    ]
    # Read into the ring (so also into the durable ring) but maybe not yet given to either
    # consumer when the extension is killed: the respawn reads them back.
    buffered = run_batch(token, 3)
    wait_until(
        lambda: (
            set(buffered)
            <= {
                m
                for row in daemon.query(
                    f"SELECT cmdline FROM process_events WHERE cmdline LIKE '%{token}%'"
                )
                for m in buffered
                if m in row["cmdline"]
            }
        ),
        30,
        "batch 3 in the ring",
    )

    killed = daemon.extension_pid()
    os.kill(killed, signal.SIGKILL)
    wait_until(lambda: daemon.extension_pid() not in (None, killed), 60, "the core to respawn it")
    after = run_batch(token, 4)
    wait_until(lambda: delivered(after, "execs_a", "execs_b"), 30, "batch 4")
    time.sleep(4)  # a few more runs of every query: nothing may come twice

    for name in ("execs_a", "execs_b"):
        counts = logged(daemon, name, token)
        every = before + buffered + after
        assert {m: counts[m] for m in every} == dict.fromkeys(every, 1), name
    # Without a consumer the ring comes back every run: the reason consumers exist.
    assert logged(daemon, "execs_all", token)[before[0]] >= 2
    eids_after = [
        int(line["columns"]["eid"])
        for line in daemon.results()
        if line["name"] == "execs_a" and any(m in line["columns"]["cmdline"] for m in after)
    ]
    assert min(eids_after) > max(eids_before)
    lines = [line for line in daemon.results() if line["name"] == "execs_a"]
    assert [line["counter"] for line in lines] == sorted(line["counter"] for line in lines)
    consumers = {
        row["consumer"]: row
        for row in daemon.query("SELECT * FROM audit_consumers WHERE table_name = 'process_events'")
    }
    assert {"execs_a", "execs_b"} <= set(consumers)
    assert int(consumers["execs_a"]["delivered"]) >= len(before + buffered + after)


def test_the_shipped_packs_log_no_event_twice(daemon_factory, tmp_path):
    token = f"oaepack{os.getpid()}x{int(time.time())}"
    packs = {}
    for path in sorted((ROOT / "packs").glob("*.conf")):
        pack = json.loads(path.read_text())
        for spec in pack["queries"].values():
            spec["interval"] = 2  # the shipped queries, only more often
        copy = tmp_path / path.name
        copy.write_text(json.dumps(pack))
        packs[path.stem] = str(copy)
    daemon = daemon_factory({"packs": packs}, events="process = true\nsockets = true")
    marks = run_batch(token, 1)
    wait_until(
        lambda: set(marks) <= set(logged(daemon, "pack_audit-process_process_events", token)),
        30,
        "the execs in the process pack's results",
    )
    marks += run_batch(token, 2)
    time.sleep(6)  # three more runs of every pack query
    counts = logged(daemon, "pack_audit-process_process_events", token)
    assert {m: counts[m] for m in marks} == dict.fromkeys(marks, 1)
    seen: Counter = Counter()
    for line in daemon.results():
        eid = line["columns"].get("eid")
        if eid is not None and line["action"] == "added":
            seen[(line["name"], eid)] += 1
    assert seen and max(seen.values()) == 1, [k for k, v in seen.items() if v > 1]
