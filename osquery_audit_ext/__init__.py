"""osquery-audit-ext: Linux audit tables for osquery, read straight from the audit netlink."""

__version__ = "0.1.0"
