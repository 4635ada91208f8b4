"""Audit rules in auditctl syntax.

model (Rule, Field) <- parse (auditctl words -> Rule) ; codec (Rule <-> audit_rule_data bytes);
format (Rule -> `auditctl -l` text, audit_rules columns); fields and syscalls hold the data
(names, ids, per-machine syscall tables generated into syscall_tables/).
"""
