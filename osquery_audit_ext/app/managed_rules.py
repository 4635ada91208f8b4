"""The audit rules this extension installs, derived from Settings, in auditctl syntax.

Every rule carries the settings' key so that it is recognisable (audit_rules.managed = 1)
and reconcilable after a crash. On x86_64 each syscall rule is installed for b64 and b32 so
32-bit programs are seen (osquery's single arch-less rule misses them).
"""

from __future__ import annotations

import errno
import logging
import os
import platform
import shlex

from ..audit.rule.codec import decode_rule, encode_rule
from ..audit.rule.parse import parse_rule
from ..audit.syscalls import syscall_number
from ..errors import AuditExtError, ConfigError
from ..events.file_rows import FilePaths
from .settings import Settings

log = logging.getLogger(__name__)

# The ABIs whose syscalls we audit per machine, native first, with the syscall table
# that resolves names for each.
MACHINE_ABIS = {
    "x86_64": (("b64", "x86_64"), ("b32", "i386")),
    "aarch64": (("b64", "aarch64"),),
    "i386": (("b32", "i386"),),
    "i686": (("b32", "i386"),),
}


def machine_abis(machine: str | None = None) -> tuple[tuple[str, str], ...]:
    """(arch token, syscall table) pairs for this machine; empty where we have no table."""
    return MACHINE_ABIS.get(machine or platform.machine(), ())


def syscall_rule_texts(settings: Settings, machine: str | None = None) -> list[str]:
    """The syscall rules for the event kinds the settings turn on."""
    events = settings.events
    tail = f"-k {settings.key}"
    groups: list[tuple[str, str]] = []  # (syscalls, extra fields)
    if events.process:
        groups.append(("execve,execveat", ""))
    if events.process_fork:
        groups.append(("fork,vfork,clone", ""))
    if events.process_kill:
        groups.append(("kill,tkill,tgkill", ""))
    if events.sockets:
        # connect and bind always carry a sockaddr, so the kernel can drop AF_UNIX itself;
        # accept may have none, so its unix events are dropped when building rows instead.
        family = "" if events.socket_unix else "-F saddr_fam!=1 "
        success = "" if events.socket_failed else "-F success=1 "
        groups.append(("connect,bind", success + family))
        if not events.socket_failed:
            # A non-blocking connect under way (EINPROGRESS) is a real connection attempt.
            groups.append(("connect", f"-F exit=-{errno.EINPROGRESS} " + family))
        if events.socket_accept:
            groups.append(("accept,accept4", success))
    rules = []
    for arch, abi_machine in machine_abis(machine):
        for calls, extra in groups:
            # Keep only the calls this ABI has (i386 has accept4 but no accept).
            known = [c for c in calls.split(",") if syscall_number(abi_machine, c) is not None]
            if known:
                rules.append(f"-a always,exit -F arch={arch} -S {','.join(known)} {extra}{tail}")
    return rules


def user_rule_texts(settings: Settings) -> list[str]:
    """The config's extra rules, each tagged with our key as an additional -k."""
    return [f"{text.strip()} -k {settings.key}" for text in settings.rules if text.strip()]


def watched_path(base: str) -> str | None:
    """What a watch rule can name for a glob's base: the base when it exists, else its
    nearest existing directory (a watched directory covers what is created in it later);
    None when only / exists above it (a watch on / would audit the whole file system)."""
    path = base
    while not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent == path or parent == "/":
            return None
        path = parent
    return path


def file_rule_texts(settings: Settings) -> list[str]:
    """process_file_events: one watch rule per watched tree, not osquery's rule auditing
    every read and write of the system. Perms w and a (writes, attribute changes), r too
    with fim_accesses; the kernel matches every ABI, and openat2 by its open_how flags."""
    events = settings.events
    if not events.fim:
        return []
    perms = "rwa" if events.fim_accesses else "wa"
    rules = []
    for base in FilePaths(settings.file_paths).bases():
        path = watched_path(base)
        if path is None:
            log.warning("file_paths: nothing of %s exists: not watched", base)
            continue
        rules.append(f"-w {shlex.quote(path)} -p {perms} -k {settings.key}")
    return sorted(set(rules), key=rules.index)


def desired_rule_texts(settings: Settings, machine: str | None = None) -> list[str]:
    return (
        syscall_rule_texts(settings, machine)
        + file_rule_texts(settings)
        + user_rule_texts(settings)
    )


def rule_keys(data: bytes) -> list[str]:
    return decode_rule(data).keys


def encode_rule_texts(texts: list[str]) -> list[bytes]:
    """Parse and encode rules to add; a bad rule is a ConfigError naming it."""
    encoded = []
    for text in texts:
        try:
            command = parse_rule(text)
        except AuditExtError as exc:
            raise ConfigError(f"rule {text!r}: {exc}") from None
        if command.op not in ("add", "prepend"):
            raise ConfigError(f"rule {text!r}: only rules to add (-a, -A, -w) belong in config")
        encoded.append(encode_rule(command.rule))
    return encoded
