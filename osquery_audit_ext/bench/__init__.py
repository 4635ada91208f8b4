"""`make bench`: storms of audited syscalls measured with audit off, auditd, and our reader."""
