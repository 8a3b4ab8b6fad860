"""At most one of the consumers' heavier steps per turn of the event loop.

asyncio runs every callback that is ready before it looks at its timers
again, and a task's wake-up after a timer takes a turn of its own.  So a
timer due while several delivery tasks each have a step of 0.1 to 0.3 ms
ready (taking a slice, encoding a request, writing 64 KB of it) waits for
all of them, two or three turns over.  Before such a step a task awaits
:func:`heavy_step`: the first in a turn goes on at once; the others wait,
in order, one per later turn, so a turn holds at most one of them and the
loop's other work and timers run in between.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque

__all__ = ["heavy_step"]


class _Turns:
    """The heavy steps of one loop: who goes in which turn."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._taken = False  # a heavy step ran in this turn (or goes in the next one)
        self._waiting: deque[asyncio.Future[None]] = deque()

    async def step(self) -> None:
        if not self._taken and not self._waiting:
            self._taken = True
            self._loop.call_soon(self._next)  # runs in the next turn
            return
        waiting = self._loop.create_future()
        self._waiting.append(waiting)
        await waiting

    def _next(self) -> None:
        """A turn later: let the first waiter go (its task runs in the turn after)."""
        while self._waiting:
            waiting = self._waiting.popleft()
            if not waiting.done():
                waiting.set_result(None)
                self._loop.call_soon(self._next)  # after that task's step
                return
        self._taken = False


_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Turns] = (
    weakref.WeakKeyDictionary())


async def heavy_step() -> None:
    """Return when the calling task may take a heavier step: at most one per loop turn."""
    loop = asyncio.get_running_loop()
    turns = _turns.get(loop)
    if turns is None:
        turns = _turns[loop] = _Turns(loop)
    await turns.step()
