"""The storm generator: storm.c compiled on the fly with gcc, run as a child process.

A storm is one process making N calls back to back (connect, fork+execve, or audit user
messages); its pid is what the audit records and the table rows are matched on.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..audit.consts import AUDIT_TRUSTED_APP
from . import BenchError

STORM_SOURCE = "storm.c"
_OUTPUT = re.compile(r"calls=(\d+) seconds=([0-9.]+) errors=(\d+)")


@dataclass(frozen=True)
class StormResult:
    """What one storm did: calls made, how long they took, and the storm's pid."""

    kind: str
    calls: int
    seconds: float
    errors: int
    pid: int

    @property
    def rate(self) -> float:
        """Calls per second."""
        return self.calls / self.seconds if self.seconds > 0 else 0.0


def parse_storm_output(text: str) -> tuple[int, float, int]:
    """(calls, seconds, errors) from the storm's `calls=N seconds=S errors=E` line."""
    match = _OUTPUT.search(text)
    if match is None:
        raise BenchError(f"the storm generator printed no result: {text.strip()[:200]!r}")
    return int(match.group(1)), float(match.group(2)), int(match.group(3))


def build_storm(directory: Path, compiler: str | None = None) -> Path:
    """Compile storm.c into `directory`; a missing or failing gcc is a BenchError."""
    cc = compiler or shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise BenchError("gcc is needed to build the storm generator (apt-get install gcc)")
    binary = directory / "storm"
    with resources.as_file(resources.files(__package__) / STORM_SOURCE) as source:
        done = subprocess.run(
            [cc, "-O2", "-Wall", "-o", str(binary), str(source)],
            capture_output=True,
            text=True,
        )
    if done.returncode != 0:
        raise BenchError(f"building the storm generator failed: {done.stderr.strip()[:500]}")
    return binary


class Storm:
    """Runs the compiled storm generator; each call blocks until the storm is over."""

    def __init__(self, binary: Path) -> None:
        self.binary = binary

    def _run(self, kind: str, *args: str) -> StormResult:
        process = subprocess.Popen(
            [str(self.binary), kind, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            out, err = process.communicate()
        except BaseException:
            # Interrupted: end the storm we started (by its pid) before going on.
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait()
            raise
        if process.returncode != 0:
            raise BenchError(
                f"storm {kind} failed (exit {process.returncode}): {err.strip()[:300]}"
            )
        calls, seconds, errors = parse_storm_output(out)
        return StormResult(kind, calls, seconds, errors, process.pid)

    def connect(self, calls: int, port: int) -> StormResult:
        return self._run("connect", str(calls), str(port))

    def exec(self, calls: int, path: str) -> StormResult:
        return self._run("exec", str(calls), path)

    def usermsg(self, calls: int, msg_type: int = AUDIT_TRUSTED_APP) -> StormResult:
        return self._run("usermsg", str(calls), str(msg_type))

    @contextlib.contextmanager
    def sink(self) -> Iterator[subprocess.Popen]:
        """The generator as an audit daemon that discards every record, while in the block;
        ended with SIGTERM (by its pid), after which it has given the audit pid back."""
        process = subprocess.Popen(
            [str(self.binary), "sink"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            assert process.stdout is not None
            if process.stdout.readline().strip() != "ready":
                process.wait()
                err = process.stderr.read() if process.stderr else ""
                raise BenchError(f"the discarding consumer did not start: {err.strip()[:300]}")
            yield process
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A loopback TCP port that refuses connections: bound by us, never listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
    finally:
        sock.close()


def exec_target() -> str:
    """The program the exec storm runs: true(1), which exits 0 at once."""
    for candidate in (shutil.which("true"), "/bin/true", "/usr/bin/true"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise BenchError("no true(1) program to exec")
