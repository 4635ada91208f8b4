"""Run every query of some packs against the embedded core with the audit extension loaded.

A query that osquery would reject (unknown table or column, SQL error, a table error) is a
problem naming the pack and query; the rows themselves do not matter here. A scheduled
query that reads an event table with neither `consumer = '...'` nor a time constraint is a
warning: osqueryd would log every event the ring holds again at every run.

The extension runs with its cursors in memory (unless the config names a state dir), so
checking a pack neither moves a real consumer's cursor nor needs the running instance's
state directory.
"""

from __future__ import annotations

from ..errors import AuditExtError
from .packs import Pack, unbounded_event_scans


def run_pack_queries(packs: list[Pack], config: str | None) -> tuple[list[str], list[str]]:
    """(problems, warnings) of running every discovery and scheduled query once."""
    from .launched_core import running_core

    problems: list[str] = []
    warnings: list[str] = []
    with running_core(config, memory_state=True) as local:
        for pack in packs:
            named = [(f"discovery[{i}]", sql, False) for i, sql in enumerate(pack.discovery)]
            named += [(f"queries.{q.name}", q.query, True) for q in pack.queries]
            for where, sql, scheduled in named:
                try:
                    result = local.core.query_scanned(sql)
                except AuditExtError as exc:
                    problems.append(f"{pack.path}: {where}: {exc}")
                    continue
                if scheduled:
                    for table in unbounded_event_scans(result.scans):
                        warnings.append(
                            f"{pack.path}: {where}: reads {table} with neither "
                            f"consumer = '...' nor a time constraint: each run logs "
                            f"every event the ring holds again"
                        )
    return problems, warnings
