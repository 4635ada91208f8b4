"""CPU time and resident memory of one process, from /proc, to charge costs to it alone."""

from __future__ import annotations

import os
from dataclasses import dataclass

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ProcSample:
    cpu_seconds: float  # utime + stime
    rss_bytes: int

    def __sub__(self, other: ProcSample) -> ProcSample:
        return ProcSample(self.cpu_seconds - other.cpu_seconds, self.rss_bytes - other.rss_bytes)


def parse_stat_cpu(stat: str) -> float:
    """utime + stime in seconds from the text of /proc/PID/stat.

    comm (field 2) may hold spaces and parentheses, so fields are counted after its last ')'.
    """
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of the whole line
    return (utime + stime) / CLOCK_TICKS


def parse_statm_rss(statm: str) -> int:
    """Resident bytes from the text of /proc/PID/statm (second field, in pages)."""
    return int(statm.split()[1]) * PAGE_SIZE


def sample(pid: int | None = None) -> ProcSample:
    """The process's CPU time and RSS now (this process by default)."""
    where = f"/proc/{pid if pid is not None else 'self'}"
    with open(f"{where}/stat") as f:
        cpu = parse_stat_cpu(f.read())
    with open(f"{where}/statm") as f:
        rss = parse_statm_rss(f.read())
    return ProcSample(cpu, rss)
