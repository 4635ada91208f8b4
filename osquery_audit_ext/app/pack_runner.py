"""Run every query of some packs against the embedded core with the audit extension loaded.

A query that osquery would reject (unknown table or column, SQL error, a table error) is a
problem naming the pack and query; the rows themselves do not matter here.
"""

from __future__ import annotations

from ..errors import AuditExtError
from .packs import Pack


def run_pack_queries(packs: list[Pack], config: str | None) -> list[str]:
    from .launched_core import running_core

    problems = []
    with running_core(config) as local:
        for pack in packs:
            named = [(f"discovery[{i}]", sql) for i, sql in enumerate(pack.discovery)]
            named += [(f"queries.{q.name}", q.query) for q in pack.queries]
            for where, sql in named:
                try:
                    local.core.query(sql)
                except AuditExtError as exc:
                    problems.append(f"{pack.path}: {where}: {exc}")
    return problems
