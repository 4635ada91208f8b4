"""Kernel audit state around the benchmark: what it was, what we change, and putting it back.

Kernel audit state is global to the machine. The benchmark changes only: the enabled flag
(0 -> 1 for the run, when audit was off), rules carrying its own key, and the audit pid (held
by the auditd or the extension it starts). Everything is undone on every exit path, and the
`auditctl -s` / `auditctl -l` views before and after are compared.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ..app.managed_rules import rule_keys
from ..audit.control import LOCKED, SETTINGS, AuditControl, format_status
from ..audit.rule.codec import decode_rule
from ..audit.rule.format import format_rule
from ..errors import AuditExtError, AuditLocked, AuditRuleRejected

log = logging.getLogger(__name__)

# auditctl -s lines that describe settings (the rest are counters that move on their own).
SETTING_LINES = (*SETTINGS, "loginuid_immutable")


@dataclass(frozen=True)
class KernelSnapshot:
    """`auditctl -s` setting lines and `auditctl -l` rule lines at one moment."""

    settings: tuple[str, ...]
    rules: tuple[str, ...]

    def differences(self, later: KernelSnapshot) -> list[str]:
        """Lines that differ (`-` before only, `+` after only); empty when they match."""
        out = []
        for label, before, after in (
            ("auditctl -s", self.settings, later.settings),
            ("auditctl -l", self.rules, later.rules),
        ):
            gone = [line for line in before if line not in after]
            new = [line for line in after if line not in before]
            out += [f"{label}: - {line}" for line in gone]
            out += [f"{label}: + {line}" for line in new]
        return out


def setting_lines(status_text: str) -> tuple[str, ...]:
    """The setting lines of `auditctl -s` output, in its order."""
    return tuple(
        line.strip() for line in status_text.splitlines() if line.split(" ", 1)[0] in SETTING_LINES
    )


def rule_lines(list_text: str) -> tuple[str, ...]:
    """The rules of `auditctl -l` output ("No rules" is an empty list)."""
    return tuple(
        line.strip() for line in list_text.splitlines() if line.strip() and line != "No rules"
    )


def snapshot() -> KernelSnapshot:
    """What `auditctl -s` and `auditctl -l` print now (our own formatters if no auditctl)."""
    auditctl = shutil.which("auditctl")
    if auditctl is not None:
        status = subprocess.run([auditctl, "-s"], capture_output=True, text=True).stdout
        rules = subprocess.run([auditctl, "-l"], capture_output=True, text=True).stdout
        return KernelSnapshot(setting_lines(status), rule_lines(rules))
    with AuditControl() as control:
        status = format_status(control.get_status(), control.get_features())
        rules = "\n".join(format_rule(decode_rule(d)) for d in control.list_rules())
    return KernelSnapshot(setting_lines(status), rule_lines(rules))


def rules_with_key(key: str) -> list[bytes]:
    """Raw rules in the kernel that carry `key` (ours: the key is unique to the benchmark)."""
    with AuditControl() as control:
        return [data for data in control.list_rules() if key in rule_keys(data)]


def remove_rules_with_key(key: str) -> int:
    """Delete every rule carrying `key` (left by a run that was killed); returns how many."""
    removed = 0
    with AuditControl() as control:
        for data in control.list_rules():
            if key in rule_keys(data):
                try:
                    control.delete_rule(data)
                    removed += 1
                except AuditExtError as exc:
                    log.error("could not remove a leftover benchmark rule: %s", exc)
    return removed


def rules_locked(probe_rule: bytes) -> bool:
    """True when audit is locked: enabled is 2 and the kernel refuses to add a rule.

    The probe rule is one the benchmark would add anyway; if the kernel takes it, it is
    deleted again at once.
    """
    with AuditControl() as control:
        if control.get_status().enabled != LOCKED:
            return False
        try:
            control.add_rule(probe_rule)
        except AuditLocked:
            return True
        except AuditRuleRejected:
            return False  # the rule exists (a killed earlier run): rules are not locked out
        control.delete_rule(probe_rule)
        return False


@contextlib.contextmanager
def installed_rules(rules: Sequence[bytes]) -> Iterator[None]:
    """Add rules for the length of a `with` block; remove the ones we added, always."""
    added: list[bytes] = []
    try:
        with AuditControl() as control:
            for data in rules:
                try:
                    control.add_rule(data)
                except AuditRuleRejected as exc:
                    if "exists" not in str(exc):
                        raise
                    continue  # left by a killed earlier run: removed by key at the end
                added.append(data)
        yield
    finally:
        with AuditControl() as control:
            for data in reversed(added):
                try:
                    control.delete_rule(data)
                except AuditExtError as exc:
                    log.error("could not remove a benchmark rule: %s", exc)


@contextlib.contextmanager
def audit_enabled() -> Iterator[bool]:
    """Audit on (enabled 1) for the block when it was off; yields whether we switched it on."""
    with AuditControl() as control:
        was = control.get_status().enabled
        if was != 0:
            switched = False
        else:
            control.set_status(enabled=1)
            switched = True
    try:
        yield switched
    finally:
        if switched:
            with AuditControl() as control:
                control.set_status(enabled=0)


def audit_pid_holder() -> int:
    with AuditControl() as control:
        return control.get_status().pid


def kernel_lost() -> int:
    with AuditControl() as control:
        return control.get_status().lost
