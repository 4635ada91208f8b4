"""Waiting for a consumer to catch up: a counter that has (almost) stopped growing.

"Stopped" cannot mean zero growth while audit rules are in place: other processes' audited
calls, and our own status queries (each an audited netlink bind), keep a trickle going.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable


def wait_settled(
    read: Callable[[], int],
    *,
    settle: float = 1.0,
    trickle: int = 0,
    timeout: float = 300.0,
    interval: float = 0.25,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Poll `read()` until it grew by at most `trickle` over the last `settle` seconds.

    Returns False if that has not happened within `timeout` seconds.
    """
    deadline = clock() + timeout
    history: deque[tuple[float, int]] = deque()
    while True:
        now = clock()
        value = read()
        history.append((now, value))
        # Keep the newest sample that is at least `settle` old, and everything after it.
        while len(history) > 1 and now - history[1][0] >= settle:
            history.popleft()
        oldest_time, oldest_value = history[0]
        if now - oldest_time >= settle and value - oldest_value <= trickle:
            return True
        if now >= deadline:
            return False
        sleep(interval)
