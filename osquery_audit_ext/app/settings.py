"""The one settings object, loaded from the TOML config file.

Every key is validated at start: an unknown key or a bad value is a ConfigError naming the
key, never a surprise later. Names follow osquery's audit flags where one exists.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..audit.control import SETTINGS, USER_SETTINGS
from ..errors import ConfigError
from ..events.journal import FLUSH_POLICIES
from ..events.reader import MODES, ReaderSettings  # [reader] is defined beside its reader
from ..sdk._toml import toml
from .state import StateSettings

DEFAULT_CONFIG_PATH = "/etc/osquery/osquery_audit_ext.toml"
CONFIG_ENV = "OSQUERY_AUDIT_EXT_CONFIG"
# AUDIT_SET fields the [control] table may set, and their ranges (from audit/control.py);
# each is restored on exit.
CONTROL_KEYS: tuple[str, ...] = USER_SETTINGS
CONTROL_RANGES: dict[str, tuple[int, int]] = {
    name: (SETTINGS[name][1], SETTINGS[name][2]) for name in CONTROL_KEYS
}


@dataclass(frozen=True)
class EventSettings:
    """Which tables are filled and which rule sets installed (osquery's audit_allow_* flags)."""

    process: bool = True  # audit_allow_process_events: execve, execveat
    process_fork: bool = False  # audit_allow_fork_process_events: fork, vfork, clone
    process_kill: bool = False  # audit_allow_kill_process_events: kill, tkill, tgkill
    sockets: bool = False  # audit_allow_sockets: connect, bind
    socket_accept: bool = True  # audit_allow_accept_socket_events: accept, accept4
    socket_unix: bool = False  # audit_allow_unix
    socket_failed: bool = False  # audit_allow_failed_socket_events
    user: bool = True  # audit_allow_user_events: user messages (no rule needed)
    fim: bool = False  # audit_allow_fim_events: process_file_events over [file_paths]
    fim_accesses: bool = False  # audit_fim_show_accesses: read-only opens too
    seccomp: bool = False  # audit_allow_seccomp_events (no rule needed)
    selinux: bool = False  # audit_allow_selinux_events (no rule needed)
    apparmor: bool = False  # audit_allow_apparmor_events (no rule needed)


@dataclass(frozen=True)
class RingSettings:
    capacity: int = 100_000  # events kept per table (osquery's events_max)
    expiry: int = 3600  # seconds (osquery's events_expiry)


@dataclass(frozen=True)
class Settings:
    mode: str = "auto"
    rules: tuple[str, ...] = ()
    key: str = "osquery_audit_ext"  # tags the rules we install (audit_rules.managed = 1)
    persist_rules: bool = False  # keep our rules in the kernel on exit (osquery's audit_persist)
    # Without [control] backlog_limit, the kernel's backlog_limit is raised to this while we
    # run when it is lower (restored on exit); 0 leaves it alone. auditd's rules use 8192.
    raise_backlog_limit: int = 8192
    events: EventSettings = field(default_factory=EventSettings)
    ring: RingSettings = field(default_factory=RingSettings)
    reader: ReaderSettings = field(default_factory=ReaderSettings)
    control: dict[str, int] = field(default_factory=dict)
    state: StateSettings = field(default_factory=StateSettings)
    # [file_paths]: category -> osquery globs (% one level, %% recursive), as osquery's config
    file_paths: dict[str, tuple[str, ...]] = field(default_factory=dict)
    source: str = ""  # the file these settings came from, "" for built-in defaults


def _check_type(where: str, value: Any, expected: Any) -> Any:
    """Validate one value against a dataclass field's default type."""
    if isinstance(expected, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(expected, int):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{where}: expected a non-negative integer, got {value!r}")
        return value
    if isinstance(expected, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"{where}: expected a positive number, got {value!r}")
        return float(value)
    if isinstance(expected, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported value {value!r}")


def _section(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table, got {data!r}")
    defaults = cls()
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})"
        )
    values = {
        name: _check_type(f"{where}.{name}", value, getattr(defaults, name))
        for name, value in data.items()
    }
    section = cls(**values)
    if isinstance(section, RingSettings) and section.capacity < 1:
        raise ConfigError(f"{where}.capacity: the ring must hold at least 1 event")
    if isinstance(section, StateSettings):
        if section.flush not in FLUSH_POLICIES:
            raise ConfigError(
                f"{where}.flush: must be one of {', '.join(FLUSH_POLICIES)}, got {section.flush!r}"
            )
        if section.freq < 1:
            raise ConfigError(f"{where}.freq: must be at least 1")
    return section


def _file_paths(data: Any, where: str) -> dict[str, tuple[str, ...]]:
    """[file_paths]: each category a list of absolute globs."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table: category = list of globs")
    out = {}
    for category, globs in data.items():
        if not isinstance(globs, list) or not all(isinstance(g, str) for g in globs):
            raise ConfigError(f"{where}.{category}: expected a list of path globs")
        for glob in globs:
            if not glob.startswith("/") or "\x00" in glob:
                raise ConfigError(f"{where}.{category}: {glob!r} is not an absolute path")
        out[category] = tuple(globs)
    return out


def settings_from_dict(data: dict[str, Any], source: str = "") -> Settings:
    """Build validated Settings from parsed TOML."""
    where = source or "config"
    top_known = {
        "mode",
        "rules",
        "key",
        "persist_rules",
        "raise_backlog_limit",
        "events",
        "ring",
        "reader",
        "control",
        "state",
        "file_paths",
    }
    unknown = sorted(set(data) - top_known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(top_known))})"
        )
    mode = data.get("mode", "auto")
    if mode not in MODES:
        raise ConfigError(f"{where}: mode must be one of {', '.join(MODES)}, got {mode!r}")
    rules = data.get("rules", [])
    if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
        raise ConfigError(f"{where}: rules must be a list of strings in auditctl syntax")
    key = _check_type(f"{where}.key", data.get("key", "osquery_audit_ext"), "")
    if not key or len(key.encode()) > 255 or "\x01" in key:
        raise ConfigError(f"{where}.key: must be 1 to 255 bytes")
    control = data.get("control", {})
    if not isinstance(control, dict):
        raise ConfigError(f"{where}.control: expected a table")
    for name, value in control.items():
        if name not in CONTROL_RANGES:
            raise ConfigError(
                f"{where}.control: unknown key {name!r} (known: {', '.join(CONTROL_KEYS)})"
            )
        low, high = CONTROL_RANGES[name]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(
                f"{where}.control.{name}: expected an integer {low}..{high}, got {value!r}"
            )
    events = _section(EventSettings, data.get("events", {}), f"{where}.events")
    file_paths = _file_paths(data.get("file_paths", {}), f"{where}.file_paths")
    if events.fim and not any(file_paths.values()):
        raise ConfigError(f"{where}.events.fim: file_paths names no paths to watch")
    return Settings(
        mode=mode,
        rules=tuple(rules),
        key=key,
        persist_rules=_check_type(
            f"{where}.persist_rules", data.get("persist_rules", False), False
        ),
        raise_backlog_limit=_check_type(
            f"{where}.raise_backlog_limit", data.get("raise_backlog_limit", 8192), 0
        ),
        events=events,
        ring=_section(RingSettings, data.get("ring", {}), f"{where}.ring"),
        reader=_section(ReaderSettings, data.get("reader", {}), f"{where}.reader"),
        control=dict(control),
        state=_section(StateSettings, data.get("state", {}), f"{where}.state"),
        file_paths=file_paths,
        source=source,
    )


def config_path(explicit: str | None = None) -> tuple[str, bool]:
    """The config file to read and whether the user named it (--config, then the env var)."""
    if explicit:
        return explicit, True
    env = os.environ.get(CONFIG_ENV)
    if env:
        return env, True
    return DEFAULT_CONFIG_PATH, False


def load_settings(explicit: str | None = None) -> Settings:
    """Load settings; a missing default file means defaults, a missing named file is an error."""
    path, named = config_path(explicit)
    p = Path(path)
    if not p.is_file():
        if named:
            raise ConfigError(f"config file {path} does not exist")
        return Settings()
    try:
        data = toml.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    except toml.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return settings_from_dict(data, str(p))
