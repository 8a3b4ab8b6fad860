"""How far delivery has come, and the ``flush()`` calls waiting for it.

Every message accepted gets a number; it is *settled* once delivered,
refused for good, dropped or written to the spool.  A ``flush()`` waits for
the number of the last message accepted before it was called.
"""

from __future__ import annotations

import asyncio
from typing import Optional

__all__ = ["Progress"]


class Progress:
    """The settled count; the futures of the ``flush()`` calls in progress.

    The accepted count is the consumer's own (``send()`` counts it with no
    attribute look-up beyond its own).
    """

    def __init__(self) -> None:
        self.settled = 0
        self.flush_requested = 0  # flush() calls waiting: the task delivers at once
        # (target, patient: waits out an outage until its timeout, future)
        self._waiters: list[tuple[int, bool, asyncio.Future[bool]]] = []

    async def wait(self, target: int, timeout: Optional[float]) -> bool:
        """Until ``target`` messages are settled: the result :meth:`notify` gives."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, timeout is not None, future))
        self.flush_requested += 1
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            return False
        finally:
            self.flush_requested -= 1

    def notify(self, *, clean: bool, failed: bool = False, until_clean: bool = False) -> None:
        """Answer the waits that are over; after a failure, False to the impatient.

        ``clean``: nothing waits in the spool (else a settled wait answers False,
        or, ``until_clean``, goes on waiting for the spool to be delivered).
        """
        if not self._waiters:
            return
        still = []
        for target, patient, future in self._waiters:
            if future.done():
                continue
            if failed and not patient:
                future.set_result(False)
            elif self.settled >= target and (clean or not (failed or until_clean)):
                future.set_result(clean)
            else:
                still.append((target, patient, future))
        self._waiters = still
