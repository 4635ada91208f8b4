"""Our query packs: the osquery packs in packs/ (parsed by core/packs.py) and their Fleet YAML.

The JSON packs in packs/ are the single source; the Fleet YAML beside them is generated from
them (`osquery-audit-ext packs fleet`) so the two never drift.
"""

from __future__ import annotations

import json

from ..core.packs import Pack, PackQuery, load_pack, parse_pack
from ..sdk.result import Scan

__all__ = [
    "FLEET_KEYS",
    "Pack",
    "PackQuery",
    "fleet_yaml",
    "load_pack",
    "parse_pack",
    "unbounded_event_scans",
]

# The top-level key of a list of queries in Fleet's GitOps files: `reports` since Fleet
# 4.82 (2026, when Fleet renamed queries to reports and teams to fleets), `queries` before
# (still accepted by newer Fleet, with a deprecation warning).
FLEET_KEYS = ("reports", "queries")


def _yaml_str(value: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(value, ensure_ascii=False)


def fleet_yaml(packs: list[Pack], key: str = "reports") -> str:
    """Fleet's GitOps list of scheduled queries (default.yml, fleets/*.yml or a lib file)."""
    if key not in FLEET_KEYS:
        raise ValueError(f"Fleet key must be one of {FLEET_KEYS}")
    since = "Fleet 4.82 and later" if key == "reports" else "Fleet before 4.82"
    lines = [
        "# Generated from packs/*.conf by `osquery-audit-ext packs fleet`: edit the packs, not this.",
        f"# `{key}:` as GitOps files spell it in {since}.",
        f"{key}:",
    ]
    for pack in packs:
        for q in pack.queries:
            if q.snapshot:
                logging = "snapshot"
            elif q.removed:
                logging = "differential"
            else:
                logging = "differential_ignore_removals"
            lines += [
                f"  - name: {_yaml_str(q.name)}",
                f"    query: {_yaml_str(q.query)}",
                f"    description: {_yaml_str(q.description)}",
                f"    platform: {_yaml_str('linux' if q.platform in ('linux', 'posix') else q.platform)}",
                f"    interval: {q.interval}",
                f"    logging: {logging}",
                "    observer_can_run: true",
                "    automations_enabled: true",
            ]
    return "\n".join(lines) + "\n"


def unbounded_event_scans(scans: tuple[Scan, ...]) -> list[str]:
    """Event tables a scheduled query read with neither a consumer nor a time constraint:
    osqueryd would log the whole ring at every run."""
    return sorted(
        {
            scan.table
            for scan in scans
            if scan.event_based and not scan.constrained & {"consumer", "time"}
        }
    )
