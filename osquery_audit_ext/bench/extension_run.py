"""Our side of the comparison: the real extension, launched by an embedded core as osquery
would launch it, with a temp config; its CPU and memory are read from /proc by its pid.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from ..app.launched_core import running_core
from ..app.settings import Settings, settings_from_dict
from ..core.manager import CoreError, EmbeddedCore
from ..core.sql import SQLError
from ..errors import AuditExtError
from ..sdk._toml import toml
from . import BenchError
from .procstat import ProcSample, sample
from .settle import wait_settled

BENCH_KEY = "oae_bench"
REGISTER_TIMEOUT = 60.0

# Counters of audit_status the benchmark reads before and after each storm.
STATUS_COUNTERS = (
    "records_received",
    "lost_since_start",
    "enobufs",
    "ring_evicted",
    "events_timed_out",
    "events_dropped_inflight",
    "parse_errors",
    "serial_gaps",
    "events_buffered",
)


def bench_config_text(
    mode: str, capacity: int, key: str = BENCH_KEY, state_dir: Path | None = None
) -> str:
    """The extension's TOML config for a benchmark run (refused connects are audited too).

    A run gets a fresh state dir of its own (`state_dir`), so its durable ring starts empty
    and no run reads back another's events."""
    state = f'\n[state]\ndir = "{state_dir}"\n' if state_dir is not None else ""
    return (
        f'mode = "{mode}"\n'
        f'key = "{key}"\n'
        "\n[events]\nprocess = true\nsockets = true\nsocket_failed = true\n"
        f"\n[ring]\ncapacity = {capacity}\n" + state
    )


def bench_settings(mode: str, capacity: int, key: str = BENCH_KEY) -> Settings:
    """The settings that config gives, to build the very same rule set for auditd's run."""
    return settings_from_dict(toml.loads(bench_config_text(mode, capacity, key)))


class ExtensionUnderTest:
    """A running extension process and the core that launched it."""

    def __init__(self, core: EmbeddedCore, process: subprocess.Popen) -> None:
        self.core = core
        self.process = process

    @property
    def pid(self) -> int:
        return self.process.pid

    def sample(self) -> ProcSample:
        if self.process.poll() is not None:
            raise BenchError(f"the extension exited with status {self.process.returncode}")
        return sample(self.pid)

    def query(self, sql: str) -> list[dict[str, str]]:
        try:
            return self.core.query(sql).rows
        except SQLError as exc:
            raise BenchError(f"query failed: {sql}: {exc}") from None

    def count(self, sql: str) -> int:
        """The single integer a `SELECT count(*) ...` query returns."""
        rows = self.query(sql)
        return int(next(iter(rows[0].values()))) if rows else 0

    def status(self) -> dict[str, str]:
        rows = self.query("SELECT * FROM audit_status")
        if not rows:
            raise BenchError("audit_status returned no row")
        return rows[0]

    def counters(self) -> dict[str, int]:
        status = self.status()
        return {name: int(status.get(name) or 0) for name in STATUS_COUNTERS}

    def timed_query(self, sql: str, repeat: int) -> tuple[float, int]:
        """Best wall time of `repeat` runs of `sql` through the core, and its row count."""
        best = float("inf")
        rows = 0
        for _ in range(repeat):
            start = time.perf_counter()
            rows = len(self.query(sql))
            best = min(best, time.perf_counter() - start)
        return best, rows

    def wait_drained(self, timeout: float, settle: float = 1.0, trickle: int = 200) -> bool:
        """Wait until records_received grows by at most `trickle` records in `settle` s."""
        return wait_settled(
            lambda: self.counters()["records_received"],
            settle=settle,
            trickle=trickle,
            timeout=timeout,
        )


@contextlib.contextmanager
def running_extension(
    mode: str, capacity: int, workdir: Path, key: str = BENCH_KEY
) -> Iterator[ExtensionUnderTest]:
    """An embedded core with our extension launched as a subprocess, stopped on exit.

    Stopping asks the extension to shut down (it removes its rules and gives back the audit
    pid), then ends the process by its pid if it lingers.
    """
    directory = workdir / f"ext-{mode}"
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "bench.toml"
    state_dir = directory / "state"
    shutil.rmtree(state_dir, ignore_errors=True)
    config.write_text(bench_config_text(mode, capacity, key, state_dir))
    started = False
    try:
        with running_core(
            str(config), register_timeout=REGISTER_TIMEOUT, interval=3.0, ping_timeout=30.0
        ) as local:
            started = True
            yield ExtensionUnderTest(local.core, local.extension)
    except (CoreError, AuditExtError) as exc:
        if started:
            raise
        raise BenchError(f"our extension did not start ({mode}): {exc}") from None
