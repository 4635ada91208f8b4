"""Dicts whose copies share one keys table: rows by the hundred thousand, cheaply.

A query's rows all hold the same columns. Built as copies of one template, plain dicts each
duplicate the template's keys table (~0.8 KB for 25 columns) and free it again; on CPython an
instance's attribute dict is a key-sharing dict (PEP 412), whose copies hold only a values
array and point at keys held once. Used by the row builders (events/rows.py) and by the query
client's reader of answers (sdk/client.py).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence


@functools.lru_cache(maxsize=64)
def _key_holder(names: tuple[str, ...]) -> type:
    """A class whose instances' attribute dicts share one keys table: one per column list."""
    return type("_RowKeys", (), {})


def key_sharing_dict(names: Sequence[str], values: Sequence[object]) -> dict:
    """{names[i]: values[i]} as a dict whose copies share one keys table.

    A row is a copy of its template's view, 100k of them a scan. On CPython an instance's
    attribute dict is a key-sharing dict (PEP 412): a copy of it is one values array pointing
    at keys held once for all rows, where a plain dict's copy duplicates its keys table (~0.8
    KB for 25 columns) and freeing the row walks it again. Where the interpreter does not
    share (other Pythons, more columns than CPython shares, a name setattr treats specially)
    it is a plain dict with the same items: only the cost differs."""
    names = tuple(names)
    if any(name.startswith("__") for name in names) or len(set(names)) != len(names):
        return dict(zip(names, values))
    holder = _key_holder(names)()
    for name, value in zip(names, values):
        setattr(holder, name, value)
    shared, plain = holder.__dict__, dict(zip(names, values))
    # Past CPython's limit (~30 keys) an attribute dict stops sharing and grows larger than
    # a plain dict: keep it only where it is the smaller one (sys.getsizeof leaves out a
    # shared keys table).
    return shared if sys.getsizeof(shared) < sys.getsizeof(plain) else plain


def key_sharing_view(names: Sequence[str]) -> dict:
    """key_sharing_dict of `names`, every value None: a template to copy rows from."""
    return key_sharing_dict(names, [None] * len(names))
