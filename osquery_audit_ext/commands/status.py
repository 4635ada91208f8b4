"""`status`: print or change the kernel's audit status, like `auditctl -s`.

    status                              the status, exactly as `auditctl -s` prints it
    status --set NAME=VALUE [--set ...] change settings, then print the status (as auditctl
                                        does after -e/-f/-r/-b/--backlog_wait_time)
    status --reset-lost                 zero the lost counter and print `lost: N`, the old count
    status --restore                    put back what a crashed extension left changed (the
                                        settings and rules recorded in its state dir)

Every --set is checked before the kernel is asked anything, so a bad one changes nothing.
enabled=2 locks the audit configuration until reboot: it needs --allow-lock.
"""

from __future__ import annotations

import argparse
import os

from ..audit.control import (
    LOCKED,
    SETTINGS,
    USER_SETTINGS,
    AuditControl,
    check_setting,
    format_status,
)
from ..errors import ConfigError, StateError

# Settings a user may change here (the audit pid belongs to the process that reads audit).
CLI_SETTINGS: tuple[str, ...] = USER_SETTINGS
LOCK_REFUSED = (
    "enabled=2 locks the audit configuration until reboot: no rule or setting can change "
    "after it (not even enabled); pass --allow-lock to really do that"
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=(
            "change a setting: enabled=0|1, failure=0|1|2 (silent, printk, panic), "
            "rate_limit=N (messages/s, 0 = none), backlog_limit=N (records), "
            "backlog_wait_time=N (jiffies); repeatable"
        ),
    )
    parser.add_argument(
        "--allow-lock",
        action="store_true",
        help="accept --set enabled=2, which locks the audit configuration until reboot",
    )
    parser.add_argument(
        "--reset-lost",
        action="store_true",
        help="zero the kernel's lost counter and print the old count (auditctl --reset-lost)",
    )
    parser.add_argument(
        "--restore",
        action="store_true",
        help=(
            "put back the audit settings and remove the rules an extension that did not exit "
            "cleanly left (recorded in the [state] dir); refused while an instance runs"
        ),
    )


def parse_setting(text: str, *, allow_lock: bool = False) -> tuple[str, int]:
    """(name, value) of one `NAME=VALUE`, or a ConfigError naming what is wrong."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep:
        raise ConfigError(f"--set {text!r}: expected NAME=VALUE, e.g. backlog_limit=8192")
    if name not in CLI_SETTINGS:
        raise ConfigError(
            f"--set {text!r}: unknown audit setting {name!r} (known: {', '.join(CLI_SETTINGS)})"
        )
    raw = raw.strip()
    value = int(raw) if raw.isascii() and raw.isdigit() else None
    if name == "enabled":
        if value == LOCKED and not allow_lock:
            raise ConfigError(f"--set {text!r}: {LOCK_REFUSED}")
        if value not in (0, 1, LOCKED):
            raise ConfigError(f"--set {text!r}: enabled must be 0 (off) or 1 (on)")
    _bit, low, high = SETTINGS[name]
    if value is None or not low <= value <= high:
        raise ConfigError(f"--set {text!r}: {name} must be an integer {low}..{high}")
    return name, check_setting(name, value)


def parse_settings(texts: list[str], *, allow_lock: bool = False) -> dict[str, int]:
    """Every --set checked, in the order given; a setting given twice is an error."""
    settings: dict[str, int] = {}
    for text in texts:
        name, value = parse_setting(text, allow_lock=allow_lock)
        if name in settings:
            raise ConfigError(f"--set {name} given more than once")
        settings[name] = value
    return settings


def restore(config: str | None) -> None:
    """`status --restore`: what the record in the state dir says, put back; refused while a
    running instance owns the directory (it restores on its own exit)."""
    # Imported here: `status` alone needs neither the config nor the state dir.
    from ..app.originals import restore_recorded
    from ..app.settings import load_settings
    from ..app.state import StateDir

    directory = load_settings(config).state.directory()
    if directory is None:
        raise ConfigError('--restore: [state] dir is "-" (memory only): nothing was recorded')
    if not os.path.isdir(directory):
        print(f"nothing to restore: no state dir {directory}")
        return
    state = StateDir(directory)
    try:
        state.open()
    except StateError as exc:
        raise StateError(
            f"--restore refused: {exc}. A running instance puts the kernel back itself when "
            "it exits; stop it (or its osqueryd) instead"
        ) from None
    try:
        with AuditControl() as control:
            lines = restore_recorded(state, control)
    finally:
        state.close()
    for line in lines or ["nothing to restore: no run left kernel audit changed"]:
        print(line)


def run(args: argparse.Namespace) -> int:
    settings = parse_settings(args.settings, allow_lock=args.allow_lock)
    if args.restore:
        if settings or args.reset_lost:
            raise ConfigError("--restore cannot be combined with --set or --reset-lost")
        restore(args.config)
        return 0
    with AuditControl() as control:
        if settings:
            control.set_status(**settings)
        if args.reset_lost:
            print(f"lost: {control.reset_lost()}")
        if settings or not args.reset_lost:
            print(format_status(control.get_status(), control.get_features()), end="")
    return 0
