"""osquery's column types, column option bits and table attribute bits, defined once.

The table specs (tablespec), the value casts (values) and the embedded core (core/) all
take them from here (osquery/core/tables.h, osquery/core/sql/column.h).
"""

from __future__ import annotations

# ColumnOptions bitmask: what a "columns" route's "op" carries.
INDEX = 1
REQUIRED = 2
ADDITIONAL = 4
OPTIMIZED = 8
HIDDEN = 16
# The same bits by the names a table spec's `options` uses.
OPTION_BITS: dict[str, int] = {
    "index": INDEX,
    "required": REQUIRED,
    "additional": ADDITIONAL,
    "optimized": OPTIMIZED,
    "hidden": HIDDEN,
}

# TableAttributes bitmask, by the names a table spec's `attributes` uses.
ATTRIBUTE_BITS: dict[str, int] = {
    "utility": 1,
    "system": 2,
    "event_based": 4,
    "cacheable": 8,
    "kernel_required": 16,
}

# Column type names as osquery spells them on the wire (kColumnTypeNames): with a space.
TEXT = "TEXT"
INTEGER = "INTEGER"
BIGINT = "BIGINT"
UNSIGNED_BIGINT = "UNSIGNED BIGINT"
DOUBLE = "DOUBLE"
BLOB = "BLOB"
UNKNOWN = "UNKNOWN"  # what core makes of any other type string
COLUMN_TYPES: tuple[str, ...] = (TEXT, INTEGER, BIGINT, UNSIGNED_BIGINT, DOUBLE, BLOB)
# The same types as a table spec writes them (osquery's .table specs: an underscore).
SPEC_TYPES: dict[str, str] = {wire.replace(" ", "_"): wire for wire in COLUMN_TYPES}
