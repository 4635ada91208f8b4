"""A pause of the cyclic garbage collector around bulk work that makes millions of objects.

Building or decoding 100k rows allocates containers by the million, and every 700 of them
start a young-generation collection whose survivors are traversed again and again; a
query's rows hold no reference cycles, so that work finds nothing. `gc_paused()` turns the
collector off for the block and back on after it. Pauses nest and may overlap across
threads: the collector is disabled when the first one starts and its previous state
(enabled or not) comes back when the last one ends, also when the block raises.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Run the block with the cyclic GC disabled (reference counting still frees memory)."""
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()


def gc_pauses() -> int:
    """How many gc_paused() blocks are running now (0: none; the collector is as found)."""
    return _depth
