"""Audit rules for what a traced program did: strace log -> profile -> categories -> rules.

A profile counts each syscall per ABI (calls, failures) and files it in a category. For the
security-relevant categories the program used (exec, network, file rename/unlink/chmod/chown/
link/xattr, privilege change, module load, ptrace, mount, kexec) one rule per ABI covers the
whole category (b64, and b32 where the machine has a compat ABI, each with the calls that ABI
has), so a sibling call (renameat2 for rename) is not missed. Files the program wrote (opened
for writing, created, renamed, removed, chmod/chown-ed) outside /proc, /sys, /dev and the
temporary directories get a write/attribute watch. Each rule is built by the rule parser
(parse_rule) and printed as `auditctl -l` prints it (format_rule), so `rules load` and
`auditctl -R` accept the output.

Each rule carries the events it would have produced for the traced run (the calls it matches,
exact for the log) and an estimate of the records (the kernel writes SYSCALL, PROCTITLE and
EOE for every event, plus EXECVE, CWD, PATH and SOCKADDR records by call; not counted: the
BPRM_FCAPS record of an exec by root), and records/s over the run's duration: rules above the
budget are flagged.
"""

from __future__ import annotations

import posixpath
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ...errors import RuleSyntaxError
from ..strace_log import Call, StraceLog, decode_string, fd_path
from ..syscalls import syscall_number
from .format import format_rule
from .parse import parse_rule

# Categories whose use gets a rule, in output order: (name, what it is, its syscalls).
RULE_CATEGORIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("exec", "program execution", ("execve", "execveat")),
    ("network-connect", "outgoing connections", ("connect",)),
    ("network-bind", "listening sockets", ("bind", "listen")),
    ("network-accept", "accepted connections", ("accept", "accept4")),
    ("file-rename", "files renamed", ("rename", "renameat", "renameat2")),
    ("file-unlink", "files removed", ("unlink", "unlinkat", "rmdir")),
    ("file-chmod", "permission changes", ("chmod", "fchmod", "fchmodat")),
    (
        "file-chown",
        "owner changes",
        ("chown", "fchown", "lchown", "fchownat", "chown32", "fchown32", "lchown32"),
    ),
    ("file-link", "links created", ("link", "linkat", "symlink", "symlinkat")),
    (
        "file-xattr",
        "extended attribute changes",
        ("setxattr", "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr"),
    ),
    (
        "privilege",
        "privilege changes",
        (
            "setuid",
            "setgid",
            "setreuid",
            "setregid",
            "setresuid",
            "setresgid",
            "setfsuid",
            "setfsgid",
            "setgroups",
            "setuid32",
            "setgid32",
            "setreuid32",
            "setregid32",
            "setresuid32",
            "setresgid32",
            "setfsuid32",
            "setfsgid32",
            "setgroups32",
            "capset",
        ),
    ),
    ("module", "kernel module load/unload", ("init_module", "finit_module", "delete_module")),
    ("ptrace", "tracing other processes", ("ptrace", "process_vm_writev")),
    ("mount", "mounts", ("mount", "umount", "umount2", "pivot_root", "chroot")),
    ("kexec", "kernel replacement", ("kexec_load", "kexec_file_load")),
)
# Categories shown in the profile only (no rule unless --all).
PROFILE_CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("file-open", ("open", "openat", "openat2", "creat")),
    ("file-write", ("truncate", "ftruncate", "truncate64", "ftruncate64", "mkdir", "mkdirat")),
    ("file-write", ("mknod", "mknodat")),
    (
        "process",
        ("clone", "clone3", "fork", "vfork", "exit", "exit_group", "wait4", "waitid", "kill"),
    ),
    ("process", ("tkill", "tgkill")),
    (
        "network",
        (
            "socket",
            "socketpair",
            "sendto",
            "recvfrom",
            "sendmsg",
            "recvmsg",
            "shutdown",
            "getsockopt",
            "setsockopt",
            "getsockname",
            "getpeername",
            "socketcall",
        ),
    ),
    ("memory", ("mmap", "mmap2", "munmap", "mprotect", "brk", "mremap", "madvise")),
)
CATEGORY_OF: dict[str, str] = {
    name: category
    for category, names in (
        *((category, names) for category, _, names in RULE_CATEGORIES),
        *PROFILE_CATEGORIES,
    )
    for name in names
}
DESCRIPTIONS = {category: text for category, text, _ in RULE_CATEGORIES}

# Where the paths a call changes are: (dirfd argument or None, path argument), or ("fd", n).
OPEN_FLAGS_ARG = {"open": 1, "openat": 2, "openat2": 2}
WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND")
CHANGED_PATHS: dict[str, tuple[tuple[int | str | None, int], ...]] = {
    "open": ((None, 0),),
    "openat": ((0, 1),),
    "openat2": ((0, 1),),
    "creat": ((None, 0),),
    "truncate": ((None, 0),),
    "truncate64": ((None, 0),),
    "ftruncate": (("fd", 0),),
    "ftruncate64": (("fd", 0),),
    "rename": ((None, 0), (None, 1)),
    "renameat": ((0, 1), (2, 3)),
    "renameat2": ((0, 1), (2, 3)),
    "unlink": ((None, 0),),
    "unlinkat": ((0, 1),),
    "rmdir": ((None, 0),),
    "chmod": ((None, 0),),
    "fchmodat": ((0, 1),),
    "fchmod": (("fd", 0),),
    "chown": ((None, 0),),
    "lchown": ((None, 0),),
    "chown32": ((None, 0),),
    "lchown32": ((None, 0),),
    "fchownat": ((0, 1),),
    "fchown": (("fd", 0),),
    "fchown32": (("fd", 0),),
    "link": ((None, 1),),
    "linkat": ((2, 3),),
    "symlink": ((None, 1),),
    "symlinkat": ((1, 2),),
    "mkdir": ((None, 0),),
    "mkdirat": ((0, 1),),
    "mknod": ((None, 0),),
    "mknodat": ((0, 1),),
    "setxattr": ((None, 0),),
    "lsetxattr": ((None, 0),),
    "removexattr": ((None, 0),),
    "lremovexattr": ((None, 0),),
    "fsetxattr": (("fd", 0),),
    "fremovexattr": (("fd", 0),),
}
# Files written under these are not watched (pseudo file systems, temporary files).
EXCLUDED_DIRS: tuple[str, ...] = ("/proc", "/sys", "/dev", "/tmp", "/var/tmp", "/run/user")
# More distinct files written in one directory than this: watch the directory instead.
WATCH_DIR_THRESHOLD = 8

# Records per event beyond SYSCALL + PROCTITLE + EOE (kernel/auditsc.c: audit_log_exit).
BASE_RECORDS = 3
EXTRA_RECORDS: dict[str, int] = {
    **dict.fromkeys(("execve", "execveat"), 4),  # EXECVE, CWD, PATH (program, loader)
    **dict.fromkeys(("connect", "bind", "accept", "accept4"), 1),  # SOCKADDR
    **dict.fromkeys(("rename", "renameat", "renameat2"), 5),  # CWD, 4 PATH (dirs, names)
    **dict.fromkeys(
        ("unlink", "unlinkat", "rmdir", "link", "linkat", "symlink", "symlinkat"), 3
    ),  # CWD, PATH (dir, name)
    **dict.fromkeys(("mkdir", "mkdirat", "mknod", "mknodat", "creat"), 3),
    **dict.fromkeys(
        (
            "open",
            "openat",
            "openat2",
            "chmod",
            "fchmodat",
            "chown",
            "lchown",
            "chown32",
            "lchown32",
            "fchownat",
            "truncate",
            "truncate64",
            "setxattr",
            "lsetxattr",
            "removexattr",
            "lremovexattr",
            "mount",
            "umount",
            "umount2",
            "chroot",
            "pivot_root",
        ),
        2,
    ),  # CWD, PATH
    **dict.fromkeys(("init_module", "finit_module"), 1),  # KERN_MODULE
}


@dataclass(frozen=True)
class ProfileRow:
    """One syscall of one ABI: how often, how often it failed, its category."""

    name: str
    abi: str
    calls: int
    failed: int
    category: str
    known: bool  # auditctl's table for that ABI has it
    writes: int = 0  # calls that changed files (opened for writing, renamed...)


@dataclass(frozen=True)
class Suggestion:
    """One proposed rule: its text, what it covers, and what it would have cost this run."""

    text: str
    category: str
    events: int
    records: int
    rate: float | None  # records/s over the run, None without timestamps
    over_budget: bool
    note: str = ""


@dataclass(frozen=True)
class Options:
    """What the user asked for: key, scoping, budget, every syscall, excluded directories."""

    key: str = "suggested"
    exe: str | None = None  # -F exe= on every rule
    auid: str | None = None  # -F auid= on every rule
    budget: float = 100.0  # records/s per rule
    all: bool = False
    excluded_dirs: tuple[str, ...] = EXCLUDED_DIRS
    resolve: Callable[[str], str] = field(default=lambda path: path)  # exe path -> real path


@dataclass
class Proposal:
    profile: list[ProfileRow]
    rules: list[Suggestion]
    unresolved_writes: int = 0
    unwatchable: tuple[str, ...] = ()  # written paths a rules file line cannot hold


def category_of(name: str) -> str:
    return CATEGORY_OF.get(name, "other")


def writes(call: Call) -> bool:
    """True when the call changes a file (open-type calls: only when opened for writing)."""
    if call.name not in CHANGED_PATHS:
        return False
    if call.name in OPEN_FLAGS_ARG:
        index = OPEN_FLAGS_ARG[call.name]
        flags = call.args[index] if len(call.args) > index else ""
        return any(flag in flags for flag in WRITE_FLAGS)
    return True


def changed_paths(call: Call) -> list[str | None]:
    """The absolute paths a changing call touched (None where the log cannot tell)."""
    if not writes(call):
        return []
    if call.name in OPEN_FLAGS_ARG or call.name == "creat":
        if call.result_path and call.result_path.startswith("/"):
            return [posixpath.normpath(call.result_path)]
    found: list[str | None] = []
    for where, index in CHANGED_PATHS[call.name]:
        arg = call.args[index] if len(call.args) > index else ""
        if where == "fd":
            found.append(fd_path(arg))
            continue
        path = decode_string(arg)
        if path is None:
            found.append(None)
            continue
        if path.startswith("/"):
            found.append(posixpath.normpath(path))
            continue
        base = call.cwd
        if isinstance(where, int) and len(call.args) > where:
            dirfd = call.args[where]
            base = (fd_path(dirfd) or base) if dirfd.startswith("AT_FDCWD") else fd_path(dirfd)
        found.append(posixpath.normpath(posixpath.join(base, path)) if base else None)
    return found


def profile(log: StraceLog) -> list[ProfileRow]:
    """Each (syscall, ABI) of the log, most called first."""
    calls: Counter[tuple[str, str]] = Counter()
    failed: Counter[tuple[str, str]] = Counter()
    written: Counter[tuple[str, str]] = Counter()
    known: dict[tuple[str, str], bool] = {}
    for call in log.calls:
        key = (call.name, call.abi)
        calls[key] += 1
        failed[key] += call.failed
        written[key] += writes(call)
        known[key] = call.audit_name is not None
    rows = [
        ProfileRow(name, abi, count, failed[key], category_of(name), known[key], written[key])
        for key, count in calls.items()
        for name, abi in [key]
    ]
    return sorted(rows, key=lambda r: (-r.calls, r.name, r.abi))


def printable(text: str) -> bool:
    """Whether a rules file line can hold it: auditctl -R splits words on blanks."""
    return text.isprintable() and not any(c.isspace() for c in text)


def excluded(path: str, dirs: Iterable[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in dirs)


class _Builder:
    def __init__(self, log: StraceLog, options: Options) -> None:
        self.log = log
        self.options = options
        self.abis = [("b64", log.machine)]
        if log.compat_machine is not None:
            self.abis.append(("b32", log.compat_machine))
        for name, value in (("exe", options.exe), ("auid", options.auid)):
            if value is not None and not printable(value):
                raise RuleSyntaxError(f"{name} {value!r}: blanks cannot stand in a rules file")
        exe = None if options.exe is None else options.resolve(options.exe)
        self.calls = [
            c for c in log.calls if exe is None or (c.exe and options.resolve(c.exe) == exe)
        ]
        self.unwatchable: set[str] = set()

    def scope(self) -> str:
        words = []
        if self.options.exe is not None:
            words.append(f"-F exe={self.options.exe}")
        if self.options.auid is not None:
            words.append(f"-F auid={self.options.auid}")
        return " ".join(words)

    def canonical(self, text: str) -> str:
        """The rule as auditctl -l prints it; RuleSyntaxError names the rule if it is bad."""
        try:
            command = parse_rule(text, machine=self.log.machine)
        except RuleSyntaxError as exc:
            raise RuleSyntaxError(f"suggested rule {text!r}: {exc}") from None
        return format_rule(command.rule, machine=self.log.machine)

    def cost(self, matched: list[Call]) -> tuple[int, int, float | None, bool]:
        records = sum(BASE_RECORDS + EXTRA_RECORDS.get(c.audit_name or c.name, 0) for c in matched)
        duration = self.log.duration
        rate = records / duration if duration else None
        return len(matched), records, rate, rate is not None and rate > self.options.budget

    def syscall_rule(self, abi: str, machine: str, names: Iterable[str], category: str, key: str):
        present = sorted({n for n in names if syscall_number(machine, n) is not None})
        if not present:
            return None
        text = f"-a always,exit -F arch={abi} -S {','.join(present)} {self.scope()} -k {key}"
        chosen = set(present)
        matched = [c for c in self.calls if c.abi == abi and c.audit_name in chosen]
        events, records, rate, over = self.cost(matched)
        return Suggestion(self.canonical(text), category, events, records, rate, over)

    def rules(self) -> tuple[list[Suggestion], int]:
        out: list[Suggestion] = []
        used = {category_of(c.audit_name or c.name) for c in self.calls}
        covered: set[str] = set()
        key = self.options.key
        for category, _, names in RULE_CATEGORIES:
            if category not in used:
                continue
            covered.update(names)
            for abi, machine in self.abis:
                rule = self.syscall_rule(abi, machine, names, category, f"{key}-{category}")
                if rule is not None:
                    out.append(rule)
        watches, unresolved = self.watches()
        out.extend(watches)
        if self.options.all:
            seen = sorted({c.audit_name for c in self.calls if c.audit_name} - covered)
            for name in seen:
                category = category_of(name)
                for abi, machine in self.abis:
                    rule = self.syscall_rule(abi, machine, [name], category, f"{key}-{category}")
                    if rule is not None:
                        out.append(rule)
        return out, unresolved

    def watches(self) -> tuple[list[Suggestion], int]:
        touched: dict[str, list[Call]] = defaultdict(list)
        unresolved = 0
        for call in self.calls:
            for path in changed_paths(call):
                if path is None:
                    unresolved += 1
                elif not printable(path):
                    self.unwatchable.add(path)
                elif not excluded(path, self.options.excluded_dirs):
                    touched[path].append(call)
        by_dir: dict[str, list[str]] = defaultdict(list)
        for path in touched:
            by_dir[posixpath.dirname(path)].append(path)
        targets: dict[str, tuple[str, list[Call]]] = {}  # path -> (kind, calls)
        for directory, paths in by_dir.items():
            if len(paths) > WATCH_DIR_THRESHOLD:
                calls = [c for p in paths for c in touched[p]]
                targets[directory] = ("dir", calls)
            else:
                for path in paths:
                    targets[path] = ("path", touched[path])
        out = []
        key = f"{self.options.key}-watch"
        for path in sorted(targets):
            kind, calls = targets[path]
            unique = list({id(c): c for c in calls}.values())
            if self.scope():
                text = f"-a always,exit -F {kind}={path} -F perm=wa {self.scope()} -k {key}"
            else:
                text = f"-w {path} -p wa -k {key}"
            events, records, rate, over = self.cost(unique)
            note = f"{len(by_dir[path])} files written in it" if kind == "dir" else ""
            out.append(Suggestion(self.canonical(text), "watch", events, records, rate, over, note))
        return out, unresolved


def propose(log: StraceLog, options: Options) -> Proposal:
    """The profile and the rules for a log (RuleSyntaxError if a scoping value is bad)."""
    builder = _Builder(log, options)
    rules, unresolved = builder.rules()
    return Proposal(profile(log), rules, unresolved, tuple(sorted(builder.unwatchable)))


def _rate(value: float | None) -> str:
    return "n/a (no timestamps)" if value is None else f"{value:.1f} records/s"


def render(log: StraceLog, proposal: Proposal, options: Options, source: str) -> str:
    """The rules file: `#` header and profile, then each rule under its cost comment."""
    abis = f"{log.machine} (b64)" + (f", {log.compat_machine} (b32)" if log.compat_machine else "")
    duration = "no timestamps" if log.duration is None else f"{log.duration:.3f} s"
    source = "".join(c if c.isprintable() else repr(c)[1:-1] for c in source)  # one line
    lines = [
        f"# osquery-audit-ext rules suggest: {source}",
        f"# {abis}; {log.processes} processes, {len(log.calls)} calls, {duration}"
        + ("" if log.exit_code is None else f"; exit status {log.exit_code}"),
        "# load with `osquery-audit-ext rules load FILE` or `auditctl -R FILE`",
    ]
    if log.unparsed:
        lineno, _ = log.unparsed[0]
        lines.append(f"# {len(log.unparsed)} log lines not understood, first line {lineno}")
    lines += ["#", "# profile: syscall, ABI, calls, failed, category"]
    for row in proposal.profile:
        extra = f" ({row.writes} for writing)" if row.writes and row.category == "file-open" else ""
        if not row.known:
            extra += " (not in auditctl's table)"
        lines.append(
            f"#   {row.name:<20} {row.abi}  {row.calls:>7} {row.failed:>7}  {row.category}{extra}"
        )
    lines += [
        "#",
        "# rules: events and ~records this run would have produced, records/s over the run;"
        f" budget {options.budget:g} records/s",
    ]
    if options.exe is not None or options.auid is not None:
        lines.append(
            "# scoped with"
            + (f" exe={options.exe}" if options.exe else "")
            + (f" auid={options.auid}" if options.auid else "")
        )
    if proposal.unresolved_writes:
        lines.append(
            f"# {proposal.unresolved_writes} changed paths could not be resolved (relative "
            "paths without -y): trace with `strace -f -y`"
        )
    for path in proposal.unwatchable:
        lines.append(f"# not watched (blanks or control characters in the path): {path!r}")
    if not proposal.rules:
        lines.append(
            "# no security-relevant calls seen: nothing to propose (--all for every syscall)"
        )
    for rule in proposal.rules:
        what = f" ({DESCRIPTIONS[rule.category]})" if rule.category in DESCRIPTIONS else ""
        note = f"; {rule.note}" if rule.note else ""
        lines.append("#")
        lines.append(
            f"# {rule.category}{what}: {rule.events} events, ~{rule.records} records, "
            f"{_rate(rule.rate)}{note}"
        )
        if rule.over_budget:
            lines.append(f"# WARNING: above the budget of {options.budget:g} records/s")
        lines.append(rule.text)
    return "\n".join(lines) + "\n"
