"""The audit rule model: what one struct audit_rule_data says, independent of its encoding.

A Rule is what auditctl builds from `-a/-w ...` and what the kernel lists back: a filter
list, an action, the syscall set, and the fields in their order. Field values are u32 ints
(negative numbers already wrapped), or str for the string fields (path, dir, exe, key,
SELinux labels).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Union

from . import fields as F

FieldValue = Union[int, str]

# Every syscall bit set: what `-S all`, watches and syscall-less lists carry.
ALL_SYSCALLS: frozenset[int] = frozenset(range(F.SYSCALL_BITS))
# The bits auditctl looks at to decide "all" (the kernel clears the class bits on the top).
ALL_SYSCALLS_CHECKED: frozenset[int] = frozenset(range(F.SYSCALL_BITS - 32))


@dataclass(frozen=True)
class Field:
    """One rule field: id (fields.UID ...), operator bits (fields.OP_EQUAL ...), value."""

    id: int
    op: int
    value: FieldValue

    @property
    def name(self) -> str | None:
        return F.FIELD_NAMES.get(self.id)

    @property
    def symbol(self) -> str | None:
        return F.OPERATOR_SYMBOLS.get(self.op)


@dataclass(frozen=True)
class Rule:
    """One audit rule. `prepend` (-A) only matters when adding: the kernel never lists it."""

    list: int
    action: int
    syscalls: frozenset[int]
    fields: tuple[Field, ...]
    prepend: bool = False

    @property
    def all_syscalls(self) -> bool:
        return ALL_SYSCALLS_CHECKED <= self.syscalls

    @property
    def list_name(self) -> str:
        return F.LIST_NAMES.get(self.list, str(self.list))

    @property
    def action_name(self) -> str:
        return F.ACTION_NAMES.get(self.action, str(self.action))

    @property
    def keys(self) -> list[str]:
        """The rule's keys (-k), in order; several keys share one field joined by \\x01."""
        keys: list[str] = []
        for field in self.fields:
            if field.id == F.FILTERKEY and isinstance(field.value, str):
                keys.extend(k for k in field.value.split(F.KEY_SEPARATOR) if k)
        return keys

    def values(self, field_id: int) -> list[FieldValue]:
        """The values of every field with this id, in order."""
        return [field.value for field in self.fields if field.id == field_id]

    @property
    def arch(self) -> int | None:
        """The value of the last arch field (the one auditctl resolves -S names with)."""
        found = self.values(F.ARCH)
        return int(found[-1]) if found else None

    @property
    def is_watch(self) -> bool:
        """True when `auditctl -l` prints the rule in -w form: only path/dir, perm and key
        fields, a perm field, and every syscall (lists without syscalls always qualify)."""
        ids = {field.id for field in self.fields}
        if F.PERM not in ids or not ids <= {F.PERM, F.FILTERKEY, F.DIR, F.WATCH}:
            return False
        return self.list in F.LISTS_WITHOUT_SYSCALLS or self.all_syscalls

    def with_keys(self, *keys: str) -> Rule:
        """A copy with `keys` added after the rule's own, in the single key field at the end."""
        joined = F.KEY_SEPARATOR.join([*self.keys, *keys])
        others = tuple(field for field in self.fields if field.id != F.FILTERKEY)
        return dataclasses.replace(self, fields=(*others, Field(F.FILTERKEY, F.OP_EQUAL, joined)))
