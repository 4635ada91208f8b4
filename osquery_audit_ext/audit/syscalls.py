"""Syscall names and numbers per machine, and the machine behind an audit arch value.

The tables are generated from `ausyscall MACHINE --dump` (scripts/gen_syscalls.py), so names
match what auditctl accepts and prints. A machine is libaudit's name for a syscall ABI:
"x86_64", "i386", "aarch64", "armeb", "ppc", "ppc64", "ppc64le", "s390", "s390x"; the usual
aliases (i686, armv7l, arm...) are accepted wherever a machine is asked for.
"""

from __future__ import annotations

import functools
import importlib.resources
import platform
from collections.abc import Mapping
from types import MappingProxyType

# Read through importlib.resources so the tables load from the .ext zipapp too.
TABLE_DIR = importlib.resources.files(__package__) / "syscall_tables"

AUDIT_ARCH_64BIT = 0x80000000

# Machine -> its AUDIT_ARCH_* value (EM_* | 64-bit | little-endian bits).
MACHINE_AUDIT_ARCH: dict[str, int] = {
    "i386": 0x40000003,
    "x86_64": 0xC000003E,
    "armeb": 0x40000028,
    "aarch64": 0xC00000B7,
    "ppc": 0x00000014,
    "ppc64": 0x80000015,
    "ppc64le": 0xC0000015,
    "s390": 0x00000016,
    "s390x": 0x80000016,
}
AUDIT_ARCH_MACHINE: dict[int, str] = {value: name for name, value in MACHINE_AUDIT_ARCH.items()}

# Names libaudit also takes for a machine (uname -m spellings).
MACHINE_ALIASES: dict[str, str] = {
    "i486": "i386",
    "i586": "i386",
    "i686": "i386",
    "arm": "armeb",
    "armv5tejl": "armeb",
    "armv5tel": "armeb",
    "armv6l": "armeb",
    "armv7l": "armeb",
}

# The 32-bit ABI of a 64-bit machine: what `-F arch=b32` means there.
COMPAT_MACHINE: dict[str, str] = {
    "x86_64": "i386",
    "ppc64": "ppc",
    "s390x": "s390",
    "aarch64": "armeb",
}


def canonical_machine(name: str) -> str | None:
    """libaudit's machine name for `name` (i686 -> i386), or None if it is unknown."""
    lowered = name.lower()
    lowered = MACHINE_ALIASES.get(lowered, lowered)
    return lowered if lowered in MACHINE_AUDIT_ARCH else None


def native_machine() -> str | None:
    """This host's machine, as auditctl detects it (uname -m)."""
    return canonical_machine(platform.machine())


def machine_for_audit_arch(audit_arch: int) -> str | None:
    """The machine of an AUDIT_ARCH value (0xc000003e -> "x86_64"), None if unknown."""
    return AUDIT_ARCH_MACHINE.get(audit_arch & 0xFFFFFFFF)


def audit_arch_for_machine(machine: str) -> int | None:
    """The AUDIT_ARCH value of a machine ("i686" -> 0x40000003), None if unknown."""
    canonical = canonical_machine(machine)
    return MACHINE_AUDIT_ARCH[canonical] if canonical else None


def arch_token(audit_arch: int) -> str:
    """ "b64" or "b32", as `auditctl -l` prints an arch value."""
    return "b64" if audit_arch & AUDIT_ARCH_64BIT else "b32"


@functools.cache
def _load(machine: str) -> tuple[Mapping[int, str], Mapping[str, int]]:
    by_number: dict[int, str] = {}
    by_name: dict[str, int] = {}
    path = TABLE_DIR / f"{machine}.tsv"
    for line in path.read_text(encoding="ascii").splitlines():
        if not line or line.startswith("#"):
            continue
        number, name = line.split("\t")
        by_number[int(number)] = name
        by_name.setdefault(name.lower(), int(number))
    return MappingProxyType(by_number), MappingProxyType(by_name)


def syscall_table(machine_name: str) -> Mapping[int, str] | None:
    """Number -> name for a machine, None if there is no table for it."""
    machine = canonical_machine(machine_name)
    return _load(machine)[0] if machine else None


def syscall_name(machine_name: str, nr: int) -> str | None:
    """The name of syscall `nr` on machine `machine_name` ("x86_64", 59 -> "execve")."""
    machine = canonical_machine(machine_name)
    return _load(machine)[0].get(nr) if machine else None


def syscall_number(machine_name: str, name: str) -> int | None:
    """The number of syscall `name` on machine `machine_name` (case-insensitive, as in libaudit)."""
    machine = canonical_machine(machine_name)
    return _load(machine)[1].get(name.lower()) if machine else None
