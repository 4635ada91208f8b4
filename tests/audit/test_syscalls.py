"""Syscall tables against the installed ausyscall, and the machine / arch lookups."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from osquery_audit_ext.audit import syscalls
from osquery_audit_ext.audit.syscalls import (
    arch_token,
    audit_arch_for_machine,
    canonical_machine,
    machine_for_audit_arch,
    syscall_name,
    syscall_number,
    syscall_table,
)

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "scripts" / "gen_syscalls.py"
needs_ausyscall = pytest.mark.skipif(
    shutil.which("ausyscall") is None, reason="ausyscall is not installed (Debian package auditd)"
)


@needs_ausyscall
def test_generated_tables_are_current() -> None:
    proc = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


@needs_ausyscall
@pytest.mark.parametrize("machine", ["x86_64", "i386", "aarch64", "armeb", "ppc64le", "s390x"])
def test_every_name_and_number_as_ausyscall_has_them(machine: str) -> None:
    dump = subprocess.run(
        ["ausyscall", machine, "--dump"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[1:]
    expected = {int(nr): name for nr, name in (line.split("\t") for line in dump)}
    assert dict(syscall_table(machine)) == expected
    for nr, name in expected.items():
        assert syscall_name(machine, nr) == name
        assert syscall_number(machine, name) == nr


def test_well_known_syscalls() -> None:
    assert syscall_number("x86_64", "execve") == 59
    assert syscall_number("i386", "execve") == 11
    assert syscall_number("aarch64", "execve") == 221
    assert syscall_name("x86_64", 59) == "execve"
    assert syscall_name("i686", 11) == "execve"  # alias of i386
    assert syscall_number("x86_64", "EXECVE") == 59  # libaudit compares without case
    assert syscall_number("i386", "accept") is None  # i386 only has socketcall/accept4
    assert syscall_number("aarch64", "open") is None
    assert syscall_name("x86_64", 1999) is None
    assert syscall_name("sparc", 1) is None
    assert syscall_number("sparc", "read") is None


def test_machines_and_audit_arch_values() -> None:
    assert machine_for_audit_arch(0xC000003E) == "x86_64"
    assert machine_for_audit_arch(0x40000003) == "i386"
    assert machine_for_audit_arch(0xC00000B7) == "aarch64"
    assert machine_for_audit_arch(0x40000028) == "armeb"
    assert machine_for_audit_arch(0x1234) is None
    assert audit_arch_for_machine("x86_64") == 0xC000003E
    assert audit_arch_for_machine("i686") == 0x40000003
    assert audit_arch_for_machine("armv7l") == 0x40000028
    assert audit_arch_for_machine("mips") is None
    assert canonical_machine("I686") == "i386"
    assert canonical_machine("riscv64") is None
    assert arch_token(0xC000003E) == "b64"
    assert arch_token(0x40000003) == "b32"
    assert arch_token(0xC00000B7) == "b64"


def test_every_machine_has_a_table() -> None:
    for machine, audit_arch in syscalls.MACHINE_AUDIT_ARCH.items():
        assert machine_for_audit_arch(audit_arch) == machine
        table = syscall_table(machine)
        assert table and len(table) > 300
