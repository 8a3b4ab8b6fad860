"""What the delivery task sleeps on between rounds: a flag, and one future while it waits.

``asyncio.wait_for(event.wait(), timeout)`` starts a task per wait; when
the delivery task is cancelled (``aclose()``) in the middle of one, that
inner task must be cancelled and awaited too.  A future and a timer need
neither: nothing is left behind whichever way the wait ends.
"""

from __future__ import annotations

import asyncio
from typing import Optional

__all__ = ["Wake"]


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Wake:
    """``set()`` (from the loop's thread) wakes :meth:`wait`; it stays set until ``clear()``."""

    def __init__(self) -> None:
        self.is_set = False
        self._waiter: Optional[asyncio.Future[None]] = None

    def set(self) -> None:
        self.is_set = True
        if self._waiter is not None:
            _release(self._waiter)

    def clear(self) -> None:
        self.is_set = False

    async def wait(self, timeout: float) -> None:
        """Until set, or ``timeout`` seconds passed."""
        if self.is_set:
            return
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        timer = loop.call_later(timeout, _release, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
