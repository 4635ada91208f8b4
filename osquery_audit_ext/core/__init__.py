"""An embedded osquery-compatible core: extension manager, SQL engine, extension launcher.

Knows nothing about audit. `EmbeddedCore` needs apsw; importing this package does not,
so the packaged extension (which never runs a core) works without it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CoreError", "EmbeddedCore", "QueryResult", "SQLError"]


def __getattr__(name: str) -> Any:
    if name in ("CoreError", "EmbeddedCore"):
        from . import manager

        return getattr(manager, name)
    if name == "SQLError":
        from . import sql

        return sql.SQLError
    if name == "QueryResult":
        from ..sdk.result import QueryResult

        return QueryResult
    raise AttributeError(name)
