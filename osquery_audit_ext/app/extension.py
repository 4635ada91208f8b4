"""The composition root: settings in, a started AuditService and its tables out.

The one place that knows how the product is put together, so the service, the tables and
the front ends (the `extension` command, the launched core) need not know each other.
"""

from __future__ import annotations

import sys
import zipimport
from typing import Callable

import osquery_audit_ext

from ..sdk.plugin import Table
from .service import AuditService
from .settings import load_settings
from .tables import AuditConsumersTable, AuditRulesTable, AuditStatusTable, EventTable

EXTENSION_NAME = "osquery_audit_ext"


def extension_argv() -> list[str]:
    """How to start this package as an extension program (the .ext itself when run from one)."""
    loader = getattr(osquery_audit_ext, "__loader__", None)
    if isinstance(loader, zipimport.zipimporter):
        return [sys.executable, loader.archive]
    return [sys.executable, "-m", "osquery_audit_ext"]


def audit_tables(service: AuditService) -> list[Table]:
    """Every table the extension serves, each given only what it reads."""
    rings = {**service.router.rings(), **service.other_rings}  # disabled tables: empty rings
    return [
        AuditRulesTable(service.settings.key),
        AuditStatusTable(service.status_stats),
        AuditConsumersTable(service.consumers, rings),
        *(
            EventTable(
                name,
                ring,
                service.router.builder(name),
                service.consumers,
                service.eids.start(name),
            )
            for name, ring in rings.items()
        ),
    ]


def build_extension(config_path: str | None) -> tuple[list[Table], Callable[[], None]]:
    """What the extension runtime serves: the audit tables, and the cleanup to run on exit."""
    service = AuditService(load_settings(config_path))
    service.start()
    return audit_tables(service), service.stop
