"""`make bench`: storms of audited syscalls measured with audit off, auditd, and our reader."""

from __future__ import annotations

from ..errors import AuditExtError


class BenchError(AuditExtError):
    """The benchmark cannot run a phase (no gcc, auditd missing, a storm failed ...)."""
