"""auditctl rule syntax -> Rule, as auditctl 3.0.9 builds struct audit_rule_data.

Accepted: -a/-A/-d LIST,ACTION (either order), -S (names, numbers, comma lists, repeated,
`all`), -F NAME OP VALUE (every field, every operator, symbolic values), -C F1 OP F2,
-w/-W PATH, -p PERMS, -k KEY (repeatable). Options take their value attached or as the next
word, as with getopt. auditctl's own behaviour is followed: the order of fields, the key field
last, every syscall bit set unless -S is given (none on the task list), -S names resolved
with the arch given before them (else the host's machine), a watch becoming dir= when the path
is a directory. Where auditctl would send something the kernel must refuse (bit operators on
ids, uid=-1, fields on the wrong list...), the rule is refused here with a one-line message.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shlex
import stat
from dataclasses import dataclass
from typing import Callable

from ...errors import RuleSyntaxError
from ..syscalls import (
    AUDIT_ARCH_64BIT,
    COMPAT_MACHINE,
    audit_arch_for_machine,
    canonical_machine,
    machine_for_audit_arch,
    native_machine,
    syscall_number,
)
from . import fields as F
from .model import ALL_SYSCALLS, Field, Rule

INTEGER_RE = re.compile(r"-?(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")
OPTIONS_WITH_VALUE = frozenset("aAdSFCwWkp")
RULE_OPTIONS = "-a, -A, -d, -w, -W, -S, -F, -C, -k, -p"


@dataclass(frozen=True)
class RuleCommand:
    """What one rule line asks for: op is "add" (-a, -w), "prepend" (-A) or "delete"
    (-d, -W). warnings are auditctl's non-fatal remarks (e.g. a syscall without an arch)."""

    op: str
    rule: Rule
    warnings: tuple[str, ...] = ()


def split_rule_text(text: str) -> list[str]:
    """Split rule text into words with shell quoting rules (as typed after `auditctl`)."""
    try:
        return shlex.split(text, comments=False, posix=True)
    except ValueError as exc:  # no closing quotation
        raise RuleSyntaxError(f"{exc}: {text}") from None


def split_rules_file_line(line: str) -> list[str]:
    """Split one line of an audit.rules file as `auditctl -R` does: on blanks, with `\\ ` a
    space and `\\\\` a backslash. Blank lines and `#` comments give no words."""
    words: list[str] = []
    current: list[str] = []
    in_word = False
    i = 0
    while i < len(line):
        char = line[i]
        if char == "\\" and i + 1 < len(line) and line[i + 1] in " \\":
            current.append(line[i + 1])
            in_word = True
            i += 2
            continue
        if char in " \t\r\n":
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
        else:
            current.append(char)
            in_word = True
        i += 1
    if in_word:
        words.append("".join(current))
    if words and words[0].startswith("#"):
        return []
    return words


def parse_integer(text: str, what: str) -> int:
    """A C integer literal (decimal, 0x hex, 0 octal, optional minus) as a u32 value."""
    if not INTEGER_RE.fullmatch(text):
        raise RuleSyntaxError(f"{what}: {text!r} is not a number")
    digits = text.lstrip("-")
    if digits[:2] in ("0x", "0X"):
        magnitude = int(digits[2:], 16)
    elif len(digits) > 1 and digits.startswith("0"):
        magnitude = int(digits, 8)
    else:
        magnitude = int(digits)
    value = -magnitude if text.startswith("-") else magnitude
    if not -(1 << 31) <= value <= 0xFFFFFFFF:
        raise RuleSyntaxError(f"{what}: {text} does not fit in 32 bits")
    return value & 0xFFFFFFFF


class _RuleBuilder:
    """auditctl's per-rule state while it walks the options of one rule."""

    def __init__(self, machine: str | None) -> None:
        self.default_machine = machine
        self.op: str | None = None
        self.list: int | None = None
        self.action: int | None = None
        self.from_watch = False
        self.audit_arch: int | None = None  # last arch= value, names -S
        self.syscall_added = False
        self.perm_added = False
        self.exe_added = False
        self.fstype_added = False
        self.syscalls: set[int] = set()
        self.syscalls_all = False
        self.fields: list[Field] = []
        self.keys: list[str] = []
        self.warnings: list[str] = []

    # -- helpers -----------------------------------------------------------------------------

    def host_machine(self) -> str:
        """The machine standing in for the host's (the caller's, else uname -m)."""
        given = self.default_machine
        machine = canonical_machine(given) if given else native_machine()
        if machine is None:
            raise RuleSyntaxError(
                f"cannot tell this machine's syscall table ({given or os.uname().machine})"
            )
        return machine

    def table_machine(self) -> str:
        """The machine -S names resolve with: the arch given so far, else the host's."""
        if self.audit_arch is None:
            return self.host_machine()
        machine = machine_for_audit_arch(self.audit_arch)
        if machine is None:
            raise RuleSyntaxError(f"no syscall table for arch 0x{self.audit_arch:x}")
        return machine

    def add_field(self, field: Field) -> None:
        if len(self.fields) >= F.MAX_RULE_FIELDS:
            raise RuleSyntaxError(f"too many fields: a rule holds at most {F.MAX_RULE_FIELDS}")
        self.fields.append(field)

    def need_list(self, option: str, text: str) -> int:
        if self.list is None:
            raise RuleSyntaxError(f"{option} {text}: give the list first (-a, -A or -d)")
        return self.list

    # -- options -----------------------------------------------------------------------------

    def list_action(self, option: str, text: str) -> None:
        if self.from_watch:
            raise RuleSyntaxError(f"{option} {text}: a watch (-w/-W) cannot take {option}")
        if self.op is not None:
            raise RuleSyntaxError(f"{option} {text}: only one of -a, -A, -d per rule")
        parts = text.split(",")
        if len(parts) != 2:
            raise RuleSyntaxError(f"{option} {text}: expected LIST,ACTION (e.g. always,exit)")
        first, second = parts
        if first in F.ACTIONS or first == "possible":
            action_word, list_word = first, second
        else:
            list_word, action_word = first, second
        if action_word == "possible":
            raise RuleSyntaxError(f"{option} {text}: the action 'possible' is deprecated")
        if list_word not in F.LISTS or action_word not in F.ACTIONS:
            raise RuleSyntaxError(
                f"{option} {text}: bad list or action "
                f"(lists: {', '.join(F.LISTS)}; actions: always, never)"
            )
        self.list = F.LISTS[list_word]
        self.action = F.ACTIONS[action_word]
        self.op = {"-a": "add", "-A": "prepend", "-d": "delete"}[option]

    def syscall(self, text: str) -> None:
        io_uring = self.list == F.LIST_IO_URING
        machine = None if io_uring else self.table_machine()
        for word in text.split(","):
            if not word:
                continue
            if word == "all":
                self.syscalls_all = True
                continue
            number = None if machine is None else syscall_number(machine, word)
            if number is None and word[0].isdigit():
                number = parse_integer(word, "-S")
                if number >= F.SYSCALL_BITS:
                    number = None
            if number is None:
                where = "io_uring operation (give numbers)" if io_uring else f"syscall on {machine}"
                raise RuleSyntaxError(f"-S {text}: unknown {where}: {word}")
            self.syscalls.add(number)
        self.syscall_added = True
        if self.audit_arch is None and self.op in ("add", "prepend") and machine is not None:
            compat = COMPAT_MACHINE.get(machine)
            if compat and _numbers(text, compat) != _numbers(text, machine):
                self.warnings.append("32/64 bit syscall mismatch, you should specify an arch")

    def field(self, text: str) -> None:
        rule_list = self.need_list("-F", text)
        if text.startswith("key="):
            self.key(text[4:], check_order=False)
            return
        name, op, value = self._split_pair(text, "-F")
        field_id = F.FIELD_IDS.get(name.lower())
        if field_id is None:
            raise RuleSyntaxError(f"-F {text}: unknown field '{name}'")
        if field_id == F.FILTERKEY:
            if op != F.OP_EQUAL:
                raise RuleSyntaxError(f"-F {text}: key only takes =")
            self.key(value, check_order=False)
            return
        name = F.FIELD_NAMES[field_id]
        self._check_field_list(field_id, name, rule_list, text)
        self._check_operator(field_id, name, op, text)
        converter = VALUE_CONVERTERS.get(field_id, _number_value)
        self.add_field(Field(field_id, op, converter(self, field_id, value, text)))

    @staticmethod
    def _split_pair(text: str, option: str) -> tuple[str, int, str]:
        for symbol, op in F.OPERATORS.items():
            at = text.find(symbol)
            if at >= 0:
                name, value = text[:at], text[at + len(symbol) :]
                if not name:
                    raise RuleSyntaxError(f"{option} {text}: missing field name before {symbol}")
                if not value:
                    raise RuleSyntaxError(f"{option} {text}: missing value after {symbol}")
                return name, op, value
        raise RuleSyntaxError(f"{option} {text}: missing operator (one of {' '.join(F.OPERATORS)})")

    @staticmethod
    def _check_field_list(field_id: int, name: str, rule_list: int, text: str) -> None:
        where = F.LIST_NAMES[rule_list]
        if rule_list == F.LIST_EXCLUDE and field_id not in F.EXCLUDE_FIELDS:
            raise RuleSyntaxError(
                f"-F {text}: {name} cannot be used on the exclude list "
                "(only msgtype, pid, uid, gid, auid, exe and subj_*)"
            )
        if rule_list == F.LIST_FILESYSTEM and field_id not in F.FILESYSTEM_FIELDS:
            raise RuleSyntaxError(
                f"-F {text}: {name} cannot be used on the filesystem list (only fstype and key)"
            )
        if field_id == F.FSTYPE and rule_list != F.LIST_FILESYSTEM:
            raise RuleSyntaxError(f"-F {text}: fstype can only be used on the filesystem list")
        if field_id == F.MSGTYPE and rule_list not in F.MSGTYPE_LISTS:
            raise RuleSyntaxError(
                f"-F {text}: msgtype can only be used on the exclude or user list"
            )
        if field_id == F.SESSIONID and rule_list not in F.SESSIONID_LISTS:
            raise RuleSyntaxError(
                f"-F {text}: sessionid can only be used on the exclude, user or exit list"
            )
        exit_like = rule_list == F.LIST_EXIT or (
            rule_list == F.LIST_IO_URING and field_id != F.PERM
        )
        if field_id in F.EXIT_ONLY_FIELDS and not exit_like:
            raise RuleSyntaxError(
                f"-F {text}: {name} can only be used on the exit list, not {where}"
            )

    @staticmethod
    def _check_operator(field_id: int, name: str, op: int, text: str) -> None:
        symbol = F.OPERATOR_SYMBOLS[op]
        if op in F.BIT_OPERATORS and field_id not in F.ANY_OPERATOR_FIELDS:
            raise RuleSyntaxError(
                f"-F {text}: {name} does not take {symbol} (only a0-a3, pers and devminor do)"
            )
        if field_id == F.PERM and op != F.OP_EQUAL:
            raise RuleSyntaxError(f"-F {text}: perm only takes =")
        if field_id in F.EQUALITY_ONLY_FIELDS and op not in F.EQUALITY_OPERATORS:
            raise RuleSyntaxError(f"-F {text}: {name} only takes = or !=")

    def comparison(self, text: str) -> None:
        if "!=" in text:
            left, right = text.split("!=", 1)
            op = F.OP_NOT_EQUAL
        elif "=" in text and not any(s in text for s in ("<=", ">=", "&=")):
            left, right = text.split("=", 1)
            op = F.OP_EQUAL
        else:
            raise RuleSyntaxError(f"-C {text}: -C only takes = or !=")
        if not left or not right:
            raise RuleSyntaxError(f"-C {text}: expected FIELD=FIELD or FIELD!=FIELD")
        ids = []
        for side in (left, right):
            field_id = F.FIELD_IDS.get(side.lower())
            if field_id is None:
                raise RuleSyntaxError(f"-C {text}: unknown field '{side}'")
            ids.append(F.FIELD_NAMES[field_id])
        value = next(
            (v for v, pair in F.COMPARISONS.items() if set(pair) == set(ids) and ids[0] != ids[1]),
            None,
        )
        if value is None:
            raise RuleSyntaxError(f"-C {text}: cannot compare {ids[0]} with {ids[1]}")
        if self.list != F.LIST_EXIT:
            raise RuleSyntaxError(f"-C {text}: field comparisons need the exit list (-a ...,exit)")
        self.add_field(Field(F.FIELD_COMPARE, op, value))

    def watch(self, option: str, path: str) -> None:
        if self.op is not None:
            raise RuleSyntaxError(f"{option} {path}: a watch cannot be combined with -a/-A/-d")
        if self.fields:
            raise RuleSyntaxError(f"{option} {path}: the watch must come before -F/-C")
        if not path.startswith("/"):
            raise RuleSyntaxError(f"{option} {path}: the path must start with '/'")
        if len(path.encode()) >= F.PATH_MAX:
            raise RuleSyntaxError(f"{option} {path[:40]}...: the path is too long")
        if len(os.path.basename(path.rstrip("/")).encode()) > F.NAME_MAX:
            raise RuleSyntaxError(f"{option} {path}: the base name of the path is too long")
        if ".." in path:
            self.warnings.append("relative path notation is not supported")
        if "*" in path or "?" in path:
            self.warnings.append("wildcard notation is not supported")
        if len(path) > 2:
            trimmed = path.rstrip("/")
            path = trimmed or "/"
        kind = F.WATCH
        try:
            if stat.S_ISDIR(os.stat(path).st_mode):
                kind = F.DIR
        except OSError:
            pass
        self.op = "add" if option == "-w" else "delete"
        self.from_watch = True
        self.list, self.action = F.LIST_EXIT, F.ACTION_ALWAYS
        self.syscalls_all = self.syscall_added = self.perm_added = True
        all_perms = sum(F.PERM_LETTERS.values())
        self.fields = [Field(kind, F.OP_EQUAL, path), Field(F.PERM, F.OP_EQUAL, all_perms)]

    def permissions(self, text: str) -> None:
        if self.op is None:
            raise RuleSyntaxError(f"-p {text}: permissions need a watch (-w) before them")
        if not self.fields:
            raise RuleSyntaxError(f"-p {text}: permissions need a path or other field before them")
        value = _perm_value(text, f"-p {text}")
        perms = [i for i, field in enumerate(self.fields) if field.id == F.PERM]
        for i in perms:
            self.fields[i] = Field(F.PERM, F.OP_EQUAL, value)
        if not perms:
            self.add_field(Field(F.PERM, F.OP_EQUAL, value))
        self.perm_added = True

    def key(self, text: str, *, check_order: bool = True) -> None:
        if check_order and (
            self.op is None
            or not (self.syscall_added or self.perm_added or self.exe_added or self.fstype_added)
        ):
            raise RuleSyntaxError(f"-k {text}: a key needs a watch or a syscall (-S) before it")
        if not text:
            raise RuleSyntaxError("-k: the key is empty")
        if F.KEY_SEPARATOR in text:
            raise RuleSyntaxError(f"-k {text!r}: a key cannot contain \\x01")
        joined = F.KEY_SEPARATOR.join([*self.keys, text])
        if len(joined.encode("utf-8", "surrogateescape")) > F.MAX_KEY_LEN:
            raise RuleSyntaxError(
                f"-k {text}: keys too long (all keys of a rule together at most {F.MAX_KEY_LEN} bytes)"
            )
        self.keys.append(text)

    # -- result ------------------------------------------------------------------------------

    def build(self) -> RuleCommand:
        if self.op is None or self.list is None or self.action is None:
            raise RuleSyntaxError("no rule: give -a, -A or -d LIST,ACTION, or -w/-W PATH")
        if self.syscall_added and not self.from_watch and self.list in F.LISTS_WITHOUT_SYSCALLS:
            raise RuleSyntaxError(
                f"-S cannot be used on the {F.LIST_NAMES[self.list]} list (only exit and io_uring)"
            )
        fields = list(self.fields)
        if self.keys:
            if not (self.syscall_added or self.perm_added or self.exe_added or self.fstype_added):
                raise RuleSyntaxError(
                    f"key {self.keys[0]}: a key needs a watch, a syscall (-S), "
                    "or a path, dir, perm or exe field in the rule"
                )
            if len(fields) >= F.MAX_RULE_FIELDS:
                raise RuleSyntaxError(
                    f"too many fields: a rule holds at most {F.MAX_RULE_FIELDS} with its key"
                )
            fields.append(Field(F.FILTERKEY, F.OP_EQUAL, F.KEY_SEPARATOR.join(self.keys)))
        if self.syscalls_all or (not self.syscall_added and self.list != F.LIST_TASK):
            syscalls = ALL_SYSCALLS
        else:
            syscalls = frozenset(self.syscalls)
        rule = Rule(
            list=self.list,
            action=self.action,
            syscalls=syscalls,
            fields=tuple(fields),
            prepend=self.op == "prepend",
        )
        return RuleCommand(self.op, rule, tuple(dict.fromkeys(self.warnings)))


def _numbers(text: str, machine: str) -> set[int | None]:
    """What a -S list means on `machine` (None for a word it does not know)."""
    numbers: set[int | None] = set()
    for word in text.split(","):
        if word and word != "all":
            number = syscall_number(machine, word)
            if number is None and INTEGER_RE.fullmatch(word):
                number = parse_integer(word, "-S")
            numbers.add(number)
    return numbers


# -- value converters: (builder, field id, value text, whole -F text) -> field value --------


def _number_value(builder: _RuleBuilder, field_id: int, value: str, text: str) -> int:
    return parse_integer(value, f"-F {text}")


def _id_value(builder: _RuleBuilder, field_id: int, value: str, text: str) -> int:
    is_uid = field_id in F.UID_FIELDS
    if INTEGER_RE.fullmatch(value):
        number = parse_integer(value, f"-F {text}")
    elif value == "unset" and is_uid:
        number = F.UNSET
    else:
        try:
            number = pwd.getpwnam(value).pw_uid if is_uid else grp.getgrnam(value).gr_gid
        except KeyError:
            raise RuleSyntaxError(
                f"-F {text}: unknown {'user' if is_uid else 'group'} '{value}'"
            ) from None
    if number == F.UNSET and field_id != F.LOGINUID:
        # Only auid has an "unset" state; the kernel refuses -1 for every other id.
        raise RuleSyntaxError(
            f"-F {text}: {F.FIELD_NAMES[field_id]} cannot be -1 (only auid can be unset)"
        )
    return number


def _sessionid_value(builder: _RuleBuilder, field_id: int, value: str, text: str) -> int:
    return F.UNSET if value == "unset" else parse_integer(value, f"-F {text}")


def _exit_value(builder: _RuleBuilder, field_id: int, value: str, text: str) -> int:
    if INTEGER_RE.fullmatch(value):
        return parse_integer(value, f"-F {text}")
    negative = value.startswith("-")
    name = value.lstrip("-").upper()
    number = next((n for n, e in F.ERRNO_NAMES.items() if e == name), F.ERRNO_ALIASES.get(name))
    if number is None:
        raise RuleSyntaxError(f"-F {text}: unknown errno '{value}'")
    return (-number if negative else number) & 0xFFFFFFFF


def _msgtype_value(builder: _RuleBuilder, field_id: int, value: str, text: str) -> int:
    if value[:1].isdigit():
        return parse_integer(value, f"-F {text}")
    number = next((n for n, t in F.MESSAGE_TYPES.items() if t == value.upper()), None)
    if number is None:
        raise RuleSyntaxError(f"-F {text}: unknown message type '{value}'")
    return number


def _string_value(builder: _RuleBuilder, field_id: int, value: str, text: str) -> str:
    if len(value.encode("utf-8", "surrogateescape")) > F.PATH_MAX:
        raise RuleSyntaxError(f"-F {text[:40]}...: value too long")
    if field_id in (F.WATCH, F.DIR, F.EXE) and (not value.startswith("/") or value.endswith("/")):
        # The kernel's audit_to_watch/audit_alloc_mark refuse these with EINVAL.
        raise RuleSyntaxError(f"-F {text}: the path must start with '/' and not end with '/'")
    if field_id in (F.WATCH, F.DIR):
        builder.perm_added = True
    if field_id == F.EXE:
        builder.exe_added = True
    return value


def _perm_value(value: str, what: str) -> int:
    if len(value) > 4:
        raise RuleSyntaxError(f"{what}: too long (perms are some of r, w, x, a)")
    bits = 0
    for letter in value.lower():
        if letter not in F.PERM_LETTERS:
            raise RuleSyntaxError(f"{what}: permission '{letter}' is not one of r, w, x, a")
        bits |= F.PERM_LETTERS[letter]
    return bits


def _perm_field_value(builder: _RuleBuilder, field_id: int, value: str, text: str) -> int:
    builder.perm_added = True
    return _perm_value(value, f"-F {text}")


def _arch_value(builder: _RuleBuilder, field_id: int, value: str, text: str) -> int:
    if builder.syscall_added:
        raise RuleSyntaxError(f"-F {text}: arch must be given before -S (and -w)")
    if value[:1].isdigit():
        audit_arch = parse_integer(value, f"-F {text}")
        if machine_for_audit_arch(audit_arch) is None:
            raise RuleSyntaxError(f"-F {text}: unknown arch value 0x{audit_arch:x}")
    else:
        word = value.lower()
        host = builder.host_machine()
        if word == "b64":
            if not (audit_arch_for_machine(host) or 0) & AUDIT_ARCH_64BIT:
                raise RuleSyntaxError(f"-F {text}: {host} has no 64-bit syscalls")
            machine = host
        elif word == "b32":
            machine = COMPAT_MACHINE.get(host, host)
        else:
            machine = canonical_machine(word)
            if machine is None:
                raise RuleSyntaxError(f"-F {text}: unknown arch '{value}' (b64, b32 or a machine)")
        audit_arch = audit_arch_for_machine(machine)
    builder.audit_arch = audit_arch
    return audit_arch


def _filetype_value(builder: _RuleBuilder, field_id: int, value: str, text: str) -> int:
    if value[:1].isdigit():
        return parse_integer(value, f"-F {text}")
    if value.lower() not in F.FILE_TYPES:
        raise RuleSyntaxError(f"-F {text}: unknown file type '{value}' ({', '.join(F.FILE_TYPES)})")
    return F.FILE_TYPES[value.lower()]


def _fstype_value(builder: _RuleBuilder, field_id: int, value: str, text: str) -> int:
    builder.fstype_added = True
    if value[:1].isdigit():
        return parse_integer(value, f"-F {text}")
    if value.lower() not in F.FS_TYPES:
        raise RuleSyntaxError(
            f"-F {text}: unknown filesystem type '{value}' ({', '.join(F.FS_TYPES)} or a number)"
        )
    return F.FS_TYPES[value.lower()]


def _saddr_fam_value(builder: _RuleBuilder, field_id: int, value: str, text: str) -> int:
    number = parse_integer(value, f"-F {text}")
    if number >= F.AF_MAX:
        raise RuleSyntaxError(f"-F {text}: saddr_fam must be an address family below {F.AF_MAX}")
    return number


def _compare_value(builder: _RuleBuilder, field_id: int, value: str, text: str) -> int:
    number = parse_integer(value, f"-F {text}")
    if number not in F.COMPARISONS:
        raise RuleSyntaxError(f"-F {text}: no such field comparison (1-{max(F.COMPARISONS)})")
    return number


ValueConverter = Callable[[_RuleBuilder, int, str, str], "int | str"]
VALUE_CONVERTERS: dict[int, ValueConverter] = {
    **{field_id: _id_value for field_id in F.UID_FIELDS | F.GID_FIELDS},
    **{field_id: _string_value for field_id in F.STRING_FIELDS},
    F.SESSIONID: _sessionid_value,
    F.EXIT: _exit_value,
    F.MSGTYPE: _msgtype_value,
    F.PERM: _perm_field_value,
    F.ARCH: _arch_value,
    F.FILETYPE: _filetype_value,
    F.FSTYPE: _fstype_value,
    F.SADDR_FAM: _saddr_fam_value,
    F.FIELD_COMPARE: _compare_value,
}


def _dispatch(builder: _RuleBuilder, option: str, value: str) -> None:
    handlers: dict[str, Callable[[str], None]] = {
        "-S": builder.syscall,
        "-F": builder.field,
        "-C": builder.comparison,
        "-p": builder.permissions,
        "-k": builder.key,
    }
    if option in ("-a", "-A", "-d"):
        builder.list_action(option, value)
    elif option in ("-w", "-W"):
        builder.watch(option, value)
    else:
        handlers[option](value)


def parse_rule(text: str | list[str], *, machine: str | None = None) -> RuleCommand:
    """Parse one rule in auditctl syntax (a string with shell quoting, or its words).

    `machine` stands in for the host's machine (uname -m) where auditctl would use it: to
    name -S without an arch field and to resolve arch=b64/b32. Raises RuleSyntaxError with a
    one-line message naming the offending word.
    """
    try:
        return _parse_rule(text, machine)
    except RuleSyntaxError as exc:
        message = str(exc)
        if message.isprintable():
            raise
        # A word with a newline or other control character must not break the one line.
        shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
        raise RuleSyntaxError(shown) from None


def _parse_rule(text: str | list[str], machine: str | None) -> RuleCommand:
    words = split_rule_text(text) if isinstance(text, str) else list(text)
    builder = _RuleBuilder(machine)
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word == "--":
            if i < len(words):
                raise RuleSyntaxError(f"unexpected '{words[i]}' (every value needs an option)")
            break
        if not word.startswith("-") or word == "-":
            raise RuleSyntaxError(f"unexpected '{word}' (every value needs an option before it)")
        letter = word[1:2]
        if word.startswith("--") or letter not in OPTIONS_WITH_VALUE:
            raise RuleSyntaxError(f"{word} is not a rule option (rule options: {RULE_OPTIONS})")
        option = word[:2]
        if len(word) > 2:
            value = word[2:]
        elif i < len(words):
            value = words[i]
            i += 1
        else:
            raise RuleSyntaxError(f"{option} needs a value")
        _dispatch(builder, option, value)
    return builder.build()
