"""Exceptions shown to users as one clear line (the CLI and the tables never print tracebacks)."""


class AuditExtError(Exception):
    """Base of every error this project reports to a user."""


class ConfigError(AuditExtError):
    """The configuration file or a command-line setting is invalid."""


class RuleSyntaxError(AuditExtError):
    """Rule text in auditctl syntax does not parse; the message names the offending token."""


class AuditUnavailable(AuditExtError):
    """Kernel audit cannot be reached (not compiled in, not in the host namespace, no socket)."""


class AuditPermissionError(AuditExtError):
    """The kernel refused with EPERM: root / CAP_AUDIT_CONTROL (or CAP_AUDIT_READ) is needed."""


class AuditPidTaken(AuditExtError):
    """EEXIST: another process is registered as the audit daemon."""


class AuditRuleRejected(AuditExtError):
    """The kernel rejected a rule (EINVAL), or a rule to add exists / a rule to delete does not."""


class AuditLocked(AuditExtError):
    """The audit configuration is locked (enabled=2) until reboot."""


class AuditProtocolError(AuditExtError):
    """The kernel's reply was short, malformed or missing (timeout)."""


class StateError(AuditExtError):
    """The state directory cannot be created, read or written, or another instance owns it."""
