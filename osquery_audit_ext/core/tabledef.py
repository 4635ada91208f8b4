"""A table as osquery core sees it: parsed from the "columns" routes a plugin answers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..sdk.columns import ADDITIONAL, HIDDEN, INDEX, UNKNOWN
from ..sdk.values import column_type


@dataclass(frozen=True)
class ColumnDef:
    name: str
    type: str
    options: int
    alias_of: str | None = None  # a columnAlias: reads the target column's value


@dataclass(frozen=True)
class TableDef:
    name: str
    columns: tuple[ColumnDef, ...]
    aliases: tuple[str, ...] = ()
    attributes: int = 0

    @classmethod
    def from_routes(
        cls,
        name: str,
        routes: Sequence[Mapping[str, str]],
        *,
        is_extension: bool,
        default_index: bool = True,
    ) -> TableDef:
        """Read routes as osquery's xCreate does.

        An extension column with options 0 becomes INDEX when `extensions_default_index`
        is on (osquery's default); a column alias is a HIDDEN column of its target's type.
        """
        columns: list[ColumnDef] = []
        aliases: list[str] = []
        attributes = 0
        for route in routes:
            kind = route.get("id")
            if kind == "column" and "name" in route and "type" in route:
                options = _int(route.get("op", "0"))
                if is_extension and default_index and options == 0:
                    options = INDEX
                columns.append(ColumnDef(route["name"], column_type(route["type"]), options))
            elif kind == "alias" and route.get("alias"):
                aliases.append(route["alias"])
            elif kind == "columnAlias" and "name" in route and "target" in route:
                target = next((c for c in columns if c.name == route["target"]), None)
                ctype = target.type if target else UNKNOWN
                columns.append(ColumnDef(route["name"], ctype, HIDDEN, route["target"]))
            elif kind == "attributes":
                attributes = _int(route.get("attributes", "0"))
        return cls(name, tuple(columns), tuple(aliases), attributes)

    def column_definition(self, *, is_extension: bool) -> str:
        """osquery's columnDefinition(): the column list of a CREATE TABLE statement."""
        parts = []
        primary: list[str] = []
        indexed = False
        without_rowid = False
        for column in self.columns:
            text = f"`{column.name}` {column.type}"
            if column.options & INDEX:
                indexed = True
            if column.options & (INDEX | ADDITIONAL):
                primary.append(column.name)
                without_rowid = True
            if column.options & HIDDEN:
                text += " HIDDEN"
            parts.append(text)
        if not indexed and without_rowid:
            primary = [c.name for c in self.columns]
        statement = "(" + ", ".join(parts)
        if primary:
            statement += ", PRIMARY KEY (" + ", ".join(f"`{p}`" for p in primary) + ")"
        statement += ")"
        if without_rowid and not is_extension:
            statement += " WITHOUT ROWID"
        return statement

    def create_statement(self, *, is_extension: bool) -> str:
        return f"CREATE TABLE {self.name}{self.column_definition(is_extension=is_extension)}"


def _int(text: str) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        return 0
