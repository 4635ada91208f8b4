"""Events into table rows: one completed audit event gives at most one row of
process_events or socket_events (columns as in tables/*.table; `eid` is the ring's).

Values are ints, str or None (None where the event does not say). Times come from the audit
record itself: `time` is its seconds, `time_ms` its milliseconds, `uptime` is `time` minus the
boot time the caller passes.

Text columns never carry invalid UTF-8 (osquery needs valid strings):
- argv: a JSON array holding the exact arguments; bytes that are not UTF-8 appear as the
  escapes \\udc80-\\udcff (Python's surrogateescape: `json.loads(argv)[i].encode("utf-8",
  "surrogateescape")` gives back the bytes the process passed).
- cmdline: the arguments in true argv order joined by single spaces, with no quoting, as
  osquery builds it (its process_events and processes.cmdline), so osquery's queries
  (`cmdline LIKE '%-c curl%'`) match; bytes that are not UTF-8 are written as \\xNN. Not
  reversible (an argument may hold spaces): argv is the exact form. cmdline_size is its
  length in bytes.
- Other text (path, cwd, exe, comm, socket, key): UTF-8, with any invalid byte written as
  \\xNN (not reversible if the name itself holds a backslash followed by "x"; rare).

Three words for a syscall ABI, kept apart throughout events/: `audit_arch` is the SYSCALL
record's arch= value (an AUDIT_ARCH_* number, 0xc000003e); `machine` is libaudit's name for
the ABI ("x86_64"), which picks the syscall table; the arch token is "b64" or "b32", what the
`arch` column holds (as `auditctl -l` prints it).
"""

from __future__ import annotations

import errno
import functools
import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple, Optional, Protocol

from ..accel import compiled
from ..audit.consts import (
    AF_INET,
    AF_INET6,
    AF_UNIX,
    AUDIT_CWD,
    AUDIT_EXECVE,
    AUDIT_PATH,
    AUDIT_PROCTITLE,
    AUDIT_SOCKADDR,
    AUDIT_SOCKETCALL,
    AUDIT_SYSCALL,
)
from ..audit.syscalls import arch_token, machine_for_audit_arch, syscall_name
from ..keysharing import key_sharing_dict
from .blocks import Run
from .coalesce import Event
from .records import (
    Argv,
    Record,
    decode_inet_saddr_hex,
    decode_keys,
    decode_sockaddr,
    decode_value,
    execve_argv,
    family_hex,
    parse_decimal,
    parse_ident,
    proctitle_argv,
    split_fields,
    task_fields,
    task_start,
)

EXEC_SYSCALLS = frozenset({"execve", "execveat"})
FORK_SYSCALLS = frozenset({"fork", "vfork", "clone"})
KILL_SYSCALLS = frozenset({"kill", "tkill", "tgkill"})
SOCKET_ACTIONS = {"connect": "connect", "bind": "bind", "accept": "accept", "accept4": "accept"}
# i386 socketcall(2): the call number in a0 -> the call it multiplexes.
SOCKETCALL_CALLS = {2: "bind", 3: "connect", 5: "accept", 18: "accept4"}

CLONE_PARENT = 0x00008000
CLONE_THREAD = 0x00010000
AT_FDCWD = -100

# What a JSON string must escape (json.dumps with ensure_ascii=False), surrogates included.
_JSON_ESCAPED = re.compile(r"[\"\\\x00-\x1f\udc80-\udcff]")
_SURROGATE = re.compile(r"[\udc80-\udcff]")


@functools.lru_cache(maxsize=1024)
def audit_syscall_name(audit_arch: int, nr: int) -> str:
    """The syscall's name on the event's ABI; its number when the ABI or number is unknown."""
    machine = machine_for_audit_arch(audit_arch)
    name = syscall_name(machine, nr) if machine else None
    return name or str(nr)


@functools.lru_cache(maxsize=256)
def _arch_token(audit_arch: int) -> str:
    return arch_token(audit_arch)


def display_text(data: bytes | None) -> str | None:
    """Bytes as UTF-8 text, invalid bytes written as \\xNN."""
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("utf-8", "backslashreplace")


@functools.lru_cache(maxsize=4096)
def _raw_text(raw: str) -> str | None:
    """An untrusted-string value as display text (cached: exe, comm, cwd repeat a lot)."""
    return display_text(decode_value(raw))


def _field_text(fields: dict[str, str], key: str) -> str | None:
    raw = fields.get(key)
    return None if raw is None else _raw_text(raw)


def _surrogate_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def argv_columns(args: list[bytes]) -> tuple[str, str, int]:
    """(cmdline, argv JSON, cmdline_size) for a list of arguments."""
    joined = b" ".join(args)
    try:
        cmdline = joined.decode("utf-8")
    except UnicodeDecodeError:
        cmdline = joined.decode("utf-8", "backslashreplace")
        size = len(cmdline.encode("utf-8"))
    else:
        size = len(joined)
        if _JSON_ESCAPED.search(cmdline) is None:  # no argument needs a JSON escape
            texts = [arg.decode("utf-8") for arg in args]  # each is UTF-8, as the whole is
            return cmdline, '["' + '", "'.join(texts) + '"]' if texts else "[]", size
    texts = [arg.decode("utf-8", "surrogateescape") for arg in args]
    argv = json.dumps(texts, ensure_ascii=False)
    if _SURROGATE.search(argv) is not None:
        argv = _SURROGATE.sub(_surrogate_escape, argv)
    return cmdline, argv, size


def _uptime_at(sec: int, msec: int, boot_time: float) -> int | None:
    """Seconds since boot at an event's stamp; None before the boot time (a clock set back)."""
    uptime = int(sec + msec / 1000 - boot_time)
    return uptime if uptime >= 0 else None


def _uptime(event: Event, boot_time: float) -> int | None:
    return _uptime_at(event.sec, event.msec, boot_time)


@functools.lru_cache(maxsize=256)
def _keys(raw: str | None) -> str | None:
    """The `key=` field as the key column: rule keys joined by commas, None for (null)."""
    keys = decode_keys(raw)
    if not keys:
        return None
    return ",".join(display_text(key) or "" for key in keys)


class Task(NamedTuple):
    """The columns a SYSCALL record's task part gives (ids, tty, ses, comm, exe, key)."""

    auid: int | None
    uid: int | None
    euid: int | None
    gid: int | None
    egid: int | None
    fsuid: int | None
    suid: int | None
    fsgid: int | None
    sgid: int | None
    ses: int | None
    tty: str | None
    comm: str | None
    exe: str | None
    key: str | None
    repeats_head: bool  # it names a key of the head again (arch= .. pid=): that one wins


# The keys of a SYSCALL record's head, before its task part.
_HEAD_KEYS = ("arch", "syscall", "success", "exit", "a0", "a1", "a2", "a3", "items", "ppid", "pid")


def _task_columns(fields: dict[str, str]) -> Task:
    get = fields.get
    return Task(
        parse_ident(get("auid")),
        parse_ident(get("uid")),
        parse_ident(get("euid")),
        parse_ident(get("gid")),
        parse_ident(get("egid")),
        parse_ident(get("fsuid")),
        parse_ident(get("suid")),
        parse_ident(get("fsgid")),
        parse_ident(get("sgid")),
        parse_ident(get("ses")),
        get("tty"),
        _field_text(fields, "comm"),
        _field_text(fields, "exe"),
        _keys(get("key")),
        any(key in fields for key in _HEAD_KEYS),
    )


@functools.lru_cache(maxsize=4096)
def _cached_task(task: str) -> Task:
    return _task_columns(task_fields(task))


def _task(record: Record) -> Task:
    """The task columns of a SYSCALL record; worked out once per distinct task part (every
    call of one process has the same)."""
    body = record.body
    at = task_start(body)
    return _cached_task(body[at:]) if at > 0 else _task_columns(record.fields)


class SyscallCall(NamedTuple):
    """An event's SYSCALL record with the call it logs, named on the event's ABI."""

    record: Record
    name: str  # the syscall's name, or its number when the ABI or number is unknown
    audit_arch: int  # the record's arch= field: an AUDIT_ARCH_* value such as 0xc000003e


def _syscall(event: Event) -> SyscallCall | None:
    """The event's SYSCALL record and the call it logs; None without one (or arch/number)."""
    records = event.records
    record = records[0] if records and records[0].type == AUDIT_SYSCALL else None
    if record is None:
        record = event.first(AUDIT_SYSCALL)
    if record is None:
        return None
    audit_arch = record.hexint("arch")
    nr = record.decimal("syscall")
    if audit_arch is None or nr is None:
        return None
    return SyscallCall(record, audit_syscall_name(audit_arch, nr), audit_arch)


def _executable(paths: list[Record]) -> Record | None:
    """The PATH record of the file execve opened: item 0."""
    for record in paths:
        if record.raw("item") == "0":
            return record
    return paths[0] if paths else None


def _exec_path(path_record: Record | None, cwd: bytes | None, call: SyscallCall) -> bytes | None:
    """Absolute path of the executed file: PATH item 0's name, made absolute with the cwd.

    Falls back to the process's exe= when the name is missing or relative to a directory fd
    (execveat with a dirfd other than AT_FDCWD).
    """
    exe = call.record.data("exe")
    file = path_record.data("name") if path_record is not None else None
    if not file:
        return exe
    if file[:1] == b"/":
        return file
    if call.name == "execveat":
        dirfd = call.record.hexint("a0")
        if dirfd is None or _signed(dirfd, call.audit_arch) != AT_FDCWD:
            return exe
    if not cwd:
        return exe
    while file[:2] == b"./":
        file = file[2:]
    return cwd.rstrip(b"/") + b"/" + file


def _signed(value: int, audit_arch: int) -> int:
    """A register value (a0..a3) as a signed long of the event's ABI."""
    bits = 64 if _arch_token(audit_arch) == "b64" else 32
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


class ProcessFacts(NamedTuple):
    """The process_events columns that differ by case (exec, fork, kill)."""

    pid: int | None
    parent: int | None
    path: bytes | None
    argv: Argv
    cwd: str | None = None
    mode: str | None = None
    owner_uid: int | None = None
    owner_gid: int | None = None


def _exec_facts(
    event: Event, call: SyscallCall, syscall_fields: dict[str, str], success: bool
) -> ProcessFacts:
    """execve/execveat: the process itself; argv from EXECVE, path from PATH item 0."""
    execve: list[Record] = []
    paths: list[Record] = []
    cwd_record = None
    for record in event.records:
        record_type = record.type
        if record_type == AUDIT_EXECVE:
            execve.append(record)
        elif record_type == AUDIT_PATH:
            paths.append(record)
        elif record_type == AUDIT_CWD:
            cwd_record = cwd_record or record
    cwd = cwd_record.data("cwd") if cwd_record is not None else None
    path_record = _executable(paths)
    path = _exec_path(path_record, cwd, call)
    mode = owner_uid = owner_gid = None
    if path_record is not None:
        path_fields = path_record.fields
        mode = path_fields.get("mode")
        owner_uid = parse_ident(path_fields.get("ouid"))
        owner_gid = parse_ident(path_fields.get("ogid"))
    if execve:
        argv = execve_argv(execve)
    elif success:
        argv = _proctitle(event)  # EXECVE lost: the new program's title, maybe cut
    else:
        argv = Argv([], True)  # the kernel logs argv only once the file is open
    return ProcessFacts(
        pid=parse_decimal(syscall_fields.get("pid")),
        parent=parse_decimal(syscall_fields.get("ppid")),
        path=path,
        argv=argv,
        cwd=display_text(cwd),
        mode=mode,
        owner_uid=owner_uid,
        owner_gid=owner_gid,
    )


def _fork_facts(
    event: Event, call: SyscallCall, syscall_fields: dict[str, str], success: bool
) -> ProcessFacts | None:
    """fork/vfork/clone: the new process (the return value) and its parent; no threads."""
    flags = (call.record.hexint("a0") or 0) if call.name == "clone" else 0
    if flags & CLONE_THREAD:
        return None
    caller = parse_decimal(syscall_fields.get("pid"))
    parent = parse_decimal(syscall_fields.get("ppid")) if flags & CLONE_PARENT else caller
    exit_code = parse_decimal(syscall_fields.get("exit"))
    child = exit_code if success and exit_code is not None and exit_code > 0 else None
    return ProcessFacts(
        pid=child, parent=parent, path=call.record.data("exe"), argv=_proctitle(event)
    )


def _kill_facts(
    event: Event, call: SyscallCall, syscall_fields: dict[str, str], success: bool
) -> ProcessFacts:
    """kill/tkill/tgkill: the caller and its parent."""
    return ProcessFacts(
        pid=parse_decimal(syscall_fields.get("pid")),
        parent=parse_decimal(syscall_fields.get("ppid")),
        path=call.record.data("exe"),
        argv=_proctitle(event),
    )


ProcessCase = Callable[[Event, SyscallCall, dict[str, str], bool], "ProcessFacts | None"]
# Syscall name -> the function giving the columns of its case.
PROCESS_CASES: dict[str, ProcessCase] = {
    **dict.fromkeys(EXEC_SYSCALLS, _exec_facts),
    **dict.fromkeys(FORK_SYSCALLS, _fork_facts),
    **dict.fromkeys(KILL_SYSCALLS, _kill_facts),
}


def _body(payload: bytes) -> bytes | None:
    """A record payload's body (record_body's bytes, before decoding)."""
    close = payload.find(b"):", 6)
    if close < 0:
        return None
    body = payload[close + 2 :]
    return body[1:] if body[:1] == b" " else body


def _value_bytes(raw: bytes) -> bytes | None:
    """decode_value(raw) or b"", on the raw bytes of a value; None for a quote left open
    (split_fields then reads the record the careful way: the value may hold a space)."""
    if raw[:1] == b'"':
        return raw[1:-1] if len(raw) > 1 and raw[-1:] == b'"' else None
    if raw == b"(null)" or raw == b"?":
        return b""
    if len(raw) % 2 == 0 and _HEX_VALUE.fullmatch(raw):
        return bytes.fromhex(raw.decode("ascii"))
    return raw


_HEX_VALUE = re.compile(rb"[0-9A-Fa-f]*")


@functools.lru_cache(maxsize=64)
def _quoted_keys(count: int) -> list[bytes]:
    """What an EXECVE body of `count` quoted arguments, `argc=N a0="..." a1="..."`, holds
    between its quotes: [b'argc=N a0=', b' a1=', ..., b''] ([b'argc=0'] for none)."""
    if not count:
        return [b"argc=0"]
    return [b"argc=%d a0=" % count] + [b" a%d=" % i for i in range(1, count)] + [b""]


def _fast_argv(payload: bytes) -> list[bytes] | None:
    """The arguments of a lone EXECVE record holding every argument whole (`argc=N a0=..`
    .. `aN-1=..`, nothing else), as execve_argv gives them; None for any other shape."""
    body = _body(payload)
    if body is None:
        return None
    body = body.rstrip(b"\x00\n")
    # Every argument quoted (the usual case): split at the quotes, the keys between them
    # exactly argc=N a0= .. aN-1=, no whitespace inside a value (split_fields' words).
    pieces = body.split(b'"')
    values = pieces[1::2]
    if pieces[0::2] == _quoted_keys(len(values)) and not _WHITESPACE.search(b"".join(values)):
        return values
    parts = body.split(b" ")
    head = parts[0]
    if head[:5] != b"argc=" or not head[5:].isdigit() or int(head[5:]) != len(parts) - 1:
        return None
    args = []
    for index, part in enumerate(parts[1:]):
        key, sep, raw = part.partition(b"=")
        if not sep or key != b"a%d" % index or _WHITESPACE.search(raw):
            return None
        value = _value_bytes(raw)
        if value is None:
            return None
        args.append(value)
    return args


_WHITESPACE = re.compile(rb"[\s\x1c-\x1f]")  # what str.split() splits split_fields' words on


@functools.lru_cache(maxsize=256)
def _exec_shape(types: tuple[int, ...]) -> tuple[int, int, tuple[int, ...]] | None:
    """(EXECVE index, first CWD index or -1, PATH indices) of an event shape the fast exec
    path takes: SYSCALL first and exactly one EXECVE; None for any other."""
    if not types or types[0] != AUDIT_SYSCALL or types.count(AUDIT_EXECVE) != 1:
        return None
    cwd = types.index(AUDIT_CWD) if AUDIT_CWD in types else -1
    paths = tuple(i for i, t in enumerate(types) if t == AUDIT_PATH)
    return types.index(AUDIT_EXECVE), cwd, paths


class _PathFacts(NamedTuple):
    item: str | None
    name: bytes | None
    mode: str | None
    owner_uid: int | None
    owner_gid: int | None


@functools.lru_cache(maxsize=4096)
def _path_facts(body: bytes) -> _PathFacts:
    """What a PATH record says of its file: the same for every exec of one executable."""
    fields = split_fields(body.rstrip(b"\x00\n").decode("utf-8", "surrogateescape"))
    name = fields.get("name")
    return _PathFacts(
        fields.get("item"),
        None if name is None else decode_value(name),
        fields.get("mode"),
        parse_ident(fields.get("ouid")),
        parse_ident(fields.get("ogid")),
    )


@functools.lru_cache(maxsize=1024)
def _cwd_of(body: bytes) -> tuple[bytes | None, str | None]:
    """A CWD record's directory, as bytes and as display text."""
    raw = split_fields(body.rstrip(b"\x00\n").decode("utf-8", "surrogateescape")).get("cwd")
    cwd = None if raw is None else decode_value(raw)
    return cwd, display_text(cwd)


class _Head(NamedTuple):
    """What the fast paths read from a SYSCALL payload's head and (cached) task part."""

    name: str
    audit_arch: int
    success: bool
    exit_code: int
    a0: bytes
    ppid: int
    pid: int
    task: Task


def _fast_head(payload: bytes) -> _Head | None:
    """The SYSCALL payload read by one regex; None unless it has the kernel's exact head and
    a task part that names none of the head's keys again."""
    head = _SYSCALL_HEAD.match(payload)
    if head is None:
        return None
    task = _task_of_bytes(payload[head.end() :])
    if task.repeats_head:
        return None
    arch, nr, success, exit_text, a0, ppid, pid = head.groups()
    name, audit_arch = _call_of(arch, nr)
    return _Head(name, audit_arch, success == b"yes", int(exit_text), a0, int(ppid), int(pid), task)


def _fast_exec_row(event: Event, boot_time: float) -> object:
    """process_row from the payloads alone for the plain exec (SYSCALL first with the
    kernel's head, a successful execve, one EXECVE record with every argument whole, an
    absolute path or a cwd); _SLOW for any other event.

    The columns of the call, the task part, the executable's PATH records and the cwd come
    from a row template cached per those record parts (one program run again and again from
    one directory repeats them all): a row is one dict copy, the arguments and the
    per-event columns (pid, parent, times) set on it."""
    types = event.types
    shape = _exec_shape(types) if types.__class__ is tuple else None
    if shape is None:
        return _SLOW
    execve_at, cwd_at, paths_at = shape
    payloads = event.payloads
    syscall = payloads[0]
    head = _SYSCALL_HEAD.match(syscall)
    if head is None:
        return _SLOW
    arch, nr, success, exit_text, _a0, ppid, pid = head.groups()
    template = _exec_template(
        arch,
        nr,
        success,
        exit_text,
        syscall[head.end() :],
        _body(payloads[cwd_at]) or b"" if cwd_at >= 0 else None,
        tuple([_body(payloads[index]) or b"" for index in paths_at]),
    )
    if template is None:
        return _SLOW
    args = _fast_argv(payloads[execve_at])
    if args is None:
        return _SLOW
    row = template.copy()
    row["pid"] = int(pid)
    row["cmdline"], row["argv"], row["cmdline_size"] = argv_columns(args)
    row["parent"] = int(ppid)
    return _with_times(row, event, boot_time)


def _with_times(row: dict, event: Event, boot_time: float) -> dict:
    """A row from a template with the event's time, uptime, time_ms and serial set."""
    sec = event.sec
    row["time"] = sec
    row["uptime"] = _uptime_at(sec, event.msec, boot_time)
    row["time_ms"] = sec * 1000 + event.msec
    row["serial"] = event.serial
    return row


@functools.lru_cache(maxsize=1024)
def _exec_template(
    arch: bytes,
    nr: bytes,
    success: bytes,
    exit_text: bytes,
    task_part: bytes,
    cwd_body: bytes | None,
    path_bodies: tuple[bytes, ...],
) -> dict | None:
    """The process_events row of a plain exec but its per-event columns (pid, parent,
    arguments, times: left empty); None when the fast path does not apply."""
    task = _task_of_bytes(task_part)
    if task.repeats_head or success != b"yes":
        return None
    name, audit_arch = _call_of(arch, nr)
    if name != "execve":
        return None
    cwd, cwd_text = _cwd_of(cwd_body) if cwd_body is not None else (None, None)
    path_facts = None
    for body in path_bodies:
        facts = _path_facts(body)
        if path_facts is None or (facts.item == "0" and path_facts.item != "0"):
            path_facts = facts
    file = path_facts.name if path_facts is not None else None
    if not file or (file[:1] != b"/" and not cwd):
        return None  # exe= stands in for the path: the careful way
    if file[:1] != b"/":
        while file[:2] == b"./":
            file = file[2:]
        file = cwd.rstrip(b"/") + b"/" + file  # type: ignore[union-attr]
    facts = ProcessFacts(
        pid=None,
        parent=None,
        path=file,
        argv=Argv([], True),
        cwd=cwd_text,
        mode=path_facts.mode if path_facts is not None else None,
        owner_uid=path_facts.owner_uid if path_facts is not None else None,
        owner_gid=path_facts.owner_gid if path_facts is not None else None,
    )
    return _process_columns(
        _TEMPLATE_EVENT, 0.0, name, audit_arch, task, True, int(exit_text), facts
    )


def process_row(event: Event, boot_time: float, *, include_failed: bool = False) -> dict | None:
    """A process_events row for execve/execveat, fork/vfork/clone and kill/tkill/tgkill.

    - execve/execveat: pid and parent (ppid) of the process; argv from the EXECVE records
      (PROCTITLE if they are lost from a successful exec); path from PATH item 0 made
      absolute (exe= when it cannot be); mode, owner_uid and owner_gid of that file; cwd.
    - fork/vfork/clone: pid is the new process (the syscall's return value), parent the
      caller (its parent for CLONE_PARENT); thread creation (CLONE_THREAD) gives no row, nor
      does clone3 (its flags are not in the record). cmdline/argv are the caller's
      PROCTITLE, which the child shares.
    - kill/tkill/tgkill: the caller's pid and parent; cmdline from PROCTITLE.
    Failed calls give no row unless include_failed (osquery reports successful ones only).
    `overflows` is "cmdline" when arguments are missing or were cut by the kernel.
    """
    row = _fast_exec_row(event, boot_time)
    if row is not _SLOW:
        return row  # type: ignore[return-value]
    return _process_row(event, boot_time, include_failed)


def _process_row(event: Event, boot_time: float, include_failed: bool) -> dict | None:
    """process_row the careful way, from the parsed records: every case."""
    call = _syscall(event)
    if call is None:
        return None
    case = PROCESS_CASES.get(call.name)
    if case is None:
        return None
    syscall_fields = call.record.fields
    success = syscall_fields.get("success") == "yes"
    if not success and not include_failed:
        return None
    facts = case(event, call, syscall_fields, success)
    if facts is None:
        return None
    exit_code = parse_decimal(syscall_fields.get("exit"))
    task = _task(call.record)
    return _process_columns(
        event, boot_time, call.name, call.audit_arch, task, success, exit_code, facts
    )


def _process_columns(
    event: Event,
    boot_time: float,
    name: str,
    audit_arch: int,
    task: Task,
    success: bool,
    exit_code: int | None,
    facts: ProcessFacts,
) -> dict:
    """The whole process_events row: the case's facts, and what the SYSCALL record says."""
    cmdline, argv_json, cmdline_size = argv_columns(facts.argv.args)
    return {
        "pid": facts.pid,
        "path": display_text(facts.path),
        "mode": facts.mode,
        "cmdline": cmdline,
        "cmdline_size": cmdline_size,
        "env": "",
        "env_count": 0,
        "env_size": 0,
        "cwd": facts.cwd,
        "auid": task.auid,
        "uid": task.uid,
        "euid": task.euid,
        "gid": task.gid,
        "egid": task.egid,
        "owner_uid": facts.owner_uid,
        "owner_gid": facts.owner_gid,
        "atime": None,
        "mtime": None,
        "ctime": None,
        "btime": None,
        "overflows": "" if facts.argv.complete else "cmdline",
        "parent": facts.parent if facts.parent is not None else -1,
        "time": event.sec,
        "uptime": _uptime(event, boot_time),
        "fsuid": task.fsuid,
        "suid": task.suid,
        "fsgid": task.fsgid,
        "sgid": task.sgid,
        "syscall": name,
        "argv": argv_json,
        "exe": task.exe,
        "comm": task.comm,
        "tty": task.tty,
        "ses": task.ses,
        "success": 1 if success else 0,
        "exit": exit_code,
        "key": task.key,
        "arch": _arch_token(audit_arch),
        "time_ms": event.sec * 1000 + event.msec,
        "serial": event.serial,
    }


def _proctitle(event: Event) -> Argv:
    record = event.first(AUDIT_PROCTITLE)
    return proctitle_argv(record) if record is not None else Argv([], False)


# The fixed head of a SYSCALL record as the kernel writes it (kernel/auditsc.c,
# audit_log_exit), up to the task part: the fast path of socket rows reads it in one match.
_SYSCALL_HEAD = re.compile(
    rb"audit\([0-9.:]+\): ?arch=([0-9a-fA-F]+) syscall=([0-9]+) success=(yes|no)"
    rb" exit=(-?[0-9]+) a0=([0-9a-fA-F]+) a1=[0-9a-fA-F]+ a2=[0-9a-fA-F]+ a3=[0-9a-fA-F]+"
    rb" items=[0-9]+ ppid=([0-9]+) pid=([0-9]+) (?=auid=)"
)
_SADDR = re.compile(rb"(?:^|[ :])saddr=([0-9A-Fa-f]*)(?:[ \x00\n]|$)")
_FAST_ACTIONS = {"connect": "connect", "bind": "bind", "accept": "accept", "accept4": "accept"}


@functools.lru_cache(maxsize=1024)
def _call_of(arch: bytes, nr: bytes) -> tuple[str, int]:
    audit_arch = int(arch, 16)
    return audit_syscall_name(audit_arch, int(nr)), audit_arch


@functools.lru_cache(maxsize=4096)
def _task_of_bytes(task: bytes) -> Task:
    """Task columns of a SYSCALL payload's task part, as its text gives them."""
    return _cached_task(task.rstrip(b"\x00\n").decode("utf-8", "surrogateescape"))


Address = tuple[Optional[int], Optional[str], Optional[int], Optional[str]]
_NO_ADDRESS: Address = (None, None, None, None)


def _address_columns(data: bytes | None) -> Address:
    """(family, address, port, unix path) of a SOCKADDR record's saddr bytes."""
    sockaddr = decode_sockaddr(data) if data is not None else None
    if sockaddr is None:
        return _NO_ADDRESS
    if sockaddr.family == AF_UNIX:
        return sockaddr.family, None, None, display_text(sockaddr.path)
    return sockaddr.family, sockaddr.address, sockaddr.port, None


@functools.lru_cache(maxsize=4096)
def _sockaddr_columns(saddr: bytes) -> Address:
    """_address_columns of a SOCKADDR record's saddr hex."""
    return _address_columns(bytes.fromhex(saddr.decode("ascii")))


def _socket_status(action: str, success: bool, exit_code: int | None) -> str:
    if success:
        return "succeeded"
    if action == "connect" and exit_code == -errno.EINPROGRESS:
        return "in_progress"
    if action == "accept" and exit_code == -errno.EAGAIN:
        return "no_client"
    return "failed"


def _socket_columns(
    event: Event,
    boot_time: float,
    action: str,
    name: str,
    pid: int | None,
    fd: int | None,
    task: Task,
    address: Address,
    success: bool,
    exit_code: int | None,
) -> dict:
    """The whole socket_events row."""
    family, ip, port, unix_path = address
    status = _socket_status(action, success, exit_code)
    local = action == "bind"
    return {
        "action": action,
        "pid": pid,
        "path": task.exe,
        "fd": str(fd) if fd is not None else None,
        "auid": task.auid,
        "family": family,
        "protocol": 0,
        "local_address": ip if local else None,
        "remote_address": None if local else ip,
        "local_port": port if local else None,
        "remote_port": None if local else port,
        "socket": unix_path,
        "time": event.sec,
        "uptime": _uptime(event, boot_time),
        "success": 0 if status == "failed" else 1,
        "status": status,
        "exe": task.exe,
        "comm": task.comm,
        "uid": task.uid,
        "euid": task.euid,
        "syscall": name,
        "exit": exit_code,
        "key": task.key,
        "time_ms": event.sec * 1000 + event.msec,
        "serial": event.serial,
    }


_SLOW = object()
_TEMPLATE_EVENT = Event((), [], True, (0, 0, 0))  # a template's stand-in: its times are replaced


def _fast_socket_row(event: Event, boot_time: float) -> object:
    """socket_row from the payloads alone for the plain case (SYSCALL first, with the
    kernel's head, connect/bind/accept/accept4 with one hex saddr); _SLOW for any other.

    The columns of the call, its outcome and the task part come from a row template cached
    per (call, outcome, task part): a storm repeats those, so a row is one dict copy and
    the per-event columns (pid, fd, address, times) set on it."""
    types = event.types
    if not types or types[0] != AUDIT_SYSCALL or AUDIT_SOCKADDR not in types:
        return _SLOW
    payloads = event.payloads
    syscall = payloads[0]
    head = _SYSCALL_HEAD.match(syscall)
    if head is None:
        return _SLOW
    sockaddr = payloads[types.index(AUDIT_SOCKADDR)]
    found = _SADDR.search(sockaddr)
    if found is None or len(found.group(1)) % 2 or sockaddr.count(b"saddr=") != 1:
        return _SLOW
    arch, nr, success, exit_text, a0, _ppid, pid = head.groups()
    template = _socket_template(arch, nr, success, exit_text, syscall[head.end() :])
    if template is None:
        return _SLOW
    row = template.copy()
    family, ip, port, unix_path = _sockaddr_columns(found[1])
    row["family"] = family
    if row["action"] == "bind":
        row["local_address"] = ip
        row["local_port"] = port
    else:
        row["remote_address"] = ip
        row["remote_port"] = port
    row["socket"] = unix_path
    row["pid"] = int(pid)
    row["fd"] = str(int(a0, 16))
    return _with_times(row, event, boot_time)


@functools.lru_cache(maxsize=1024)
def _socket_template(
    arch: bytes, nr: bytes, success: bytes, exit_text: bytes, task_part: bytes
) -> dict | None:
    """The socket_events row of a plain event but its per-event columns (pid, fd, the
    address, times: left empty); None when the fast path does not apply."""
    task = _task_of_bytes(task_part)
    if task.repeats_head:
        return None
    name, _audit_arch = _call_of(arch, nr)
    action = _FAST_ACTIONS.get(name)
    if action is None:
        return None
    return _socket_columns(
        _TEMPLATE_EVENT,
        0.0,
        action,
        name,
        None,
        None,
        task,
        _NO_ADDRESS,
        success == b"yes",
        int(exit_text),
    )


def socket_row(event: Event, boot_time: float) -> dict | None:
    """A socket_events row for connect, bind, accept and accept4 (and i386 socketcall).

    - action: bind, connect or accept (accept4 too); syscall keeps the real name (for
      socketcall, the name of the call it multiplexes).
    - The SOCKADDR address is the local side for bind and the remote side for connect and
      accept; the other side is not in the event and stays empty. AF_UNIX puts its path in
      `socket` (abstract names start with @); AF_NETLINK's address is the port id.
      An accept that passed no address buffer (or failed) has no SOCKADDR: family stays
      empty. A connect or bind without SOCKADDR was not logged by a socket rule: no row.
    - fd: a0 in decimal. protocol: the event does not carry it, so 0 (as osquery).
    - status: succeeded; in_progress for connect failing with EINPROGRESS; no_client for
      accept failing with EAGAIN; else failed. success is 0 only for failed (as osquery).
    """
    row = _fast_socket_row(event, boot_time)
    return _socket_row(event, boot_time) if row is _SLOW else row  # type: ignore[return-value]


def _socket_row(event: Event, boot_time: float) -> dict | None:
    """socket_row the careful way, from the parsed records: every case."""
    call = _syscall(event)
    if call is None:
        return None
    name = call.name
    args: Record | None = call.record
    if name == "socketcall":
        multiplexed = SOCKETCALL_CALLS.get(call.record.hexint("a0") or -1)
        if multiplexed is None:
            return None
        name = multiplexed
        args = event.first(AUDIT_SOCKETCALL)
    action = SOCKET_ACTIONS.get(name)
    if action is None:
        return None
    syscall_fields = call.record.fields
    sockaddr_record = event.first(AUDIT_SOCKADDR)
    if sockaddr_record is None and action != "accept":
        # connect and bind always log their address when audited by a rule; without it the
        # event was logged for another reason (e.g. a multicast join's EVENT_LISTENER).
        return None
    address = _NO_ADDRESS
    if sockaddr_record is not None:
        address = _address_columns(sockaddr_record.data("saddr"))
    return _socket_columns(
        event,
        boot_time,
        action,
        name,
        parse_decimal(syscall_fields.get("pid")),
        args.hexint("a0") if args is not None else None,
        _task(call.record),
        address,
        syscall_fields.get("success") == "yes",
        parse_decimal(syscall_fields.get("exit")),
    )


# -- many rows at once ------------------------------------------------------------------------
#
# A query over a ring builds thousands of rows: the builders below take every event a query
# selected as (types, payloads, sec, msec, serial) parts (blocks.item_parts decodes each block
# once), run the fast paths above in one loop without an Event per row, build only the
# columns the query uses, and can make the rows in osquery's text form directly (a text copy
# of each cached template, the per-event values turned to text once). Events the fast paths
# do not take go through process_row/socket_row as they are, the row then cut and encoded.


class TextEncoding(Protocol):
    """How osquery's text form writes values (sdk/plugin.py's encode_value and the two rules
    of it the builders apply directly); passed in by the app so events/ holds no copy."""

    @property
    def value(self) -> Callable[[object], str]: ...
    @property
    def integer(self) -> Callable[[int], str]: ...
    @property
    def null(self) -> str: ...


# the items' runs, boot time, the columns wanted (spec order), the text encoding or None ->
# each item's row or None (process_rows, socket_rows).
ManyRows = Callable[[Iterable[Run], float, Sequence[str], "TextEncoding | None"], list]

# The process_events columns an exec's EXECVE record gives (overflows: whether it is whole).
_ARGV_COLUMNS = frozenset({"cmdline", "argv", "cmdline_size", "overflows"})


class _Views:
    """Per query: each cached row template cut to the query's columns (as text if asked).

    Keyed by the template's id, with the template kept beside its view so an id reused by a
    later template (after the lru_cache dropped the first) is never mistaken for it."""

    __slots__ = ("columns", "found", "text")

    def __init__(self, columns: Sequence[str], text: TextEncoding | None) -> None:
        self.columns = columns
        self.text = text
        self.found: dict[int, tuple[dict, dict]] = {}

    def row(self, template: dict) -> dict:
        """A new row: a copy of the template's view."""
        return self.view(template).copy()

    def view(self, template: dict) -> dict:
        """The template cut to the query's columns (shared: copy it to make a row)."""
        view = self.found.get(id(template))
        return view[1] if view is not None and view[0] is template else self.make(template)

    def make(self, template: dict) -> dict:
        values = [template[name] for name in self.columns]
        if self.text is not None:
            values = list(map(self.text.value, values))
        view = key_sharing_dict(self.columns, values)
        self.found[id(template)] = (template, view)
        return view


def cut_row(
    row: dict | None, columns: Sequence[str], text: TextEncoding | None = None
) -> dict | None:
    """A whole row built the careful way, cut to `columns` (as text if asked)."""
    if row is None:
        return None
    if text is None:
        return {name: row.get(name) for name in columns}
    encode = text.value
    return {name: encode(row.get(name)) for name in columns}


def _after_space(rest: bytes) -> bytes:
    """A payload's body from what follows its `audit(...):` (one space dropped, as _body)."""
    return rest[1:] if rest[:1] == b" " else rest


@functools.lru_cache(maxsize=1024)
def _exec_template_of(
    arch: bytes,
    nr: bytes,
    success: bytes,
    exit_text: bytes,
    task_part: bytes,
    cwd_rest: bytes | None,
    path_rests: tuple[bytes, ...],
) -> dict | None:
    """_exec_template keyed by what follows each record's `audit(...):` (every record of an
    event has the same one, coalesce.py), sparing _body per record and event."""
    return _exec_template(
        arch,
        nr,
        success,
        exit_text,
        task_part,
        None if cwd_rest is None else _after_space(cwd_rest),
        tuple(map(_after_space, path_rests)),
    )


# An EXECVE body's start: `argc=N` (one space before it dropped, as _body).
_ARGC = re.compile(rb" ?argc=(0|[1-9][0-9]*)")
# An argument _fast_argv takes as it is quoted and argv_columns writes with no escape: no
# whitespace (split_fields' words), quote, backslash or control.
_PLAIN_ARG = rb'"([^"\\\x00-\x20]*)"'


@functools.lru_cache(maxsize=64)
def _plain_args(count: int) -> re.Pattern[bytes]:
    """What follows `argc=N` in an EXECVE body of N plain quoted arguments, to its end."""
    return re.compile(b"".join(b" a%d=" % i + _PLAIN_ARG for i in range(count)) + rb"[\x00\n]*")


def _argv_at(data: bytes, start: int, end: int) -> tuple[str, str, int] | None:
    """argv_columns(_fast_argv(payload)) for the EXECVE body data[start:end] when every
    argument is plain (valid UTF-8, quoted, with no whitespace, quote, backslash or control):
    one match and one decode; None for any other body (then the general way)."""
    argc = _ARGC.match(data, start, end)
    if argc is None:
        return None
    count = int(argc[1])
    if 6 * count > end - argc.end():  # each takes 6 bytes at least (` a0=""`): not all here
        return None  # (and no pattern of a crafted argc=99999999999 is compiled)
    found = _plain_args(count).fullmatch(data, argc.end(), end)
    if found is None:
        return None
    if not count:
        return "", "[]", 0
    joined = b" ".join(found.groups())
    try:
        cmdline = joined.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return cmdline, '["' + cmdline.replace(" ", '", "') + '"]', len(joined)


_TIME_COLUMNS = frozenset({"time", "uptime", "time_ms", "serial"})


def _times_setter(
    wanted: frozenset[str], boot_time: float, text: TextEncoding | None
) -> Callable[[dict, Sequence[int], int], None]:
    """What sets a row's time, uptime, time_ms and serial (those `wanted`, as text if asked)
    from a run's stamps, as _with_times does."""
    with_time, with_uptime = "time" in wanted, "uptime" in wanted
    with_ms, with_serial = "time_ms" in wanted, "serial" in wanted
    as_text = text is not None
    integer = text.integer if text is not None else int
    null = text.null if text is not None else None

    def put_times(row: dict, stamps: Sequence[int], index: int) -> None:
        at = 3 * index
        sec = stamps[at]
        if with_time:
            row["time"] = integer(sec) if as_text else sec
        if with_uptime:
            uptime = _uptime_at(sec, stamps[at + 1], boot_time)
            row["uptime"] = null if uptime is None else integer(uptime) if as_text else uptime
        if with_ms:
            ms = sec * 1000 + stamps[at + 1]
            row["time_ms"] = integer(ms) if as_text else ms
        if with_serial:
            serial = stamps[at + 2]
            row["serial"] = integer(serial) if as_text else serial

    return put_times


def _event_at(run: Run, index: int) -> Event:
    """Item `index` of a run as an Event, for the careful builders."""
    data, offsets, starts = run.data, run.offsets, run.starts
    payloads = [data[offsets[j] : offsets[j + 1]] for j in range(starts[index], starts[index + 1])]
    at = 3 * index
    return Event(run.types[index], payloads, True, tuple(run.stamps[at : at + 3]))  # type: ignore[arg-type]


def process_rows_python(
    runs: Iterable[Run],
    boot_time: float,
    columns: Sequence[str],
    text: TextEncoding | None = None,
) -> list[dict | None]:
    """[process_row(event) cut to `columns`, as text if `text`] for each item of the runs,
    None where an event gives no row. The plain exec goes the way of _fast_exec_row, reading
    its arguments only when the query uses an argument column."""
    rows: list[dict | None] = []
    add = rows.append
    views = _Views(columns, text)
    new_row = views.row
    wanted = frozenset(columns)
    with_pid, with_parent = "pid" in wanted, "parent" in wanted
    with_args = not wanted.isdisjoint(_ARGV_COLUMNS)
    with_cmdline, with_argv = "cmdline" in wanted, "argv" in wanted
    with_size = "cmdline_size" in wanted
    put_times = _times_setter(wanted, boot_time, text)
    with_times = not wanted.isdisjoint(_TIME_COLUMNS)
    as_text = text is not None
    integer = text.integer if text is not None else int
    head_match = _SYSCALL_HEAD.match
    exec_shape = _exec_shape
    template_of = _exec_template_of
    last_types: object = None
    shape = None
    for run in runs:
        data, offsets, starts, all_types, stamps, indices = run
        find = data.find
        for index in indices:
            types = all_types[index]
            first = starts[index]
            start = offsets[first]
            if types is not last_types:  # events of one shape share their types tuple
                last_types = types
                shape = exec_shape(types) if types.__class__ is tuple else None
            head = head_match(data, start, offsets[first + 1]) if shape is not None else None
            template = None
            if head is not None:
                execve_at, cwd_at, paths_at = shape  # type: ignore[misc]
                # Every record of the event starts with the same `audit(...):` (coalesce.py).
                after = find(b"):", start + 6) + 2 - start
                arch, nr, success, exit_text, _a0, ppid, pid = head.groups()
                at = first + cwd_at
                if len(paths_at) == 2:  # the usual exec: the program and its loader
                    one, two = first + paths_at[0], first + paths_at[1]
                    paths = (
                        data[offsets[one] + after : offsets[one + 1]],
                        data[offsets[two] + after : offsets[two + 1]],
                    )
                else:
                    paths = tuple(
                        [
                            data[offsets[first + i] + after : offsets[first + i + 1]]
                            for i in paths_at
                        ]
                    )
                template = template_of(
                    arch,
                    nr,
                    success,
                    exit_text,
                    data[head.end() : offsets[first + 1]],
                    data[offsets[at] + after : offsets[at + 1]] if cwd_at >= 0 else None,
                    paths,
                )
            argv_text = None
            if template is not None and with_args:
                at = first + execve_at
                argv_text = _argv_at(data, offsets[at] + after, offsets[at + 1])
                if argv_text is None:
                    args = _fast_argv(data[offsets[at] : offsets[at + 1]])
                    if args is None:
                        template = None
                    else:
                        argv_text = argv_columns(args)
            if template is None:
                add(cut_row(process_row(_event_at(run, index), boot_time), columns, text))
                continue
            row = new_row(template)
            if with_pid:
                row["pid"] = integer(int(pid)) if as_text else int(pid)
            if argv_text is not None:
                cmdline, argv, size = argv_text
                if with_cmdline:
                    row["cmdline"] = cmdline
                if with_size:
                    row["cmdline_size"] = integer(size) if as_text else size
                if with_argv:
                    row["argv"] = argv
            if with_parent:
                row["parent"] = integer(int(ppid)) if as_text else int(ppid)
            if with_times:
                put_times(row, stamps, index)
            add(row)
    return rows


def socket_rows_python(
    runs: Iterable[Run],
    boot_time: float,
    columns: Sequence[str],
    text: TextEncoding | None = None,
) -> list[dict | None]:
    """[socket_row(event) cut to `columns`, as text if `text`] for each item of the runs,
    None where an event gives no row; the plain case the way of _fast_socket_row."""
    rows: list[dict | None] = []
    add = rows.append
    views = _Views(columns, text)
    new_row = views.row
    wanted = frozenset(columns)
    with_family, with_socket = "family" in wanted, "socket" in wanted
    # The address columns the query uses on each side (None for one it does not).
    local = [name if name in wanted else None for name in ("local_address", "local_port")]
    remote = [name if name in wanted else None for name in ("remote_address", "remote_port")]
    with_address = local != [None, None] or remote != [None, None]
    with_pid, with_fd = "pid" in wanted, "fd" in wanted
    put_times = _times_setter(wanted, boot_time, text)
    with_times = not wanted.isdisjoint(_TIME_COLUMNS)
    as_text = text is not None
    integer = text.integer if text is not None else int
    null = text.null if text is not None else None
    with_sockaddr = with_family or with_address or with_socket
    head_match = _SYSCALL_HEAD.match
    saddr_search = _SADDR.search
    last_types: object = None
    sockaddr_at = -1  # where the SOCKADDR record is in the events of the last shape seen
    for run in runs:
        data, offsets, starts, all_types, stamps, indices = run
        count = data.count
        for index in indices:
            types = all_types[index]
            if types is not last_types:  # events of one shape share their types tuple
                last_types = types
                sockaddr_at = _sockaddr_index(types)
            first = starts[index]
            template = None
            if sockaddr_at > 0:
                end = offsets[first + 1]
                head = head_match(data, offsets[first], end)
                if head is not None:
                    at = first + sockaddr_at
                    saddr = saddr_search(data, offsets[at], offsets[at + 1])
                    hexed = saddr[1] if saddr is not None else b"-"
                    if not len(hexed) % 2 and count(b"saddr=", offsets[at], offsets[at + 1]) == 1:
                        arch, nr, success, exit_text, a0, _ppid, pid = head.groups()
                        template = _socket_template(
                            arch, nr, success, exit_text, data[head.end() : end]
                        )
            if template is None:
                add(cut_row(socket_row(_event_at(run, index), boot_time), columns, text))
                continue
            row = new_row(template)
            if with_sockaddr:
                family, ip, port, unix_path = _sockaddr_at(hexed)
                if as_text:  # an int or None, a str or None each
                    family = null if family is None else integer(family)
                    port = null if port is None else integer(port)
                    ip = null if ip is None else ip
                    unix_path = null if unix_path is None else unix_path
            if with_family:
                row["family"] = family
            if with_address:  # the local side for bind, the remote side else (_socket_columns)
                side = local if template["action"] == "bind" else remote
                for name, value in zip(side, (ip, port)):
                    if name is not None:
                        row[name] = value
            if with_socket:
                row["socket"] = unix_path
            if with_pid:
                row["pid"] = integer(int(pid)) if as_text else int(pid)
            if with_fd:
                row["fd"] = str(int(a0, 16))
            if with_times:
                put_times(row, stamps, index)
            add(row)
    return rows


_INET6_HEX = family_hex(AF_INET6)
_NO_PORT = b"0000"


def _sockaddr_at(saddr: bytes) -> Address:
    """_sockaddr_columns of a saddr hex, without its cache for the addresses a storm cycles
    through: an AF_INET one read in place (records.decode_inet_saddr_hex), an AF_INET6 one
    worked out once for every port (the port is bytes 2-3, big-endian, as for AF_INET)."""
    inet = decode_inet_saddr_hex(saddr)
    if inet is not None:
        return AF_INET, inet[0], inet[1], None
    if saddr[:4] not in _INET6_HEX or len(saddr) < 48:
        return _sockaddr_columns(saddr)
    family, address, _port, path = _sockaddr_columns(saddr[:4] + _NO_PORT + saddr[8:])
    return family, address, int(saddr[4:8], 16), path


def _sockaddr_index(types: Sequence[int]) -> int:
    """Where the SOCKADDR record is in an event of the shape the fast socket path takes
    (SYSCALL first); -1 for any other."""
    if types and types[0] == AUDIT_SYSCALL and AUDIT_SOCKADDR in types:
        return types.index(AUDIT_SOCKADDR)
    return -1


# -- the compiled fast paths ------------------------------------------------------------------
#
# _rowsfast.c does the loops of process_rows_python and socket_rows_python in C where
# scripts/build_accel.py built it (`make install`): the same record reading, calling back
# into the functions here for the row views, the general argument and address readers and
# every event the fast paths do not take. Without it (a zipapp, no compiler, or
# OSQUERY_AUDIT_EXT_PURE_PYTHON=1), the Python loops run.
_rowsfast = compiled(f"{__package__}._rowsfast")
ACCELERATED = _rowsfast is not None  # whether process_rows and socket_rows run compiled


def _slow_rows(
    whole_row: Callable[[Event, float], dict | None],
    boot_time: float,
    columns: Sequence[str],
    text: TextEncoding | None,
) -> Callable[[Run, int], dict | None]:
    def slow(run: Run, index: int) -> dict | None:
        return cut_row(whole_row(_event_at(run, index), boot_time), columns, text)

    return slow


def _compiled_rows(
    run_rows: Callable[[Run, tuple, list], None],
    runs: Iterable[Run],
    boot_time: float,
    columns: Sequence[str],
    text: TextEncoding | None,
    view_of: Callable[..., object],
    slow: Callable[[Run, int], dict | None],
    shape_of: Callable[[tuple[int, ...]], object],
    extra: Callable[[bytes], object],
) -> list[dict | None]:
    """The rows of every run by `run_rows` (_rowsfast's process_run or socket_run)."""
    query = (
        frozenset(columns),
        boot_time,
        None if text is None else text.integer,
        None if text is None else text.null,
        view_of,
        slow,
        shape_of,
        {},  # the views by the record parts they depend on, for the C loop
        extra,
    )
    rows: list[dict | None] = []
    for run in runs:
        run_rows(run, query, rows)
    return rows


def process_rows_compiled(
    runs: Iterable[Run],
    boot_time: float,
    columns: Sequence[str],
    text: TextEncoding | None = None,
) -> list[dict | None]:
    """process_rows_python's rows, the loop in C (_rowsfast.process_run)."""
    view = _Views(columns, text).view

    def view_of(*parts: object) -> dict | None:
        template = _exec_template_of(*parts)  # type: ignore[arg-type]
        return None if template is None else view(template)

    return _compiled_rows(
        _rowsfast.process_run,  # type: ignore[attr-defined]
        runs,
        boot_time,
        columns,
        text,
        view_of,
        _slow_rows(process_row, boot_time, columns, text),
        _exec_shape,
        argv_columns,
    )


def socket_rows_compiled(
    runs: Iterable[Run],
    boot_time: float,
    columns: Sequence[str],
    text: TextEncoding | None = None,
) -> list[dict | None]:
    """socket_rows_python's rows, the loop in C (_rowsfast.socket_run)."""
    view = _Views(columns, text).view

    def view_of(*parts: bytes) -> tuple[dict, bool] | None:
        template = _socket_template(*parts)  # type: ignore[arg-type]
        return None if template is None else (view(template), template["action"] == "bind")

    return _compiled_rows(
        _rowsfast.socket_run,  # type: ignore[attr-defined]
        runs,
        boot_time,
        columns,
        text,
        view_of,
        _slow_rows(socket_row, boot_time, columns, text),
        _sockaddr_index,
        _sockaddr_at,
    )


process_rows: ManyRows = process_rows_compiled if ACCELERATED else process_rows_python
socket_rows: ManyRows = socket_rows_compiled if ACCELERATED else socket_rows_python
