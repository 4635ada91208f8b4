"""Value conversions exactly as osquery core makes them, between strings and SQLite values.

Extensions return every value as a string; core casts it by the column's declared type
(osquery/sql/dynamic_table_row.cpp): integers with strtoll base 0 over the whole string
(so "010" is 8 and "0x1f" is 31), "" and anything unparsable become NULL, INTEGER columns
go through a C `int`. Query results go back out as strings (osquery's castVariant).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from typing import Callable

from .columns import BIGINT, BLOB, COLUMN_TYPES, DOUBLE, INTEGER, TEXT, UNKNOWN, UNSIGNED_BIGINT

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_C_SPACE = " \t\n\v\f\r"
_C_INTEGER = re.compile(r"([+-]?)(?:0[xX]([0-9a-fA-F]+)|(0[0-7]*)|([1-9][0-9]*))")
_C_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_C_HEXFLOAT = re.compile(
    r"([+-]?)(0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?)"
)
_C_SPECIAL = re.compile(r"([+-]?)(inf(?:inity)?|nan(?:\([0-9A-Za-z_]*\))?)", re.IGNORECASE)


def column_type(name: str) -> str:
    """osquery's columnTypeName(): a route's type string, UNKNOWN when not one of its names."""
    return name if name in COLUMN_TYPES else UNKNOWN


def parse_c_integer(text: str) -> int | None:
    """std::stoll(text, &pos, 0) accepted only when it consumed the whole string."""
    body = text.lstrip(_C_SPACE)
    match = _C_INTEGER.fullmatch(body)
    if match is None:
        return None
    sign, hex_digits, octal, decimal = match.groups()
    if hex_digits is not None:
        value = int(hex_digits, 16)
    elif octal is not None:
        value = int(octal, 8)
    else:
        value = int(decimal, 10)
    value = -value if sign == "-" else value
    return value if INT64_MIN <= value <= INT64_MAX else None


def parse_c_double(text: str) -> float | None:
    """strtod(text, &end) accepted only when it consumed the whole string (NaN is NULL)."""
    body = text.lstrip(_C_SPACE)
    if _C_DECIMAL.fullmatch(body):
        return float(body)
    match = _C_HEXFLOAT.fullmatch(body)
    if match:
        value = float.fromhex(match.group(2))
        return -value if match.group(1) == "-" else value
    match = _C_SPECIAL.fullmatch(body)
    if match and match.group(2).lower().startswith("inf"):
        return -math.inf if match.group(1) == "-" else math.inf
    return None


def _as_c_int(value: int) -> int:
    """sqlite3_result_int(ctx, long): the low 32 bits as a signed int."""
    value &= 0xFFFFFFFF
    return value - 2**32 if value >= 2**31 else value


def column_value(ctype: str, text: str | None) -> int | float | str | None:
    """The SQLite value core gives one returned string in a column of this type."""
    if text is None:
        return None
    if ctype in (TEXT, BLOB):
        return text
    if ctype == INTEGER:
        number = parse_c_integer(text)
        return None if number is None else _as_c_int(number)
    if ctype in (BIGINT, UNSIGNED_BIGINT):
        return parse_c_integer(text)
    if ctype == DOUBLE:
        return parse_c_double(text)
    return None  # UNKNOWN: core logs an error and leaves the column NULL


def _bigint(text: str | None) -> int | None:
    # Plain decimal (what extensions send) in int64 range without leading zeros: int() agrees
    # with strtoll; anything else takes the exact path.
    if text is None:
        return None
    if text.isdigit() and text.isascii() and len(text) < 19 and (text[0] != "0" or len(text) == 1):
        return int(text)
    return parse_c_integer(text)


def _integer(text: str | None) -> int | None:
    number = _bigint(text)
    return None if number is None else _as_c_int(number)


def _text(text: str | None) -> str | None:
    return text


def _double(text: str | None) -> float | None:
    return None if text is None else parse_c_double(text)


def _unknown(text: str | None) -> None:
    return None


_CONVERTERS = {
    TEXT: _text,
    BLOB: _text,
    INTEGER: _integer,
    BIGINT: _bigint,
    UNSIGNED_BIGINT: _bigint,
    DOUBLE: _double,
}


def column_converter(ctype: str) -> Callable[[str | None], int | float | str | None]:
    """column_value for one column type, as one function (for converting many values)."""
    return _CONVERTERS.get(ctype, _unknown)


# The range in which strtoll (then a C int for INTEGER) keeps a decimal's value.
PLAIN_RANGES = {
    BIGINT: (INT64_MIN, INT64_MAX),
    UNSIGNED_BIGINT: (INT64_MIN, INT64_MAX),
    INTEGER: (-(2**31), 2**31 - 1),
}
_JSON_LIST = json.JSONDecoder().decode
_JSON_SPACE = (" ", "\t", "\n", "\r")
_INT = frozenset({int})


def _plain_integers(ctype: str, texts: list[str | None]) -> list[int] | None:
    """The values of a column of plain decimals, or None if any value is not one.

    Joined by ",", such a column is a JSON list, parsed in one C call (~2x map(int)). JSON
    reads an integer exactly as int() and strtoll do (-?(0|[1-9][0-9]*): no '+', no leading
    zero, ASCII digits). What else JSON would read is turned away: a value holding a comma
    (the count), spaces (JSON skips them, strtoll does not take a trailing one), anything
    that decodes to other than one int per value (floats, exponents, true, null, lists,
    strings), and numbers outside the column's range."""
    bounds = PLAIN_RANGES.get(ctype)
    if bounds is None:
        return None
    try:
        joined = ",".join(texts)  # type: ignore[arg-type]
    except TypeError:  # a None (a missing value)
        return None
    if joined.count(",") != len(texts) - 1 or any(c in joined for c in _JSON_SPACE):
        return None
    try:
        values = _JSON_LIST("[" + joined + "]")
    except (ValueError, RecursionError):
        return None
    if len(values) != len(texts) or set(map(type, values)) != _INT:
        return None
    low, high = bounds
    return values if low <= min(values) and max(values) <= high else None  # type: ignore[no-any-return]


def convert_column(ctype: str, texts: list[str | None]) -> list[int | float | str | None]:
    """[column_value(ctype, t) for t in texts], by C loops when every value is a plain
    decimal (_plain_integers)."""
    if ctype in (TEXT, BLOB):
        return texts  # type: ignore[return-value]
    if not any(texts):  # every value "" or missing: NULL in any column but TEXT/BLOB
        return [None] * len(texts)
    values = _plain_integers(ctype, texts)
    if values is not None:
        return values  # type: ignore[return-value]
    convert = column_converter(ctype)
    return [convert(t) for t in texts]


def parse_rowid(text: str) -> int | None:
    """A row's "rowid" key: base 10 over the whole string, else the row is an error."""
    body = text.lstrip(_C_SPACE)
    if not re.fullmatch(r"[+-]?[0-9]+", body):
        return None
    value = int(body, 10)
    return value if INT64_MIN <= value <= INT64_MAX else None


def result_text(value: object, nullvalue: str = "") -> str:
    """One query result value as core's query() returns it (castVariant)."""
    if value.__class__ is str:
        return value  # type: ignore[return-value]
    if value is None:
        return nullvalue
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = f"{value:.15g}"
        return text if "." in text else text + ".0"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).split(b"\0", 1)[0].decode("utf-8", errors="replace")
    return str(value)


_TEXT_KIND = frozenset({str})
_TEXT_OR_NONE = frozenset({str, type(None)})
PLAIN_KINDS = frozenset({str, int, type(None)})
"""Value types column_text turns to text without a Python call per value."""


def column_text(
    values: Sequence[object],
    null: str,
    fallback: Callable[[object], str],
    kinds: AbstractSet[type] | None = None,
) -> Sequence[str]:
    """[fallback(v) for v in values], where fallback gives str(v) for an int and `null` for
    None: values that are all str, int or None (`kinds`, when the caller already has
    set(map(type, values))) go by C loops: dict.get(v, format(v)) on {None: null} is `null`
    for None and str(v) for an int or str (format(v) with no spec: the same text as str(v),
    the str itself for a str, by a cheaper call than str())."""
    if kinds is None:
        kinds = set(map(type, values))
    if kinds <= _TEXT_KIND:
        return values  # type: ignore[return-value]
    if kinds <= _TEXT_OR_NONE:
        return list(map({None: null}.get, values, values))  # type: ignore[arg-type]
    if kinds <= PLAIN_KINDS:
        return list(map({None: null}.get, values, map(format, values)))  # type: ignore[arg-type]
    return list(map(fallback, values))


_JSON_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


def json_string(text: str) -> str:
    """A JSON string as osquery's rapidjson writes it: UTF-8 kept, controls as \\u00XX."""
    out = []
    for char in text:
        escaped = _JSON_ESCAPES.get(char)
        if escaped is not None:
            out.append(escaped)
        elif char < " ":
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'
