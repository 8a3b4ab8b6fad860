"""The hand-off between callers and the worker: a deque bounded by bytes.

Callers append and add to ``added``; the worker pops and adds to
``removed``; each counter has one writer side, so no lock sits on the
caller's path.  ``added - removed`` is the bytes queued now, counted as
the message's characters plus :data:`OVERHEAD` (the tuple and string
headers Python keeps per queued message).
"""

from __future__ import annotations

import collections
import threading
from typing import Any, Optional

from consumers.errors import Message

__all__ = ["OVERHEAD", "Marker", "MessageQueue"]

#: Bytes Python spends per queued message besides its characters (tuple, str header, slot).
OVERHEAD = 120


class Marker:
    """A flush request travelling through the queue behind the messages it waits for."""

    __slots__ = ("done", "ok")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False


def size_of(message: Message) -> int:
    """What one queued message is counted as."""
    return len(message[1]) + OVERHEAD


class MessageQueue:
    """Messages and flush markers, oldest first, bounded by ``max_bytes`` (and ``max_count``)."""

    def __init__(self, max_bytes: int, max_count: Optional[int]) -> None:
        self.items: collections.deque[Any] = collections.deque()
        self.max_bytes = max_bytes
        self.max_count = max_count
        self.added = 0  # bytes appended (callers)
        self.removed = 0  # bytes taken out (the worker)
        self.room = threading.Condition(threading.Lock())
        self.blocked = 0  # callers waiting for room

    @property
    def nbytes(self) -> int:
        return self.added - self.removed

    def has_room(self, size: int) -> bool:
        if self.max_count is not None and len(self.items) >= self.max_count:
            return False
        return self.added - self.removed + size <= self.max_bytes

    def take(self, limit: int) -> tuple[list[Message], list[Marker]]:
        """Pop up to ``limit`` messages (worker only), and the markers met on the way."""
        items = self.items
        messages: list[Message] = []
        markers: list[Marker] = []
        taken = 0
        while len(messages) < limit:
            try:
                item = items.popleft()
            except IndexError:
                break
            if type(item) is Marker:
                markers.append(item)
                continue
            messages.append(item)
            taken += len(item[1]) + OVERHEAD
        self.removed += taken
        if self.blocked:
            self.notify_room()
        return messages, markers

    def notify_room(self) -> None:
        with self.room:
            self.room.notify_all()

    def wait_for_room(self, size: int, timeout: float, stop: Any) -> bool:
        """Wait up to ``timeout`` s for room for ``size`` bytes; False if none or ``stop()``."""
        import time

        deadline = time.monotonic() + timeout
        with self.room:
            self.blocked += 1
            try:
                while not self.has_room(size):
                    left = deadline - time.monotonic()
                    if left <= 0 or stop():
                        return False
                    # short slices: a notification between the check and the wait is not lost
                    self.room.wait(min(left, 0.05))
                return True
            finally:
                self.blocked -= 1

    def markers_queued(self) -> int:
        return sum(1 for item in list(self.items) if type(item) is Marker)
