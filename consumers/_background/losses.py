"""Exact, aggregated accounts of dropped messages.

A drop happens because memory is full, so the dropped messages cannot all be
kept for the report: each reason keeps its exact count and the first
messages up to :data:`KEEP_BYTES`; the report says both.
"""

from __future__ import annotations

import threading

from consumers.errors import DeliveryError, Message

__all__ = ["KEEP_BYTES", "Losses", "QueueFullError"]

#: Characters of dropped messages kept (per report) to attach to it.
KEEP_BYTES = 4_000_000


class QueueFullError(DeliveryError):
    """Messages were dropped because the queue was full (or the consumer closed).

    ``dropped`` is the exact number dropped for this reason since the last
    report; ``messages`` holds the first of them (all, unless memory forbade).
    """

    def __init__(self, message: str, *, messages: list[Message], dropped: int) -> None:
        super().__init__(message, messages=messages)
        self.dropped = dropped


class Losses:
    """Drops recorded by any thread, reported by the worker in one error per reason."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._kept: dict[str, list[Message]] = {}
        self._kept_bytes = 0
        self.total = 0

    def record(self, reason: str, message: Message) -> None:
        with self._lock:
            self.total += 1
            self._counts[reason] = self._counts.get(reason, 0) + 1
            kept = self._kept.setdefault(reason, [])
            if self._kept_bytes + len(message[1]) <= KEEP_BYTES:
                kept.append(message)
                self._kept_bytes += len(message[1])

    def __bool__(self) -> bool:
        return bool(self._counts)

    def take(self) -> list[QueueFullError]:
        """One error per reason, with exact counts; the account starts again empty."""
        with self._lock:
            counts, kept = self._counts, self._kept
            self._counts, self._kept, self._kept_bytes = {}, {}, 0
        errors = []
        for reason, count in counts.items():
            messages = kept.get(reason, [])
            text = f"{count} message(s) dropped: {reason}"
            if len(messages) < count:
                text += f" (the first {len(messages)} are attached)"
            errors.append(QueueFullError(text, messages=messages, dropped=count))
        return errors
