"""The sink a background consumer wraps: how to hand it messages, and how many per request."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Callable, Optional

from consumers._pace import pace_stats, sink_pressed
from consumers.consumer import MAX_BATCH
from consumers.errors import Message

__all__ = ["DEFAULT_BATCH", "Inner"]

#: Messages per hand-over when the sink states no limit of its own.
DEFAULT_BATCH = 50


def _limit(value: Any) -> Optional[int]:
    """The smallest positive int in ``value`` (an int or a ``{type: int}`` mapping)."""
    if isinstance(value, dict):
        values = [v for v in value.values() if isinstance(v, int) and v > 0]
        return min(values) if values else None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


class Inner:
    """Adapter over any sink: ``send``/``send_many``/``flush``/``take_pending`` when it has them.

    ``batch`` is how many messages go to it per hand-over: ``batch_size`` when
    given, else the sink's public ``bulk_batch`` (what a
    :class:`~consumers.buffered.BufferedConsumer` posts per request for a
    batch handed whole), else its ``max_batch``, else :data:`DEFAULT_BATCH`.
    ``lock`` is held while the worker uses the sink (a fork waits for it).
    """

    def __init__(self, sink: Any, batch_size: Optional[int]) -> None:
        send = getattr(sink, "send", None)
        if not callable(send):
            if not callable(sink):
                raise TypeError("inner must be a consumer with .send or a callable sink")
            send = sink
        self.sink = sink
        self.send: Callable[[str, str], Any] = send
        many = getattr(sink, "send_many", None)
        self.send_many: Optional[Callable[[Sequence[Message]], Any]] = (
            many if callable(many) else None)
        self._batch_given = batch_size is not None
        if batch_size is None:
            batch_size = (_limit(getattr(sink, "bulk_batch", None))
                          or _limit(getattr(sink, "max_batch", None)) or DEFAULT_BATCH)
        self.batch = batch_size
        self.lock = threading.Lock()

    def batch_now(self) -> int:
        """Messages for the next hand-over: fuller (the service's 2,000) while the
        destination is rate limited or slow, unless ``batch_size`` was given."""
        if not self._batch_given and self.batch < MAX_BATCH and sink_pressed(self.sink):
            return MAX_BATCH
        return self.batch

    def pace_stats(self) -> dict[str, int]:
        """How often and how long the sink's destination held its endpoints."""
        return pace_stats(self.sink)

    def flush(self) -> None:
        flush = getattr(self.sink, "flush", None)
        if callable(flush):
            with self.lock:
                flush()

    def take_pending(self) -> list[Message]:
        take = getattr(self.sink, "take_pending", None)
        if not callable(take):
            return []
        with self.lock:
            return list(take())

    def end_retries_at(self, deadline: Optional[float]) -> None:
        """Ask the sink to start no retry that would end after ``deadline``, if it can."""
        end = getattr(self.sink, "end_retries_at", None)
        if callable(end):
            end(deadline)

    def close(self) -> None:
        close = getattr(self.sink, "close", None)
        if callable(close):
            close()

    def reset_after_fork(self) -> bool:
        """Reset the sink in a fork child; False when it cannot reset itself."""
        reset = getattr(self.sink, "reset_after_fork", None)
        if callable(reset):
            reset()
            return True
        take = getattr(self.sink, "take_pending", None)
        if callable(take):
            take()  # the parent delivers these
        return False

    @property
    def resets_after_fork(self) -> bool:
        return callable(getattr(self.sink, "reset_after_fork", None))
