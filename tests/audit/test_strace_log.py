"""The `strace -f` log reader: line forms, resumed calls, ABIs, processes, bad logs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from osquery_audit_ext.audit.strace_log import (
    audit_syscall_name,
    decode_string,
    fd_path,
    read_strace_log,
    split_args,
)
from osquery_audit_ext.errors import ConfigError


def read(text: str):
    return read_strace_log(text.strip().splitlines(), "x86_64")


def test_line_forms_and_resumed_calls() -> None:
    log = read(
        """
100 1700000000.500000 [  59] execve("/usr/bin/prog", ["prog"], 0x7ffd /* 3 vars */) = 0
100 1700000000.600000 [  56] clone(child_stack=NULL, flags=SIGCHLD) = 101
101 1700000000.700000 [ 257] openat(AT_FDCWD</srv/x>, "a, b", O_WRONLY|O_CREAT, 0600 <unfinished ...>
100 1700000000.800000 [  61] wait4(-1,  <unfinished ...>
101 1700000000.900000 [ 257] <... openat resumed>) = 3</srv/x/a, b>
101 1700000001.000000 [  87] unlink("gone")  = -1 ENOENT (No such file or directory)
101 1700000001.100000 +++ exited with 0 +++
100 1700000001.200000 <... wait4 resumed>[{WIFEXITED(s) && WEXITSTATUS(s) == 0}], 0, NULL) = 101
100 1700000001.300000 --- SIGCHLD {si_signo=SIGCHLD} ---
100 1700000001.500000 [ 231] exit_group(2) = ?
100 1700000001.500000 +++ exited with 2 +++
"""
    )
    # In the order they returned (as audit sees them: at syscall exit).
    assert [c.name for c in log.calls] == [
        "execve", "clone", "openat", "unlink", "wait4", "exit_group"
    ]  # fmt: skip
    assert log.duration == pytest.approx(1.0)
    assert log.processes == 2 and log.exit_code == 2 and log.program == "/usr/bin/prog"
    openat = log.calls[2]
    assert openat.args == ("AT_FDCWD</srv/x>", '"a, b"', "O_WRONLY|O_CREAT", "0600")
    assert openat.result == "3" and openat.result_path == "/srv/x/a, b"
    assert openat.exe == "/usr/bin/prog" and openat.cwd == "/srv/x"  # inherited at clone
    unlink = log.calls[3]
    assert unlink.failed and unlink.errno == "ENOENT" and unlink.cwd == "/srv/x"
    assert log.calls[5].result == "?" and not log.calls[5].failed


def test_abi_from_numbers_then_names_then_the_process() -> None:
    log = read(
        """
7 [  59] execve("./p32", ["./p32"], 0x7ffe /* 1 var */) = 0
7 [  45] brk(NULL) = 0x5663a000
7 [ 213] setuid32(0) = 0
7 [ 180] pread64(3, "", 4, 0) = 0
8 [  17] pread64(3, "", 4, 0) = 0
9 mmap2(NULL, 4096, PROT_READ, MAP_PRIVATE, 3, 0) = 0xf7f00000
9 getuid() = 0
"""
    )
    got = [(c.pid, c.name, c.abi, c.audit_name) for c in log.calls]
    assert got == [
        (7, "execve", "b64", "execve"),
        (7, "brk", "b32", "brk"),  # 45 is brk on i386, not on x86_64
        (7, "setuid32", "b32", "setuid32"),
        (7, "pread64", "b32", "pread64"),
        (8, "pread64", "b64", "pread"),  # strace's name, libaudit's spelling
        (9, "mmap2", "b32", "mmap2"),  # only i386 has it
        (9, "getuid", "b32", "getuid"),  # both have it: as the process's last call
    ]
    assert log.duration is None and log.program == "./p32"  # no cwd known: left relative


def test_calls_cut_short_by_the_end_of_the_process_still_count() -> None:
    log = read(
        """
[pid  5] 10:00:00.25 nanosleep({tv_sec=5, tv_nsec=0},  <unfinished ...>
[pid  5] 10:00:01 +++ killed by SIGKILL +++
"""
    )
    assert [(c.name, c.result) for c in log.calls] == [("nanosleep", None)]
    assert log.duration == pytest.approx(0.75)


def test_a_log_without_calls_is_refused_with_its_first_line() -> None:
    with pytest.raises(ConfigError, match=r"x.log: no system calls found.*line 2: 'hello'"):
        read_strace_log(["", "hello", "world"], "x86_64", source="x.log")
    with pytest.raises(ConfigError, match="unknown machine"):
        read_strace_log(["getpid() = 1"], "vax")


def test_lines_not_understood_are_kept_with_their_numbers() -> None:
    log = read("getpid() = 1\nnot strace\ngetppid() = 0")
    assert log.unparsed == [(2, "not strace")] and len(log.calls) == 2


def test_strings_and_fd_paths() -> None:
    assert decode_string(r'"a\"b\\c\n\x41\101"') == 'a"b\\c\nAA'
    assert decode_string('"cut"...') is None and decode_string("NULL") is None
    assert fd_path("3</etc/passwd>") == "/etc/passwd"
    assert fd_path("AT_FDCWD</root>") == "/root" and fd_path("AT_FDCWD") is None
    assert fd_path("4</tmp/x (deleted)>") == "/tmp/x"
    assert audit_syscall_name("x86_64", "pwrite64") == "pwrite"
    assert audit_syscall_name("i386", "newfstatat") is None


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",))), max_size=6))
def test_split_args_keeps_quoted_strings_whole(texts: list[str]) -> None:
    def quote(text: str) -> str:
        escaped = "".join(
            "\\" + c if c in '"\\' else c if c.isprintable() else f"\\x{ord(c) & 0xFF:02x}"
            for c in text
        )
        return f'"{escaped}"'

    printable = ["".join(c for c in t if c.isprintable() and ord(c) < 128) for t in texts]
    args = split_args(", ".join(quote(t) for t in printable))
    assert [decode_string(a) for a in args] == printable


def test_an_execveat_line_without_its_path_keeps_the_program() -> None:
    # Found by hypothesis: a succeeded execveat whose arguments were cut to the dirfd.
    log = read(
        """
100 1700000000.500000 [  59] execve("/usr/bin/prog", ["prog"], 0x7ffd /* 3 vars */) = 0
100 1700000000.600000 [ 322] execveat(3) = 0
100 1700000000.700000 [ 322] execveat(3, "/usr/bin/next", [], NULL, 0) = 0
"""
    )
    assert [c.name for c in log.calls] == ["execve", "execveat", "execveat"]
    assert [c.exe for c in log.calls] == ["/usr/bin/prog", "/usr/bin/prog", "/usr/bin/next"]
