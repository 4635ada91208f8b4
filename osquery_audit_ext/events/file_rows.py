"""File events into process_file_events rows (columns as in tables/process_file_events.table),
and the `[file_paths]` globs that decide which files are watched.

osquery (tables/events/linux/process_file_events.cpp) audits every open/read/write/close of
the whole system with one rule, tracks each process's file descriptors in user space, and
keeps the files its globs matched when it started (files created later never match,
osquery#8062). Here the kernel does the filtering: one watch rule per watched tree
(`-w DIR -p wa`, `-p rwa` with fim_accesses; see app/managed_rules.py), so only calls that
touch a watched tree are logged, and each event's paths are matched against the globs when
it arrives, so files created after start are reported. Every row stands on its own event
(no descriptor state): a watch rule sees the calls that name a path (open, openat, openat2,
creat, truncate, rename, link, symlink, unlink, mkdir, chmod ...), not read(2)/write(2) on
a descriptor, so opening a file for writing is the `write` row.

Operations, as osquery names them where it has the case: open (read-only open),
open+truncate (O_TRUNC, creat), write (open for writing, truncate by path), rename, link,
symlink, unlink; and for calls osquery does not report: mkdir, rmdir, mknod, chmod, chown,
setxattr, removexattr, utime.

Paths come from the event's PATH records by their nametype (the kernel's item order differs
per call): the created (CREATE), removed (DELETE) or used (NORMAL) name. A relative name is
made absolute with the CWD record when the call resolved it against the working directory
(no dirfd, or AT_FDCWD). A name relative to another directory fd (`unlinkat(dirfd, "f")`,
as `rm -r` does) cannot be resolved from the records (the kernel even logs the cwd as its
parent): when the event arrives, `dirfd_paths_from_proc` reads the directory behind the fd
from /proc/PID/fd while the process most likely still holds it, and keeps it only when its
device and inode are those of the event's PARENT record; otherwise the path stays
unresolved (`partial`) and matches no glob. Paths are normalized lexically (no file system
access: the file may be gone already).

Glob syntax (osquery's): `%` matches within one path component, `%%` any number of them;
`/etc/%%` is everything below /etc, `/home/%/.ssh/%` the files in each user's .ssh.
"""

from __future__ import annotations

import os.path
import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from ..audit.consts import AUDIT_CWD, AUDIT_OPENAT2, AUDIT_PATH
from .coalesce import Event
from .records import Record, parse_decimal
from .rows import AT_FDCWD, _keys, _syscall, _uptime, display_text

PROCESS_FILE_EVENTS = "process_file_events"

O_ACCMODE = 0o3
O_TRUNC = 0o1000
AT_REMOVEDIR = 0x200

READ_ONLY_OPERATIONS = frozenset({"open"})
_WILDCARD = re.compile(r"%%|\*\*|%|\*")


class FileCall(NamedTuple):
    """How a syscall names its file(s): the operation, and which register holds the dirfd
    of its path (None: the working directory) and of its second path (rename, link)."""

    operation: str
    dirfd: int | None = None
    dest_dirfd: int | None = None


# Syscall name -> how to read it. open's flags decide between open, open+truncate, write.
FILE_CALLS: dict[str, FileCall] = {
    "open": FileCall("open"),
    "openat": FileCall("open", 0),
    "openat2": FileCall("open", 0),
    "open_by_handle_at": FileCall("open"),  # the mount fd: names are absolute or missing
    "creat": FileCall("open+truncate"),
    "truncate": FileCall("write"),
    "truncate64": FileCall("write"),
    "rename": FileCall("rename"),
    "renameat": FileCall("rename", 0, 2),
    "renameat2": FileCall("rename", 0, 2),
    "link": FileCall("link"),
    "linkat": FileCall("link", 0, 2),
    "symlink": FileCall("symlink"),
    "symlinkat": FileCall("symlink", None, 1),
    "unlink": FileCall("unlink"),
    "unlinkat": FileCall("unlink", 0),
    "rmdir": FileCall("rmdir"),
    "mkdir": FileCall("mkdir"),
    "mkdirat": FileCall("mkdir", 0),
    "mknod": FileCall("mknod"),
    "mknodat": FileCall("mknod", 0),
    "chmod": FileCall("chmod"),
    "fchmodat": FileCall("chmod", 0),
    "fchmodat2": FileCall("chmod", 0),
    "chown": FileCall("chown"),
    "lchown": FileCall("chown"),
    "chown32": FileCall("chown"),
    "lchown32": FileCall("chown"),
    "fchownat": FileCall("chown", 0),
    "setxattr": FileCall("setxattr"),
    "lsetxattr": FileCall("setxattr"),
    "setxattrat": FileCall("setxattr", 0),
    "removexattr": FileCall("removexattr"),
    "lremovexattr": FileCall("removexattr"),
    "removexattrat": FileCall("removexattr", 0),
    "utime": FileCall("utime"),
    "utimes": FileCall("utime"),
    "futimesat": FileCall("utime", 0),
    "utimensat": FileCall("utime", 0),
    "utimensat_time64": FileCall("utime", 0),
}
# Where open's flags are: the register, or the OPENAT2 record (openat2 passes a struct).
_OPEN_FLAGS_REGISTER = {"open": "a1", "openat": "a2", "open_by_handle_at": "a2"}


def glob_regex(pattern: str) -> re.Pattern[str]:
    """An osquery file_paths glob as a regex over absolute paths (% one level, %% any)."""
    parts = []
    position = 0
    for match in _WILDCARD.finditer(pattern):
        parts.append(re.escape(pattern[position : match.start()]))
        parts.append(".*" if len(match.group()) == 2 else "[^/]*")
        position = match.end()
    parts.append(re.escape(pattern[position:]))
    return re.compile("".join(parts))


def glob_base(pattern: str) -> str:
    """The directory (or file) below which a glob can match: the part before its first
    wildcard, cut back to a whole directory; the pattern itself when it has no wildcard."""
    match = _WILDCARD.search(pattern)
    if match is None:
        return os.path.normpath(pattern) if pattern != "/" else "/"
    head = pattern[: match.start()]
    base = head[: head.rfind("/") + 1] or "/"
    return os.path.normpath(base) if base != "/" else "/"


class FilePaths:
    """The `[file_paths]` categories: category name -> globs, matched against each event."""

    def __init__(self, categories: Mapping[str, Sequence[str]]) -> None:
        self.categories = {name: tuple(globs) for name, globs in categories.items()}
        self._compiled = [
            (name, glob_regex(glob)) for name, globs in self.categories.items() for glob in globs
        ]

    def __bool__(self) -> bool:
        return bool(self._compiled)

    def category(self, path: str | None) -> str | None:
        """The first category (in config order) with a glob matching the whole path."""
        if not path:
            return None
        for name, regex in self._compiled:
            if regex.fullmatch(path) is not None:
                return name
        return None

    def bases(self) -> list[str]:
        """The trees to watch: each glob's base, without those inside another base."""
        found = sorted({glob_base(g) for globs in self.categories.values() for g in globs})
        out: list[str] = []
        for base in found:
            if not any(base == b or base.startswith(b.rstrip("/") + "/") for b in out):
                out.append(base)
        return out


def _name_record(paths: list[Record], *nametypes: str, last: bool = False) -> Record | None:
    found = [r for r in paths if r.raw("nametype") in nametypes]
    if not found:
        return None
    return found[-1] if last else found[0]


def _dirfd(value: int | None) -> int | None:
    """A dirfd register as the int it is: the kernel logs a0 of openat(AT_FDCWD, ...) as
    ffffff9c, or as ffffffffffffff9c when the caller passed a long (syscall(2))."""
    if value is None:
        return None
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _open_flags(event: Event, name: str, syscall: Record) -> int | None:
    if name == "openat2":
        record = event.first(AUDIT_OPENAT2)
        raw = record.raw("oflag") if record is not None else None
        try:
            return int(raw, 8) if raw else None
        except ValueError:
            return None
    register = _OPEN_FLAGS_REGISTER.get(name)
    return syscall.hexint(register) if register else None


def file_row(
    event: Event,
    boot_time: float,
    file_paths: FilePaths,
    *,
    accesses: bool = False,
    dirfd_paths: Mapping[int, bytes] | None = None,
) -> dict | None:
    """The process_file_events row of a successful file call on a watched path, else None.

    `accesses` keeps read-only opens (osquery's audit_fim_show_accesses); `dirfd_paths`
    gives the directories of dirfds (from dirfd_paths_from_proc) for names relative to one."""
    call = _syscall(event)
    if call is None:
        return None
    how = FILE_CALLS.get(call.name)
    if how is None or AUDIT_PATH not in event.types:
        return None
    syscall = call.record
    fields = syscall.fields
    if fields.get("success") != "yes":
        return None  # as osquery: failed calls changed nothing
    paths = event.all(AUDIT_PATH)
    cwd_record = event.first(AUDIT_CWD)
    cwd = cwd_record.data("cwd") if cwd_record is not None else None

    def absolute(record: Record | None, register: int | None) -> tuple[bytes | None, bool]:
        """(absolute normalized path, resolved) of a PATH record's name."""
        if record is None:
            return None, True
        name = record.data("name")
        if not name:
            return None, True
        if name[:1] != b"/":
            dirfd = AT_FDCWD
            if register is not None:
                dirfd = _dirfd(syscall.hexint(f"a{register}"))
            base = cwd if dirfd == AT_FDCWD else (dirfd_paths or {}).get(dirfd)
            if not base:
                return name, False
            name = base.rstrip(b"/") + b"/" + name
        return os.path.normpath(name), True

    operation = how.operation
    dest = None
    dest_ok = True
    if operation in ("open", "open+truncate"):
        target = _name_record(paths, "CREATE") or _name_record(paths, "NORMAL")
        if operation == "open":
            flags = _open_flags(event, call.name, syscall)
            if flags is not None and flags & O_TRUNC:
                operation = "open+truncate"
            elif flags is not None and flags & O_ACCMODE:
                operation = "write"
        path, path_ok = absolute(target, how.dirfd)
    elif operation == "rename":
        path, path_ok = absolute(_name_record(paths, "DELETE"), how.dirfd)
        dest, dest_ok = absolute(_name_record(paths, "CREATE", last=True), how.dest_dirfd)
    elif operation == "link":
        path, path_ok = absolute(_name_record(paths, "NORMAL"), how.dirfd)
        dest, dest_ok = absolute(_name_record(paths, "CREATE"), how.dest_dirfd)
    elif operation == "symlink":
        dest, dest_ok = absolute(_name_record(paths, "CREATE"), how.dest_dirfd)
        target = _name_record(paths, "UNKNOWN")
        path = target.data("name") if target is not None else None
        path_ok = True
        if path and path[:1] != b"/" and dest is not None and dest_ok:
            # The target is relative to the link's directory, not to the working directory.
            path = os.path.normpath(os.path.dirname(dest) + b"/" + path)
    else:
        nametypes = ("DELETE",) if operation in ("unlink", "rmdir") else ("CREATE", "NORMAL")
        path, path_ok = absolute(_name_record(paths, *nametypes), how.dirfd)
        if operation == "unlink" and call.name == "unlinkat":
            flags = syscall.hexint("a2")
            if flags is not None and flags & AT_REMOVEDIR:
                operation = "rmdir"
    if not accesses and operation in READ_ONLY_OPERATIONS:
        return None
    path_text = display_text(path) if path_ok else None
    dest_text = display_text(dest) if dest_ok else None
    category = file_paths.category(path_text) or file_paths.category(dest_text)
    if category is None:
        return None
    return {
        "operation": operation,
        "pid": parse_decimal(fields.get("pid")),
        "ppid": parse_decimal(fields.get("ppid")),
        "time": event.sec,
        "executable": display_text(syscall.data("exe")),
        "partial": "false" if path_ok and dest_ok else "true",
        "cwd": display_text(cwd),
        "path": display_text(path),
        "dest_path": display_text(dest) if dest is not None else "",
        # osquery's id columns are TEXT, the kernel's unsigned decimal as it wrote it.
        **{name: fields.get(name) for name in _ID_COLUMNS},
        "uptime": _uptime(event, boot_time),
        "category": category,
        "syscall": call.name,
        "exit": parse_decimal(fields.get("exit")),
        "comm": display_text(syscall.data("comm")),
        "key": _keys(fields.get("key")),
        "time_ms": event.sec * 1000 + event.msec,
        "serial": event.serial,
    }


_ID_COLUMNS = ("uid", "gid", "auid", "euid", "egid", "fsuid", "fsgid", "suid", "sgid")


def _device_inode(record: Record) -> tuple[int, int, int] | None:
    """(major, minor, inode) of a PATH record (dev=fe:01 is hex major:minor)."""
    major, _, minor = (record.raw("dev") or "").partition(":")
    inode = record.decimal("inode")
    try:
        return int(major, 16), int(minor, 16), inode  # type: ignore[return-value]
    except ValueError:
        return None


def dirfd_paths_from_proc(event: Event, proc: str = "/proc") -> dict[int, bytes]:
    """At arrival, best effort: the directories behind the dirfds an event's names are
    relative to, from /proc/PID/fd/N, each kept only when its device and inode are those of
    one of the event's PARENT records (so a closed or reused fd is never taken)."""
    call = _syscall(event)
    how = FILE_CALLS.get(call.name) if call is not None else None
    if call is None or how is None or call.record.raw("success") != "yes":
        return {}
    parents = {
        found
        for record in event.all(AUDIT_PATH)
        if record.raw("nametype") == "PARENT" and (found := _device_inode(record)) is not None
    }
    pid = call.record.decimal("pid")
    out: dict[int, bytes] = {}
    for register in (how.dirfd, how.dest_dirfd):
        if register is None or not parents or pid is None:
            continue
        dirfd = _dirfd(call.record.hexint(f"a{register}"))
        if dirfd is None or dirfd < 0 or dirfd in out:
            continue
        link = f"{proc}/{pid}/fd/{dirfd}"
        try:
            target = os.readlink(link)
            found = os.stat(link)
        except OSError:
            continue
        if (os.major(found.st_dev), os.minor(found.st_dev), found.st_ino) in parents:
            out[dirfd] = os.fsencode(target)
    return out
