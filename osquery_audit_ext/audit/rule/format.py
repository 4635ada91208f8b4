"""Rules as `auditctl -l` prints them, and the audit_rules table's summary of a rule.

format_rule() reproduces auditctl 3.0.9's listing exactly, quirks included: the -w form for
any exit rule made only of path/dir, perm and key on every syscall (even without a path), the
arch fields before -S, syscall names from the arch field's machine, a0-a3 in hex, exit as
-ERRNO, ids signed (unset is -1), inode unsigned, keys split on \\x01.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..syscalls import arch_token, machine_for_audit_arch, native_machine, syscall_name
from . import fields as F
from .model import Field, Rule


@dataclass(frozen=True)
class RuleSummary:
    """The audit_rules table's columns for one rule (see tables/audit_rules.table)."""

    list: str
    action: str
    type: str  # "file" (printed in -w form) or "syscall"
    arch: str
    syscalls: str
    path: str
    permissions: str
    key: str
    fields: str


def _signed(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _perm_letters(value: int) -> str:
    return "".join(letter for letter, bit in F.PERM_LETTERS.items() if value & bit)


def _arch_text(field: Field) -> str:
    value = int(field.value)
    if machine_for_audit_arch(value) is None:
        return f"0x{value & 0xFFFFFFFF:X}"
    return arch_token(value)


def _syscall_machine(rule: Rule, machine: str | None) -> str | None:
    """The machine whose names -S is printed with: the last arch field's, else the host's."""
    arch = rule.arch
    if arch:
        return machine_for_audit_arch(arch)
    return machine or native_machine()


def _syscalls_text(rule: Rule, machine: str | None) -> str:
    """'all', the comma-joined names in number order, or '' (none, or a list without -S)."""
    if rule.list in F.LISTS_WITHOUT_SYSCALLS:
        return ""
    if rule.all_syscalls:
        return "all"
    # io_uring rules hold io_uring operation numbers, not syscalls (no names for those here).
    table_machine = None if rule.list == F.LIST_IO_URING else _syscall_machine(rule, machine)
    names = []
    for nr in sorted(rule.syscalls):
        name = syscall_name(table_machine, nr) if table_machine else None
        names.append(name or str(nr))
    return ",".join(names)


def _field_text(field: Field, watch: bool) -> str:
    """One field as auditctl prints it, with its leading space (none before -w)."""
    name = field.name
    symbol = F.OPERATOR_SYMBOLS.get(field.op, "?")
    value = field.value
    if name is None:
        return f" f{field.id}{symbol}{_signed(int(value)) if isinstance(value, int) else value}"
    if isinstance(value, str):
        if field.id in (F.WATCH, F.DIR):
            return f"-w {value}" if watch else f" -F {name}={value}"
        if field.id == F.EXE:
            return f" -F exe={value}"
        if field.id == F.FILTERKEY:
            flag = " -k " if watch else " -F key="
            return "".join(flag + key for key in value.split(F.KEY_SEPARATOR) if key)
        return f" -F {name}{symbol}{value}"
    if field.id == F.MSGTYPE:
        return f" -F {name}{symbol}{F.MESSAGE_TYPES.get(value, _signed(value))}"
    if field.id == F.PERM:
        return f" -p {_perm_letters(value)}" if watch else f" -F perm={_perm_letters(value)}"
    if field.id in F.UNSIGNED_FIELDS:
        return f" -F {name}{symbol}{value & 0xFFFFFFFF}"
    if field.id == F.FIELD_COMPARE:
        pair = F.COMPARISONS.get(value)
        return f" -C {pair[0]}{symbol}{pair[1]}" if pair else ""
    if field.id in F.ARG_FIELDS:
        return f" -F {name}{symbol}0x{value & 0xFFFFFFFF:X}"
    if field.id == F.EXIT:
        signed = _signed(value)
        errno_name = F.ERRNO_NAMES.get(-signed) if signed < 0 else None
        return f" -F {name}{symbol}{'-' + errno_name if errno_name else signed}"
    if field.id == F.FSTYPE:
        names = {magic: fs for fs, magic in F.FS_TYPES.items()}
        return f" -F {name}{symbol}{names.get(value, _signed(value))}"
    return f" -F {name}{symbol}{_signed(value)}"


def _is_watch_form(rule: Rule) -> bool:
    return rule.is_watch and not rule.prepend


def format_rule(rule: Rule, *, machine: str | None = None) -> str:
    """The rule exactly as `auditctl -l` prints it (no newline). `machine` stands in for the
    host's when no arch field says which syscall table to name -S with; a rule to prepend
    (never listed by the kernel) prints as -A."""
    watch = _is_watch_form(rule)
    parts = []
    if not watch:
        parts.append(f"{'-A' if rule.prepend else '-a'} {rule.action_name},{rule.list_name}")
        for field in rule.fields:
            if field.id == F.ARCH:
                parts.append(f" -F arch{F.OPERATOR_SYMBOLS.get(field.op, '?')}{_arch_text(field)}")
        syscalls = _syscalls_text(rule, machine)
        if syscalls:
            parts.append(f" -S {syscalls}")
    parts.extend(_field_text(field, watch) for field in rule.fields if field.id != F.ARCH)
    return "".join(parts)


def describe_rule(rule: Rule, *, machine: str | None = None) -> RuleSummary:
    """The audit_rules columns of a rule: its parts as `auditctl -l` prints them."""
    watch = _is_watch_form(rule)
    arches = [
        ("" if field.op == F.OP_EQUAL else F.OPERATOR_SYMBOLS.get(field.op, "?"))
        + _arch_text(field)
        for field in rule.fields
        if field.id == F.ARCH
    ]
    paths = [str(f.value) for f in rule.fields if f.id in (F.WATCH, F.DIR)]
    perms = [_perm_letters(int(f.value)) for f in rule.fields if f.id == F.PERM]
    shown = (
        ""
        if watch
        else "".join(
            _field_text(field, watch)
            for field in rule.fields
            if field.id not in (F.ARCH, F.FILTERKEY)
        )
    )
    if watch or rule.list in F.LISTS_WITHOUT_SYSCALLS:
        syscalls = "all" if watch else ""
    else:
        syscalls = _syscalls_text(rule, machine)
    return RuleSummary(
        list=rule.list_name,
        action=rule.action_name,
        type="file" if watch else "syscall",
        arch=",".join(arches),
        syscalls=syscalls,
        path=paths[0] if paths else "",
        permissions=perms[0] if perms else "",
        key=",".join(rule.keys),
        fields=shown.strip(),
    )
