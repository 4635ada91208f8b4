"""A `strace -f` log read into the system calls it records: who made each, with which ABI,
when, with what arguments and result.

Understood: `strace -f [-n] [-t|-tt|-ttt] [-y] [-o FILE]` output, with or without the pid
prefix, `<unfinished ...>`/`<... NAME resumed>` pairs, `-T` durations, signals, exits and
personality notices. The ABI of a call (b64, or b32 on a machine with a 32-bit compat ABI) comes
from its syscall number when the log has them (`-n`: the machine whose table gives that number
that name), else from names only one ABI has (mmap2, setuid32...), else from the process's
previous calls. Processes inherit their parent's executable, working directory and ABI at
clone/fork/vfork; execve changes the first two. Syscall names are those of the generated
syscall tables (audit/syscalls.py), which strace shares.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..errors import ConfigError
from .syscalls import COMPAT_MACHINE, canonical_machine, syscall_name, syscall_number

# `PID `, `[pid PID] `, then `-t/-tt/-ttt` time, then `-n`'s `[ NR] `, then the event.
LINE_RE = re.compile(
    r"^(?:\[pid\s+(?P<pid1>\d+)\]\s*|(?P<pid2>\d+)\s+)?"
    r"(?:(?P<ts>\d+\.\d+|\d\d:\d\d:\d\d(?:\.\d+)?)\s+)?"
    r"(?:\[\s*(?P<nr>\d+)\]\s+)?(?P<rest>.*)$"
)
CALL_RE = re.compile(r"^(?P<name>[a-z_][a-z0-9_]*)\((?P<tail>.*)$", re.S)
RESUMED_RE = re.compile(r"^<\.\.\. (?P<name>[a-z_][a-z0-9_]*) resumed>\s?(?P<tail>.*)$", re.S)
RESULT_RE = re.compile(
    r"^(?P<ret>-?\d+|0x[0-9a-fA-F]+|\?)(?:<(?P<path>.*?)>)?"
    r"(?:\s+(?P<errno>E[A-Z0-9]+)\b)?"
)
PERSONALITY_RE = re.compile(r"^\[ Process PID=(?P<pid>\d+) runs in (?P<mode>\S+) bit mode\. \]$")
EXIT_RE = re.compile(r"^\+\+\+ (?:exited with (?P<code>\d+)|killed by (?P<signal>\S+)).*\+\+\+$")
RETURN_RE = re.compile(r"\)\s+= ")
UNFINISHED = " <unfinished ...>"
FD_PATH_RE = re.compile(r"^(?:-?\d+|AT_FDCWD)<(?P<path>.*)>$", re.S)
CLONES = frozenset({"clone", "clone3", "fork", "vfork"})
EXECS = frozenset({"execve", "execveat"})
# strace names (the kernel's) that libaudit spells differently on some machines.
STRACE_ALIASES = {"pread64": "pread", "pwrite64": "pwrite"}
SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "v": "\v", "f": "\f", '"': '"', "\\": "\\"}


@dataclass
class Call:
    """One system call as the log shows it. `result` is the return value text ("0", "-1",
    "?"), None when the process ended before the call returned; `errno` is set on failure.
    `exe` and `cwd` are the process's at the time (None when the log never showed them)."""

    pid: int
    name: str
    abi: str  # "b64" or "b32"
    time: float | None
    args: tuple[str, ...]
    result: str | None
    errno: str | None = None
    result_path: str | None = None  # -y's decoration of a returned fd
    exe: str | None = None
    cwd: str | None = None
    audit_name: str | None = None  # the name auditctl knows it by in its ABI, None if none

    @property
    def failed(self) -> bool:
        return self.errno is not None or (self.result is not None and self.result.startswith("-"))


@dataclass
class Process:
    """What the log tells of one process: its ABI, executable and working directory."""

    abi: str | None = None
    exe: str | None = None
    cwd: str | None = None
    calls: list[Call] = field(default_factory=list)


@dataclass
class StraceLog:
    """Every call of the log in order, the machine it was read for, the time it spans (None
    without timestamps), the first program executed and the lines that were not understood."""

    machine: str
    calls: list[Call]
    processes: int
    duration: float | None
    program: str | None
    unparsed: list[tuple[int, str]]
    exit_code: int | None = None

    @property
    def compat_machine(self) -> str | None:
        return COMPAT_MACHINE.get(self.machine)


def split_args(text: str) -> tuple[str, ...]:
    """The top-level arguments of strace's `a, "b, c", [d, e], {f=1, g=2}` text."""
    args: list[str] = []
    depth = 0
    current: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == '"':
            end = i + 1
            while end < len(text) and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            current.append(text[i : end + 1])
            i = end + 1
            continue
        if char in "([{<":
            depth += 1
        elif char in ")]}>":
            depth -= 1
        if char == "," and depth == 0:
            args.append("".join(current).strip())
            current = []
        else:
            current.append(char)
        i += 1
    last = "".join(current).strip()
    if last or args:
        args.append(last)
    return tuple(args)


def decode_string(arg: str) -> str | None:
    """The text of a quoted strace string (C escapes undone), None when `arg` is not one or
    strace cut it short (`"..."...`)."""
    if not arg.startswith('"') or not arg.endswith('"') or len(arg) < 2:
        return None
    return unescape(arg[1:-1])


def unescape(body: str) -> str:
    """strace's C escapes (\\n, \\", \\\\, \\ooo, \\xHH) back to text (bytes as surrogates)."""
    out = bytearray()
    i = 0
    while i < len(body):
        char = body[i]
        if char != "\\" or i + 1 == len(body):
            out += char.encode("utf-8", "surrogateescape")
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in SIMPLE_ESCAPES:
            out += SIMPLE_ESCAPES[nxt].encode()
            i += 2
        elif nxt == "x":
            out.append(int(body[i + 2 : i + 4], 16))
            i += 4
        elif nxt in "01234567":
            digits = re.match(r"[0-7]{1,3}", body[i + 1 :]).group()  # type: ignore[union-attr]
            out.append(int(digits, 8) & 0xFF)
            i += 1 + len(digits)
        else:
            out += nxt.encode("utf-8", "surrogateescape")
            i += 2
    return out.decode("utf-8", "surrogateescape")


def fd_path(arg: str) -> str | None:
    """The path -y shows for an fd or AT_FDCWD argument (`3</etc/passwd>`), else None."""
    match = FD_PATH_RE.match(arg)
    if match is None:
        return None
    return unescape(match.group("path")).removesuffix(" (deleted)")


def audit_syscall_name(machine: str, name: str) -> str | None:
    """The name auditctl's table for `machine` has for strace's `name` (pread64 -> pread on
    x86_64), None when that ABI has no such call."""
    if syscall_number(machine, name) is not None:
        return name
    alias = STRACE_ALIASES.get(name)
    return alias if alias is not None and syscall_number(machine, alias) is not None else None


def _seconds(text: str) -> float:
    if ":" in text:
        hours, minutes, seconds = text.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return float(text)


class _Reader:
    """The state of one pass over a log: processes, calls waiting to resume."""

    def __init__(self, machine: str) -> None:
        self.machine = machine
        self.compat = COMPAT_MACHINE.get(machine)
        self.processes: dict[int, Process] = {}
        self.pending: dict[int, tuple[str, float | None, int | None]] = {}
        self.calls: list[Call] = []
        self.first_time: float | None = None
        self.last_time: float | None = None
        self.first_pid: int | None = None
        self.exit_code: int | None = None

    def process(self, pid: int) -> Process:
        if pid not in self.processes:
            self.processes[pid] = Process()
            if self.first_pid is None:
                self.first_pid = pid
        return self.processes[pid]

    def machine_of(self, abi: str) -> str:
        return self.compat if abi == "b32" and self.compat is not None else self.machine

    def abi_of(self, process: Process, name: str, nr: int | None) -> str:
        """b64/b32 for this call: by its number, then by a name one ABI lacks, then as before."""
        found: str | None = None
        if self.compat is not None:
            native_name = audit_syscall_name(self.machine, name)
            compat_name = audit_syscall_name(self.compat, name)
            if nr is not None:
                native = native_name is not None and syscall_name(self.machine, nr) == native_name
                compat = compat_name is not None and syscall_name(self.compat, nr) == compat_name
            else:
                native, compat = native_name is not None, compat_name is not None
            if native != compat:
                found = "b64" if native else "b32"
        if found is None:
            found = process.abi or "b64"
        process.abi = found
        return found

    def line(self, pid: int, time: float | None, nr: int | None, rest: str) -> bool:
        """Take one event; False when it is not something strace writes."""
        process = self.process(pid)
        if rest.startswith("--- ") and rest.endswith(" ---"):
            return True  # a signal
        exited = EXIT_RE.match(rest)
        if exited:
            if pid == self.first_pid and exited.group("code") is not None:
                self.exit_code = int(exited.group("code"))
            self._flush_pending(pid)
            return True
        personality = PERSONALITY_RE.match(rest)
        if personality:
            mode = personality.group("mode")
            self.process(int(personality.group("pid"))).abi = "b32" if mode == "32" else "b64"
            return True
        resumed = RESUMED_RE.match(rest)
        if resumed:
            head, started, started_nr = self.pending.pop(
                pid, (f"{resumed.group('name')}(", time, nr)
            )
            return self._complete(pid, process, head + resumed.group("tail"), started, started_nr)
        if rest.endswith(UNFINISHED) and CALL_RE.match(rest):
            self._flush_pending(pid)
            self.pending[pid] = (rest[: -len(UNFINISHED)], time, nr)
            return True
        return self._complete(pid, process, rest, time, nr)

    def finish(self) -> None:
        """The end of the log: calls still waiting for their return are calls too."""
        for pid in list(self.pending):
            self._flush_pending(pid)

    def _flush_pending(self, pid: int) -> None:
        """A call that never returned (the process exited or was killed in it)."""
        if pid in self.pending:
            head, time, nr = self.pending.pop(pid)
            self._complete(pid, self.process(pid), head, time, nr, returned=False)

    def _complete(
        self,
        pid: int,
        process: Process,
        text: str,
        time: float | None,
        nr: int | None,
        *,
        returned: bool = True,
    ) -> bool:
        match = CALL_RE.match(text)
        if match is None:
            return False
        name, tail = match.group("name"), match.group("tail")
        result = errno = result_path = None
        if returned:
            ends = list(RETURN_RE.finditer(tail))
            cut = ends[-1].start() if ends else -1
            if cut < 0:
                if "<detached" in tail or "<unavailable>" in tail:
                    cut = tail.rfind(")")
                    returned = False
                else:
                    return False
            if returned:
                found = RESULT_RE.match(tail[ends[-1].end() :])
                if found is None:
                    return False
                result, errno = found.group("ret"), found.group("errno")
                if found.group("path") is not None:
                    result_path = unescape(found.group("path")).removesuffix(" (deleted)")
            tail = tail[:cut]
        elif tail.endswith(")"):
            tail = tail[:-1]
        args = split_args(tail)
        abi = self.abi_of(process, name, nr)
        call = Call(pid, name, abi, time, args, result, errno, result_path)
        call.audit_name = audit_syscall_name(self.machine_of(abi), name)
        self._track(pid, process, call)
        call.exe, call.cwd = process.exe, process.cwd
        process.calls.append(call)
        self.calls.append(call)
        return True

    def _track(self, pid: int, process: Process, call: Call) -> None:
        """Follow the working directory, the executable and children (from this call)."""
        for arg in call.args[:1]:
            if arg.startswith("AT_FDCWD<"):
                process.cwd = fd_path(arg)
                self._resolve_exe(process)
        if call.failed or call.result is None:
            return
        if call.name == "chdir" and call.args:
            target = decode_string(call.args[0])
            if target is not None:
                process.cwd = self.absolute(process, target)
        elif call.name == "fchdir" and call.args:
            process.cwd = fd_path(call.args[0]) or process.cwd
        elif call.name in EXECS and call.args:
            # execveat(dirfd, path, ...): a line cut short may lack the path.
            at = 1 if call.name == "execveat" else 0
            target = decode_string(call.args[at]) if len(call.args) > at else None
            if target is not None:
                process.exe = self.absolute(process, target)
            process.abi = None  # the new program's ABI shows in its next calls
        elif call.name in CLONES and call.result.isdigit() and int(call.result) > 0:
            self._inherit(process, self.process(int(call.result)))

    def _resolve_exe(self, process: Process) -> None:
        """A program started by a relative path before the log showed the working directory:
        make it absolute now, for the calls already read too (no chdir came in between, or
        the cwd would have been known)."""
        relative = process.exe
        if relative is None or relative.startswith("/") or process.cwd is None:
            return
        process.exe = self.absolute(process, relative)
        for earlier in process.calls:
            if earlier.exe == relative:
                earlier.exe = process.exe

    @staticmethod
    def _inherit(parent: Process, child: Process) -> None:
        """A child starts as its parent: fill in what its own calls had not shown yet."""
        child.abi = child.abi or parent.abi
        child.cwd = child.cwd or parent.cwd
        if child.exe is None:
            child.exe = parent.exe
            for earlier in child.calls:
                if earlier.exe is None:
                    earlier.exe = parent.exe
        for earlier in child.calls:
            if earlier.cwd is None:
                earlier.cwd = child.cwd

    @staticmethod
    def absolute(process: Process, path: str) -> str:
        if path.startswith("/") or process.cwd is None:
            return posixpath.normpath(path) if path.startswith("/") else path
        return posixpath.normpath(posixpath.join(process.cwd, path))


def read_strace_log(lines: Iterable[str], machine: str, source: str = "strace log") -> StraceLog:
    """Read a `strace -f` log for `machine` ("x86_64"...); ConfigError when it holds no call."""
    canonical = canonical_machine(machine)
    if canonical is None:
        raise ConfigError(f"unknown machine {machine!r}")
    reader = _Reader(canonical)
    unparsed: list[tuple[int, str]] = []
    for lineno, raw in enumerate(lines, start=1):
        text = raw.rstrip("\n")
        if not text.strip():
            continue
        match = LINE_RE.match(text)
        assert match is not None  # every part is optional
        pid_text = match.group("pid1") or match.group("pid2")
        pid = int(pid_text) if pid_text else 0
        time = _seconds(match.group("ts")) if match.group("ts") else None
        nr = int(match.group("nr")) if match.group("nr") else None
        if time is not None:
            reader.first_time = time if reader.first_time is None else reader.first_time
            reader.last_time = time
        if not reader.line(pid, time, nr, match.group("rest")):
            unparsed.append((lineno, text))
    reader.finish()
    if not reader.calls:
        first = f" (line {unparsed[0][0]}: {unparsed[0][1][:80]!r})" if unparsed else ""
        raise ConfigError(f"{source}: no system calls found: not a `strace -f` log{first}")
    duration = None
    if reader.first_time is not None and reader.last_time is not None:
        duration = max(reader.last_time - reader.first_time, 0.0)
    first_process = reader.processes.get(reader.first_pid or 0)
    program = None
    if first_process is not None:
        program = next(
            (c.exe for c in first_process.calls if c.name in EXECS and not c.failed and c.exe),
            None,
        )
    return StraceLog(
        machine=canonical,
        calls=reader.calls,
        processes=len(reader.processes),
        duration=duration,
        program=program,
        unparsed=unparsed,
        exit_code=reader.exit_code,
    )
