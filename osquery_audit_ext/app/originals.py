"""The kernel audit state found before we changed it, kept in the state directory.

Every change the service makes to kernel audit (a setting, a rule it adds) is written to the
`kernel` document *before* the kernel is asked, atomically, so that whatever way a run ends
the values to put back are on disk:

- a clean exit restores them and removes the document;
- after a crash (kill -9, the watchdog) the next start reads them as the originals, never
  the crashed instance's values, and its clean exit restores those;
- `status --restore` puts them back for an operator when no instance will start again.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from ..audit.control import AuditControl, AuditStatus
from ..audit.netlink import AuditNetlink
from ..audit.rule.codec import canonical_rule_data
from ..events.reader import pid_alive
from .state import StateDir

log = logging.getLogger(__name__)

DOCUMENT = "kernel"


@dataclass
class Originals:
    """Settings we changed with their values before us, and the rules we added (raw bytes)."""

    settings: dict[str, int] = field(default_factory=dict)
    rules: list[bytes] = field(default_factory=list)
    key: str = ""  # the -k of our rules, for the operator's messages

    def __bool__(self) -> bool:
        return bool(self.settings or self.rules)

    def to_document(self) -> dict[str, object]:
        return {
            "settings": dict(self.settings),
            "rules": [data.hex() for data in self.rules],
            "key": self.key,
        }

    @classmethod
    def from_document(cls, document: object) -> Originals:
        """The record as saved; anything malformed is dropped with a log line, not raised."""
        if not isinstance(document, dict):
            return cls()
        settings: dict[str, int] = {}
        raw = document.get("settings")
        for name, value in (raw if isinstance(raw, dict) else {}).items():
            if isinstance(name, str) and isinstance(value, int) and not isinstance(value, bool):
                settings[name] = value
            else:
                log.warning("state: ignoring a malformed original setting %r=%r", name, value)
        rules: list[bytes] = []
        raw_rules = document.get("rules")
        for text in raw_rules if isinstance(raw_rules, list) else []:
            try:
                rules.append(bytes.fromhex(text))
            except (TypeError, ValueError):
                log.warning("state: ignoring a malformed recorded rule %r", text)
        key = document.get("key")
        return cls(settings, rules, key if isinstance(key, str) else "")


def load_originals(state: StateDir) -> Originals:
    return Originals.from_document(state.load(DOCUMENT))


def save_originals(state: StateDir, originals: Originals) -> None:
    """Write the record (atomically), or remove it once there is nothing left to restore."""
    if originals:
        state.save(DOCUMENT, originals.to_document())
    else:
        state.remove(DOCUMENT)


def baseline(status: AuditStatus, originals: Originals) -> dict[str, int | None]:
    """The settings as they were before any of our runs: the kernel's, with recorded
    originals in place of what a crashed run had set."""
    values: dict[str, int | None] = {
        name: getattr(status, name)
        for name in ("enabled", "failure", "rate_limit", "backlog_limit", "backlog_wait_time")
    }
    values.update({n: v for n, v in originals.settings.items() if n in values})
    return values


def restore_settings(control: AuditControl, settings: dict[str, int]) -> list[str]:
    """Set each back, `enabled` last (audit goes off only once the rest is back); what was done."""
    done = []
    for name in sorted(settings, key=lambda n: n == "enabled"):
        control.set_status(**{name: settings[name]})
        done.append(f"{name} {settings[name]}")
    return done


def remove_rules(control: AuditControl, rules: list[bytes]) -> int:
    """Delete those of `rules` still in the kernel (newest first); how many were deleted."""
    present = {canonical_rule_data(data) for data in control.list_rules()}
    removed = 0
    for data in reversed(rules):
        if data in present:
            control.delete_rule(data)
            removed += 1
    return removed


def restore_recorded(state: StateDir, control: AuditControl) -> list[str]:
    """Put back everything a run recorded (rules removed, settings restored), clear the record;
    lines saying what was done. Used by `status --restore` on a state dir nobody owns."""
    originals = load_originals(state)
    lines = []
    if originals.rules:
        removed = remove_rules(control, originals.rules)
        lines.append(f"removed {removed} rule(s) with key {originals.key or '?'}")
        originals.rules = []
        save_originals(state, originals)
    dead = control.get_status().pid
    if dead and not pid_alive(dead):
        # The crashed run's registration stays until the kernel fails a send to it, and only
        # the registered pid may clear it: take it over (allowed, it is dead), then let go.
        with AuditNetlink() as netlink:
            AuditControl(netlink).set_status(pid=os.getpid())
            AuditControl(netlink).set_status(pid=0)
        lines.append(f"released the audit pid {dead} of a process that is gone")
    if originals.settings:
        lines.extend(f"restored {item}" for item in restore_settings(control, originals.settings))
        originals.settings = {}
    save_originals(state, originals)
    return lines
