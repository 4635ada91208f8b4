"""libaudit's names for message types and errnos, as auditctl takes and prints them.

The tables are generated from the installed libaudit (scripts/gen_audit_names.py) rather than
typed by hand, so `-F msgtype=NAME` and `-F exit=-ENAME` resolve exactly as in auditctl.
They are read through importlib.resources so they load from the .ext zipapp too.
"""

from __future__ import annotations

import importlib.resources

TABLE_DIR = importlib.resources.files(__package__)


def _rows(file_name: str) -> list[list[str]]:
    """The tab-separated fields of every line but comments."""
    text = (TABLE_DIR / file_name).read_text(encoding="ascii")
    return [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]


def message_types() -> dict[int, str]:
    """Message type number -> libaudit's name ("EXECVE" for 1309)."""
    return {int(number): name for number, name in _rows("msg_types.tsv")}


def errno_names() -> dict[int, str]:
    """errno number -> the name auditctl prints for it ("EPERM" for 1)."""
    return {int(row[0]): row[1] for row in _rows("errno_names.tsv") if len(row) == 2}


def errno_aliases() -> dict[str, int]:
    """Further names auditctl accepts for an errno (EWOULDBLOCK -> 11), upper case."""
    return {row[1]: int(row[0]) for row in _rows("errno_names.tsv") if row[2:] == ["alias"]}
