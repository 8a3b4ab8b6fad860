"""Messages sent from other threads, handed to the event loop in batches.

A synchronous view run in a thread pool calls ``send()`` off the loop's
thread.  The message goes into a small locked buffer; only the first
message of a batch asks the loop (``call_soon_threadsafe``, a write to the
loop's wake-up pipe) to take the buffer, so a busy thread costs the loop
one callback per turn, not one per message.  The loop takes at most
:data:`PER_TURN` messages per callback, so a large batch does not hold it.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Callable

from consumers.errors import Message

__all__ = ["HandOff"]

#: Messages the loop takes from the buffer in one callback.
PER_TURN = 500

#: (urgent, type, message_json)
Entry = tuple[bool, str, str]


class HandOff:
    """The buffer between other threads and the loop; ``accept(urgent, type, text)`` runs there."""

    def __init__(self, accept: Callable[[bool, str, str], None], overhead: int) -> None:
        self._accept = accept
        self._overhead = overhead
        self._lock = threading.Lock()
        self._entries: deque[Entry] = deque()
        self._scheduled = False
        self.size = 0  # the bytes waiting, as the queue counts them: within its bound

    def put(self, loop: asyncio.AbstractEventLoop, urgent: bool, type: str,
            text: str) -> list[Message]:
        """Buffer one message for ``loop``; what can never reach it (the loop is closed)."""
        with self._lock:
            self._entries.append((urgent, type, text))
            self.size += len(text) + self._overhead
            if self._scheduled and not loop.is_closed():
                return []
            self._scheduled = True
        try:
            loop.call_soon_threadsafe(self.take)
        except RuntimeError:  # the loop is closed: nothing will take the buffer
            return self.drain()
        return []

    def take(self, limit: int = PER_TURN) -> None:
        """On the loop: accept up to ``limit`` buffered messages, then come back for the rest."""
        with self._lock:
            count = min(limit, len(self._entries))
            entries = [self._entries.popleft() for _ in range(count)]
            self.size -= sum(len(text) for _, _, text in entries) + self._overhead * count
            more = bool(self._entries)
            self._scheduled = more
        for urgent, type, text in entries:
            self._accept(urgent, type, text)
        if more:
            asyncio.get_running_loop().call_soon(self.take)

    def take_all(self) -> None:
        """On the loop: accept everything buffered now (``flush()`` counts it)."""
        while self._entries:
            with self._lock:
                entries = list(self._entries)
                self._entries.clear()
                self.size = 0
            for urgent, type, text in entries:
                self._accept(urgent, type, text)

    def drain(self) -> list[Message]:
        """Remove and return what is buffered (closing: it goes to the spool or is reported)."""
        with self._lock:
            entries = list(self._entries)
            self._entries.clear()
            self.size = 0
            self._scheduled = False
        return [(type, text) for _, type, text in entries]

    def __len__(self) -> int:
        return len(self._entries)
