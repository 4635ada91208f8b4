"""Query results printed as osqueryi prints them.

Output modes follow osquery/devtools (printer.cpp, shell.cpp): `json` is exactly
`osqueryi --json` (one compact object per line, keys sorted, every value a string),
`pretty` the boxed table, `line` one `column = value` per line, `csv` comma-separated
with osqueryi's quoting.
"""

from __future__ import annotations

from .result import QueryResult
from .values import json_string

MODES = ("pretty", "json", "csv", "line")


def format_json(result: QueryResult) -> str:
    """osqueryi --json: one object per row, keys in sorted order, values all strings."""
    lines = []
    for row in result.rows:
        pairs = ",".join(f"{json_string(k)}:{json_string(row[k])}" for k in sorted(row))
        lines.append("  {" + pairs + "}")
    return "[\n" + ",\n".join(lines) + "\n]\n"


def format_pretty(result: QueryResult, nullvalue: str = "") -> str:
    """osqueryi's default boxed table; nothing at all for an empty result."""
    if not result.rows:
        return ""
    widths = {c: len(c) for c in result.columns}
    for row in result.rows:
        for column in result.columns:
            widths[column] = max(widths[column], len(row.get(column, nullvalue)))
    separator = "+" + "".join("-" * (widths[c] + 2) + "+" for c in result.columns) + "\n"
    header = "|" + "".join(f" {c.ljust(widths[c])} |" for c in result.columns) + "\n"
    body = "".join(
        "|" + "".join(f" {row.get(c, nullvalue).ljust(widths[c])} |" for c in result.columns) + "\n"
        for row in result.rows
    )
    return separator + header + separator + body + separator


def format_line(result: QueryResult, nullvalue: str = "") -> str:
    """osqueryi --line: `column = value`, names right-aligned, a blank line between rows."""
    width = max([5, *(len(c.encode()) for c in result.columns)])
    records = []
    for row in result.rows:
        records.append(
            "".join(
                " " * (width - len(c.encode())) + f"{c} = {row.get(c, nullvalue)}\n"
                for c in result.columns
            )
        )
    return "\n".join(records)


def _csv_field(value: str, separator: str) -> str:
    """osqueryi's output_csv: quote on controls, space, quotes, non-ASCII or the separator."""
    quote = any(ord(ch) <= 0x20 or ch in "\"'" or ord(ch) >= 0x7F for ch in value) or (
        separator and separator in value
    )
    return '"' + value.replace('"', '""') + '"' if quote else value


def format_csv(result: QueryResult, separator: str = ",", nullvalue: str = "") -> str:
    """A header line, then one line per row, fields quoted as osqueryi quotes them."""
    if not result.rows:
        return ""
    lines = [separator.join(_csv_field(c, separator) for c in result.columns)]
    for row in result.rows:
        lines.append(
            separator.join(_csv_field(row.get(c, nullvalue), separator) for c in result.columns)
        )
    return "\n".join(lines) + "\n"


def render(result: QueryResult, mode: str = "pretty") -> str:
    if mode == "json":
        return format_json(result)
    if mode == "csv":
        return format_csv(result)
    if mode == "line":
        return format_line(result)
    if mode == "pretty":
        return format_pretty(result)
    raise ValueError(f"unknown output mode {mode!r}; one of {', '.join(MODES)}")
