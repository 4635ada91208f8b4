"""A private auditd for side-by-side runs: its own config and log in a temp folder.

Started with `-s nochange` so it never touches the enabled flag; stopped by the pid we
started, and waited for, so the audit pid is free again afterwards.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from ..audit.control import AuditControl

AUDITD_CONF = """\
local_events = yes
write_logs = yes
log_file = {log}
log_group = root
log_format = RAW
flush = INCREMENTAL_ASYNC
freq = 50
max_log_file = 1024
num_logs = 2
priority_boost = 4
name_format = NONE
max_log_file_action = IGNORE
space_left = 75
space_left_action = IGNORE
admin_space_left = 50
admin_space_left_action = IGNORE
disk_full_action = IGNORE
disk_error_action = IGNORE
tcp_client_max_idle = 0
distribute_network = no
q_depth = 2000
overflow_action = SYSLOG
max_restarts = 10
plugin_dir = {plugins}
end_of_event_timeout = 2
"""


class PrivateAuditd:
    """Run Debian's auditd as the audit daemon for the duration of a `with` block."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self.dir = Path(tempfile.mkdtemp(prefix="oae-auditd-"))
        self.log_path = self.dir / "audit.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PrivateAuditd:
        binary = shutil.which("auditd") or "/usr/sbin/auditd"
        plugins = self.dir / "plugins"
        plugins.mkdir()
        conf = self.dir / "auditd.conf"
        conf.write_text(AUDITD_CONF.format(log=self.log_path, plugins=plugins))
        conf.chmod(0o640)
        self.proc = subprocess.Popen(
            [binary, "-n", "-s", "nochange", "-c", str(self.dir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + self.timeout
        with AuditControl() as control:
            while control.get_status().pid != self.proc.pid:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    err = (
                        self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                    )
                    self.__exit__(None, None, None)
                    raise RuntimeError(
                        f"auditd did not register as the audit daemon: {err.strip()}"
                    )
                time.sleep(0.05)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_lines(self) -> list[str]:
        try:
            return self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
