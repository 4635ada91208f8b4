"""Table specs: the one declaration of every table's columns, options and docs.

Specs live in the top-level ``tables/`` folder as ``NAME.table`` TOML files (packaged as
``osquery_audit_ext/_tables``). Plugins, the osquery routes, the README and the tests all
derive from them; nothing else restates a schema.

Columns every table with a given attribute shares live once in ``ATTRIBUTE.columns`` beside
the specs (e.g. ``event_based.columns``): they are appended to each spec declaring that
attribute, so a new table gets them by declaring the attribute alone.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from ._toml import toml
from .columns import ATTRIBUTE_BITS, BLOB, OPTION_BITS, SPEC_TYPES, TEXT

if TYPE_CHECKING:
    from importlib.abc import Traversable

# The column types a spec may name (spelled as in osquery's specs: UNSIGNED_BIGINT), and
# how osquery spells those that differ on the wire (with a space); both from sdk/columns.py.
COLUMN_TYPES: tuple[str, ...] = tuple(SPEC_TYPES)
WIRE_TYPES: dict[str, str] = {spec: wire for spec, wire in SPEC_TYPES.items() if spec != wire}


class SpecError(ValueError):
    """A table spec file is malformed."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    description: str
    options: tuple[str, ...] = ()

    @property
    def op(self) -> int:
        """osquery's column options bitmask, as sent in the "columns" routes."""
        return sum(OPTION_BITS[o] for o in self.options)

    @property
    def hidden(self) -> bool:
        return "hidden" in self.options

    @property
    def numeric(self) -> bool:
        return self.type not in (TEXT, BLOB)


@dataclass(frozen=True)
class TableSpec:
    name: str
    description: str
    columns: tuple[Column, ...]
    attributes: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    notes: str = ""
    by_name: dict[str, Column] = field(default_factory=dict, compare=False, repr=False)

    @property
    def attributes_bits(self) -> int:
        return sum(ATTRIBUTE_BITS[a] for a in self.attributes)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def routes(self) -> list[dict[str, str]]:
        """The "columns" routes osquery core expects, at registration and on request."""
        routes = [
            {
                "id": "column",
                "name": c.name,
                "type": WIRE_TYPES.get(c.type, c.type),
                "op": str(c.op),
            }
            for c in self.columns
        ]
        if self.attributes:
            routes.append({"id": "attributes", "attributes": str(self.attributes_bits)})
        return routes


def spec_dir() -> Traversable:
    """The folder holding the ``.table`` specs: the packaged copy (a wheel, or inside the
    zipped .ext, hence importlib.resources) or the checkout's ``tables/``."""
    # The specs belong to the top package (osquery_audit_ext/_tables), beside this sdk.
    top_package = __package__.rpartition(".")[0]
    packaged = resources.files(top_package) / "_tables"
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[2] / "tables"
    if checkout.is_dir() and any(checkout.glob("*.table")):
        return checkout
    raise SpecError(f"no table specs found in {packaged} or {checkout}")


def _parse_columns(raw_columns: object, origin: str) -> list[Column]:
    if not isinstance(raw_columns, list):
        raise SpecError(f"{origin}: columns must be a list of tables")
    columns = []
    for i, raw in enumerate(raw_columns):
        extra = set(raw) - {"name", "type", "description", "options"}
        if extra or "name" not in raw or "type" not in raw:
            raise SpecError(f"{origin}: column {i} needs name and type, has {sorted(raw)}")
        ctype = raw["type"].upper()
        if ctype not in COLUMN_TYPES:
            raise SpecError(f"{origin}: column {raw['name']}: unknown type {raw['type']!r}")
        options = tuple(raw.get("options", ()))
        bad = [o for o in options if o not in OPTION_BITS]
        if bad:
            raise SpecError(f"{origin}: column {raw['name']}: unknown options {bad}")
        columns.append(Column(raw["name"], ctype, raw.get("description", ""), options))
    return columns


def parse_spec(
    text: str, origin: str = "<spec>", shared: dict[str, tuple[Column, ...]] | None = None
) -> TableSpec:
    """A spec from its TOML; `shared` maps an attribute to the columns its tables all get."""
    try:
        data = toml.loads(text)
    except toml.TOMLDecodeError as exc:
        raise SpecError(f"{origin}: {exc}") from None
    known = {"name", "description", "columns", "attributes", "examples", "notes"}
    unknown = set(data) - known
    if unknown:
        raise SpecError(f"{origin}: unknown keys {sorted(unknown)}")
    columns = _parse_columns(data.get("columns", []), origin)
    attributes = tuple(data.get("attributes", ()))
    bad = [a for a in attributes if a not in ATTRIBUTE_BITS]
    if bad:
        raise SpecError(f"{origin}: unknown attributes {bad}")
    for attribute in attributes:
        columns.extend((shared or {}).get(attribute, ()))
    names = [c.name for c in columns]
    if len(set(names)) != len(names) or not names:
        raise SpecError(f"{origin}: columns must be present and unique")
    return TableSpec(
        name=data["name"],
        description=data.get("description", ""),
        columns=tuple(columns),
        attributes=attributes,
        examples=tuple(data.get("examples", ())),
        notes=data.get("notes", ""),
        by_name={c.name: c for c in columns},
    )


@functools.cache
def shared_columns() -> dict[str, tuple[Column, ...]]:
    """attribute -> the columns of its ``ATTRIBUTE.columns`` file beside the specs."""
    shared = {}
    for attribute in ATTRIBUTE_BITS:
        path = spec_dir() / f"{attribute}.columns"
        if path.is_file():
            try:
                data = toml.loads(path.read_text(encoding="utf-8"))
            except toml.TOMLDecodeError as exc:
                raise SpecError(f"{path}: {exc}") from None
            if set(data) != {"columns"}:
                raise SpecError(f"{path}: holds only [[columns]]")
            shared[attribute] = tuple(_parse_columns(data["columns"], str(path)))
    return shared


@functools.cache
def load_spec(name: str) -> TableSpec:
    path = spec_dir() / f"{name}.table"
    if not path.is_file():
        raise SpecError(f"no spec for table {name!r} in {spec_dir()}")
    spec = parse_spec(path.read_text(encoding="utf-8"), str(path), shared_columns())
    if spec.name != name:
        raise SpecError(f"{path}: declares table {spec.name!r}")
    return spec


def all_specs() -> list[TableSpec]:
    names = sorted(
        p.name[: -len(".table")] for p in spec_dir().iterdir() if p.name.endswith(".table")
    )
    return [load_spec(name) for name in names]
