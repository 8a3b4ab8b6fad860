"""The queue of :class:`~consumers.aio.AsyncBackgroundConsumer`: messages in memory, in order.

Each message's type and text are kept side by side in two deques rather
than as one tuple per message: a queued message is then no object the
garbage collector visits, and queuing one allocates nothing.  The bytes
held (characters plus :data:`OVERHEAD` per message) are counted against the
consumer's ``max_queue_bytes``.  Only the loop's thread touches it.
"""

from __future__ import annotations

from collections import deque

from consumers.errors import Message

__all__ = ["OVERHEAD", "MessageQueue"]

#: Bytes a queued message costs beyond its characters (the string object, the deque slots).
OVERHEAD = 120


class MessageQueue:
    """``types``/``items``: the queue; ``urgent``: what goes first (an alias)."""

    def __init__(self, max_queue_bytes: int) -> None:
        if max_queue_bytes < 1024:
            raise ValueError(f"max_queue_bytes must be at least 1024, got {max_queue_bytes!r}")
        self.max_queue_bytes = max_queue_bytes
        self.overhead = OVERHEAD
        self.types: deque[str] = deque()
        self.items: deque[str] = deque()
        self._push_type = self.types.append
        self._push = self.items.append
        self.urgent: deque[Message] = deque()
        self.queued_bytes = 0
        self.accepted = 0  # messages queued so far (urgent ones too)

    def take(self, count: int) -> dict[str, list[str]]:
        """Remove up to ``count`` messages from the front of the queue: each type's, in order."""
        types, items = self.types, self.items
        count = min(count, len(items))
        texts = [items.popleft() for _ in range(count)]
        kinds = [types.popleft() for _ in range(count)]
        self.queued_bytes -= sum(map(len, texts)) + OVERHEAD * count
        if not count:
            return {}
        if kinds.count(kinds[0]) == count:  # the usual case: one type
            return {kinds[0]: texts}
        by_type: dict[str, list[str]] = {}
        for message_type, text in zip(kinds, texts):
            by_type.setdefault(message_type, []).append(text)
        return by_type

    def put_back(self, messages: list[Message]) -> None:
        """Unsent messages return to the front of the queue, in their order."""
        self.types.extendleft([t for t, _ in reversed(messages)])
        self.items.extendleft([m for _, m in reversed(messages)])
        self.queued_bytes += sum(len(m) for _, m in messages) + OVERHEAD * len(messages)

    def take_all(self) -> list[Message]:
        """Empty the queue: the urgent messages, then the others, in order."""
        left = [*self.urgent, *zip(self.types, self.items)]
        self.urgent.clear()
        self.types.clear()
        self.items.clear()
        self.queued_bytes = 0
        return left
