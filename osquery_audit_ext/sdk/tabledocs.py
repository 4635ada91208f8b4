"""Markdown docs of the tables, rendered from tables/*.table into README.md.

`python -m osquery_audit_ext.sdk.tabledocs README.md` rewrites the block between the markers;
a test fails when the README's block differs from the specs.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .tablespec import TableSpec, all_specs

BEGIN = "<!-- tables:begin (generated from tables/*.table: do not edit) -->"
END = "<!-- tables:end -->"


def render_table(spec: TableSpec) -> str:
    lines = [f"### `{spec.name}`", "", spec.description, ""]
    if spec.attributes:
        lines += [f"Attributes: {', '.join(spec.attributes)}.", ""]
    lines += ["| column | type | options | description |", "|---|---|---|---|"]
    for c in spec.columns:
        desc = c.description.replace("|", "\\|")
        lines.append(f"| `{c.name}` | {c.type} | {', '.join(c.options)} | {desc} |")
    if spec.examples:
        lines += ["", "```sql", *spec.examples, "```"]
    return "\n".join(lines)


def render_all() -> str:
    return "\n\n".join(render_table(s) for s in all_specs())


def replace_block(text: str, block: str) -> str:
    start, end = text.index(BEGIN), text.index(END)
    return text[: start + len(BEGIN)] + "\n" + block + "\n" + text[end:]


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "README.md")
    path.write_text(replace_block(path.read_text(), render_all()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
