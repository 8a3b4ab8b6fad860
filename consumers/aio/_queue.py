"""The queue of :class:`~consumers.aio.AsyncBackgroundConsumer`: messages in memory, in order.

The queue holds no object the garbage collector visits, however long it
grows.  Each message's text is a value in a dict keyed by its position, and
each type is noted only where it changes (a dict of the positions where a
run of one type starts).  A dict whose keys and values are ints and strings
is not tracked by the collector, where a deque is: a deque of 20,000
messages, still young when an outage fills it, made each collection of the
young generation take 0.5-0.9 ms, and in a full collection every queued
message costs a visit.  Queuing a message allocates only its position.

The bytes held (characters plus :data:`OVERHEAD` per message) are counted
against the consumer's ``max_queue_bytes``.  Only the loop's thread
touches it.
"""

from __future__ import annotations

from collections import deque

from consumers.errors import Message

__all__ = ["OVERHEAD", "MessageQueue"]

#: Bytes a queued message costs beyond its characters: the string object, its
#: position and the dict's slots (110 to 141 bytes, measured from 1,000 to 100,000
#: queued).
OVERHEAD = 150


class MessageQueue:
    """The queue: positions ``head`` to ``tail``; ``urgent``: what goes first (an alias).

    ``texts[p]`` is the text at position ``p``; ``starts[p]`` the type of
    the run that begins at ``p``; ``head_type`` the type at ``head`` where
    no run begins there; ``tail_type`` the type last queued.
    """

    def __init__(self, max_queue_bytes: int) -> None:
        if max_queue_bytes < 1024:
            raise ValueError(f"max_queue_bytes must be at least 1024, got {max_queue_bytes!r}")
        self.max_queue_bytes = max_queue_bytes
        self.overhead = OVERHEAD
        self.texts: dict[int, str] = {}
        self.starts: dict[int, str] = {}
        self.head = self.tail = 0
        self.head_type = self.tail_type = ""
        self.urgent: deque[Message] = deque()
        self.queued_bytes = 0
        self.accepted = 0  # messages queued so far (urgent ones too)

    @property
    def pending(self) -> int:
        """Messages queued (not the urgent ones)."""
        return self.tail - self.head

    def push(self, message_type: str, text: str) -> None:
        """Queue one message at the back (the caller has counted its bytes)."""
        tail = self.tail
        self.texts[tail] = text
        if message_type != self.tail_type:
            self.starts[tail] = self.tail_type = message_type
        self.tail = tail + 1

    def take(self, count: int) -> dict[str, list[str]]:
        """Remove up to ``count`` messages from the front of the queue: each type's, in order."""
        head = self.head
        end = head + min(count, self.tail - head)
        if end == head:
            return {}
        pop_text, pop_start = self.texts.pop, self.starts.pop
        current = self.head_type
        texts: list[str] = []
        by_type: dict[str, list[str]] = {}
        for position in range(head, end):
            started = pop_start(position, None)
            if started is not None and started != current:
                if texts:
                    by_type.setdefault(current, []).extend(texts)
                    texts = []
                current = started
            texts.append(pop_text(position))
        if by_type:
            by_type.setdefault(current, []).extend(texts)
        else:  # the usual case: one type
            by_type[current] = texts
        self.head, self.head_type = end, current
        if end == self.tail:  # empty: a dict keeps its table, however large it grew
            self.texts.clear()
            self.starts.clear()
        self.queued_bytes -= (sum(sum(map(len, run)) for run in by_type.values())
                              + OVERHEAD * (end - head))
        return by_type

    def put_back(self, messages: list[Message]) -> None:
        """Unsent messages return to the front of the queue, in their order."""
        if not messages:
            return
        head, texts, starts = self.head, self.texts, self.starts
        if head < self.tail:
            starts.setdefault(head, self.head_type)  # the run that was at the front goes on
        else:
            self.tail_type = messages[-1][0]  # the queue was empty: these are its last too
        first = head - len(messages)
        previous = None
        for position, (message_type, text) in enumerate(messages, first):
            texts[position] = text
            if message_type != previous:
                starts[position] = previous = message_type
        self.head, self.head_type = first, messages[0][0]
        self.queued_bytes += sum(len(m) for _, m in messages) + OVERHEAD * len(messages)

    def take_all(self) -> list[Message]:
        """Empty the queue: the urgent messages, then the others, in order."""
        left = list(self.urgent)
        current, texts, starts = self.head_type, self.texts, self.starts
        for position in range(self.head, self.tail):
            current = starts.get(position, current)
            left.append((current, texts[position]))
        self.urgent.clear()
        texts.clear()
        starts.clear()
        self.head = self.tail
        self.head_type = self.tail_type
        self.queued_bytes = 0
        return left
