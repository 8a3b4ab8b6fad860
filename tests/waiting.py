"""Waiting, in tests, for what a worker thread or a server does: polled, no fixed sleeps."""

from __future__ import annotations

import time
from typing import Callable


def wait_for(condition: Callable[[], object], timeout: float = 20.0) -> bool:
    """Whether ``condition()`` became true within ``timeout`` seconds (polled every 10 ms)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.01)
    return bool(condition())
