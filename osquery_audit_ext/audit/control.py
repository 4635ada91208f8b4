"""The audit control client: status, settings, the audit pid, features and raw rules.

It speaks over an AuditNetlink: its own by default, or the reader's, because AUDIT_SET pid
binds the audit daemon role to the socket it arrives on. Rules are raw audit_rule_data
bytes here; encoding and decoding them is the rule codec's job.
"""

from __future__ import annotations

import errno
import os
import struct
from dataclasses import dataclass
from typing import Optional

from ..errors import (
    AuditExtError,
    AuditLocked,
    AuditPermissionError,
    AuditProtocolError,
    ConfigError,
)
from .consts import (
    AUDIT_ADD_RULE,
    AUDIT_DEL_RULE,
    AUDIT_GET,
    AUDIT_GET_FEATURE,
    AUDIT_LIST_RULES,
    AUDIT_SET,
)
from .netlink import AuditNetlink

# struct audit_status: every field u32, host byte order, in this order.
STATUS_FIELDS = (
    "mask",
    "enabled",
    "failure",
    "pid",
    "rate_limit",
    "backlog_limit",
    "lost",
    "backlog",
    "feature_bitmap",
    "backlog_wait_time",
    "backlog_wait_time_actual",
)
STATUS_STRUCT = struct.Struct("=" + "I" * len(STATUS_FIELDS))
STATUS_MIN_SIZE = 8 * 4  # kernels before 3.14 stop after `backlog`

# AUDIT_SET mask bits, one per settable field.
AUDIT_STATUS_ENABLED = 0x01
AUDIT_STATUS_FAILURE = 0x02
AUDIT_STATUS_PID = 0x04
AUDIT_STATUS_RATE_LIMIT = 0x08
AUDIT_STATUS_BACKLOG_LIMIT = 0x10
AUDIT_STATUS_BACKLOG_WAIT_TIME = 0x20
AUDIT_STATUS_LOST = 0x40
AUDIT_STATUS_BACKLOG_WAIT_TIME_ACTUAL = 0x80

U32_MAX = 0xFFFFFFFF
# The one list of settable audit_status fields (the config's [control] table, `status --set`
# and the bench derive theirs from it), in `auditctl -s` order: mask bit, accepted range.
SETTINGS: dict[str, tuple[int, int, int]] = {
    "enabled": (AUDIT_STATUS_ENABLED, 0, 2),
    "failure": (AUDIT_STATUS_FAILURE, 0, 2),
    "pid": (AUDIT_STATUS_PID, 0, U32_MAX),
    "rate_limit": (AUDIT_STATUS_RATE_LIMIT, 0, U32_MAX),
    "backlog_limit": (AUDIT_STATUS_BACKLOG_LIMIT, 0, U32_MAX),
    "backlog_wait_time": (AUDIT_STATUS_BACKLOG_WAIT_TIME, 0, U32_MAX),
}
# The settings a user may change: all but pid, which belongs to the process reading audit.
USER_SETTINGS: tuple[str, ...] = tuple(name for name in SETTINGS if name != "pid")

# struct audit_features: vers, mask, features, lock (u32 each).
FEATURES_STRUCT = struct.Struct("=4I")
AUDIT_FEATURE_LOGINUID_IMMUTABLE = 1  # feature index; its bit is 1 << index

LOCKED = 2  # enabled == 2: configuration immutable until reboot


@dataclass(frozen=True)
class AuditStatus:
    """The kernel's struct audit_status; fields an older kernel did not send are None."""

    mask: int
    enabled: int
    failure: int
    pid: int
    rate_limit: int
    backlog_limit: int
    lost: int
    backlog: int
    feature_bitmap: Optional[int] = None
    backlog_wait_time: Optional[int] = None
    backlog_wait_time_actual: Optional[int] = None

    @classmethod
    def decode(cls, payload: bytes) -> AuditStatus:
        """Decode whatever length the kernel sent (32 bytes on old kernels, 44 today)."""
        if len(payload) < STATUS_MIN_SIZE:
            raise AuditProtocolError(
                f"short audit status from the kernel: {len(payload)} bytes, "
                f"at least {STATUS_MIN_SIZE} expected"
            )
        count = min(len(payload) // 4, len(STATUS_FIELDS))
        values = struct.unpack_from(f"={count}I", payload)
        return cls(*values)

    def encode(self) -> bytes:
        """The full-size struct; fields that are None are sent as 0."""
        return STATUS_STRUCT.pack(*(getattr(self, name) or 0 for name in STATUS_FIELDS))


@dataclass(frozen=True)
class AuditFeatures:
    """The kernel's struct audit_features (AUDIT_GET_FEATURE)."""

    vers: int
    mask: int
    features: int
    lock: int

    @classmethod
    def decode(cls, payload: bytes) -> AuditFeatures:
        if len(payload) < FEATURES_STRUCT.size:
            raise AuditProtocolError(
                f"short audit features reply from the kernel: {len(payload)} bytes"
            )
        return cls(*FEATURES_STRUCT.unpack_from(payload))

    def feature(self, index: int) -> tuple[int, bool] | None:
        """(value 0/1, locked) of one feature, or None if the kernel does not report it."""
        bit = 1 << index
        if not self.mask & bit:
            return None
        return int(bool(self.features & bit)), bool(self.lock & bit)


def set_request(mask: int, **values: int) -> bytes:
    """An AUDIT_SET payload: the full struct with mask and the fields it names."""
    fields = dict.fromkeys(STATUS_FIELDS, 0)
    fields.update(values, mask=mask)
    return STATUS_STRUCT.pack(*(fields[name] for name in STATUS_FIELDS))


def check_setting(name: str, value: object) -> int:
    """The value as a u32 in the setting's range, or a ConfigError naming the setting."""
    if name not in SETTINGS:
        raise ConfigError(f"unknown audit setting {name!r} (known: {', '.join(SETTINGS)})")
    _bit, low, high = SETTINGS[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be an integer {low}..{high}, got {value!r}")
    return value


def owner_process(pid: int) -> str:
    """The command name (comm) of the process holding the audit pid; "" if none or gone."""
    if pid <= 0:
        return ""
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read().rstrip(b"\n").decode("utf-8", "replace")
    except OSError:
        return ""


def format_status(status: AuditStatus, features: AuditFeatures | None = None) -> str:
    """Status text exactly as `auditctl -s` (audit-userspace 3.0) prints it.

    auditctl prints backlog_wait_time_actual only for a full-size reply, and the
    loginuid_immutable line only when the kernel reports that feature.
    """
    lines = [
        f"enabled {status.enabled}",
        f"failure {status.failure}",
        f"pid {status.pid}",
        f"rate_limit {status.rate_limit}",
        f"backlog_limit {status.backlog_limit}",
        f"lost {status.lost}",
        f"backlog {status.backlog}",
    ]
    if status.backlog_wait_time is not None:
        lines.append(f"backlog_wait_time {status.backlog_wait_time}")
    if status.backlog_wait_time_actual is not None:
        lines.append(f"backlog_wait_time_actual {status.backlog_wait_time_actual}")
    loginuid = features.feature(AUDIT_FEATURE_LOGINUID_IMMUTABLE) if features else None
    if loginuid is not None:
        value, locked = loginuid
        lines.append(f"loginuid_immutable {value} {'locked' if locked else 'unlocked'}")
    return "\n".join(lines) + "\n"


class AuditControl:
    """Control requests to the kernel's audit subsystem."""

    def __init__(self, netlink: AuditNetlink | None = None) -> None:
        self._owns_netlink = netlink is None
        self.netlink = netlink if netlink is not None else AuditNetlink()

    def close(self) -> None:
        if self._owns_netlink:
            self.netlink.close()

    def __enter__(self) -> AuditControl:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- status -----------------------------------------------------------------------------

    def get_status(self) -> AuditStatus:
        for msg_type, payload in self.netlink.request(AUDIT_GET):
            if msg_type == AUDIT_GET:
                return AuditStatus.decode(payload)
        raise AuditProtocolError("the kernel sent no audit status")

    def set_status(
        self,
        *,
        enabled: int | None = None,
        failure: int | None = None,
        pid: int | None = None,
        rate_limit: int | None = None,
        backlog_limit: int | None = None,
        backlog_wait_time: int | None = None,
    ) -> None:
        """Change the given settings, one AUDIT_SET each, `enabled` last.

        Every value is checked before the kernel is asked anything. `enabled` goes last
        because enabled=2 locks everything after it. If the kernel refuses one setting, the
        ones this call already changed are set back (best effort) before the error is raised.

        pid registers the calling process as the audit daemon on this control's socket
        (pid=0 unregisters); the kernel accepts only the caller's own pid.
        """
        given = {
            "failure": failure,
            "pid": pid,
            "rate_limit": rate_limit,
            "backlog_limit": backlog_limit,
            "backlog_wait_time": backlog_wait_time,
            "enabled": enabled,
        }
        changes = {name: check_setting(name, v) for name, v in given.items() if v is not None}
        before = self.get_status() if len(changes) > 1 else None
        applied: list[str] = []
        for name, value in changes.items():
            try:
                self._set_one(name, value)
            except AuditExtError:
                if before is not None:
                    self._restore(before, applied)
                raise
            applied.append(name)

    def _set_one(self, name: str, value: int) -> None:
        mask = SETTINGS[name][0]
        try:
            self._locked_aware(AUDIT_SET, set_request(mask, **{name: value}))
        except ConfigError as exc:  # EINVAL: out of the range this kernel accepts
            reason = os.strerror(getattr(exc, "kernel_errno", errno.EINVAL))
            raise ConfigError(f"the kernel rejected {name}={value} ({reason})") from None

    def _restore(self, before: AuditStatus, names: list[str]) -> None:
        for name in reversed(names):
            old = getattr(before, name)
            if old is None:
                continue
            try:
                self._set_one(name, old)
            except AuditExtError:
                pass  # the original error is the one to report

    def reset_lost(self) -> int:
        """Zero the kernel's lost counter; returns the count it had (sent back in the ack)."""
        _replies, old = self.netlink.exchange(AUDIT_SET, set_request(AUDIT_STATUS_LOST))
        return old

    def reset_backlog_wait_time_actual(self) -> int:
        """Zero backlog_wait_time_actual; returns the value it had (sent back in the ack)."""
        _replies, old = self.netlink.exchange(
            AUDIT_SET, set_request(AUDIT_STATUS_BACKLOG_WAIT_TIME_ACTUAL)
        )
        return old

    def get_features(self) -> AuditFeatures | None:
        """AUDIT_GET_FEATURE, or None on kernels without it (before 3.13)."""
        try:
            replies = self.netlink.request(AUDIT_GET_FEATURE)
        except AuditExtError as exc:
            if getattr(exc, "kernel_errno", None) == errno.EINVAL:
                return None  # an old kernel: unknown request type
            raise
        for msg_type, payload in replies:
            if msg_type == AUDIT_GET_FEATURE:
                return AuditFeatures.decode(payload)
        raise AuditProtocolError("the kernel sent no audit features")

    def get_loginuid_immutable(self) -> int | None:
        """1 if loginuids are immutable once set, 0 if not, None if the kernel cannot say."""
        features = self.get_features()
        loginuid = features.feature(AUDIT_FEATURE_LOGINUID_IMMUTABLE) if features else None
        return None if loginuid is None else loginuid[0]

    # -- rules ------------------------------------------------------------------------------

    def list_rules(self) -> list[bytes]:
        """Every rule in the kernel as raw audit_rule_data, in kernel order."""
        return [p for t, p in self.netlink.request(AUDIT_LIST_RULES) if t == AUDIT_LIST_RULES]

    def add_rule(self, data: bytes) -> None:
        self._locked_aware(AUDIT_ADD_RULE, data)

    def delete_rule(self, data: bytes) -> None:
        """Delete the rule whose audit_rule_data is byte-identical to data."""
        self._locked_aware(AUDIT_DEL_RULE, data)

    # -- helpers ----------------------------------------------------------------------------

    def _locked_aware(self, msg_type: int, payload: bytes) -> None:
        """Send a change; an EPERM while audit is locked becomes AuditLocked."""
        try:
            self.netlink.request(msg_type, payload)
        except AuditPermissionError:
            try:
                locked = self.get_status().enabled == LOCKED
            except Exception:
                locked = False
            if locked:
                raise AuditLocked(
                    "the audit configuration is locked (enabled 2) until reboot"
                ) from None
            raise
