"""Write generated data files, or only check that they are current (`--check`): shared by
the generators in this folder."""

from __future__ import annotations

import sys
from pathlib import Path


def write_or_check(out: Path, files: dict[str, str], *, check: bool, what: str) -> int:
    """Write each changed file under `out` (or, with check, only list them); 1 when stale."""
    out.mkdir(parents=True, exist_ok=True)
    stale = []
    for name, text in files.items():
        path = out / name
        if path.exists() and path.read_text(encoding="ascii") == text:
            continue
        stale.append(name)
        if not check:
            path.write_text(text, encoding="ascii")
    if check and stale:
        print(f"stale {what}: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0
