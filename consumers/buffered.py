"""``BufferedConsumer``: batch messages per type and post them in as few requests as allowed.

::

    with BufferedConsumer(region="eu", max_batch=200) as consumer:   # close() flushes
        tracker = Tracker(token, consumer)
        ...

Each message type has its own buffer, posted when it holds ``max_batch``
messages (default 50, at most 2000) or ``max_bytes`` of JSON (defaults in
:mod:`consumers._limits`), and on :meth:`~BufferedConsumer.flush`.  A batch is
the already-serialised messages joined with commas.  :meth:`~BufferedConsumer.send_many`
hands over many messages at once, posted ``bulk_batch`` at a time.

A failed flush loses nothing and sends nothing twice: unsent messages stay
buffered in order (the error's ``pending`` counts them); a batch the service
refuses as too large or invalid is split until the refused message is alone,
which is reported and dropped; strict /import's ``failed_records`` and a
``{"status": 0}`` answer are reported and not resent (docs/buffered.md has
each case).  A consumer garbage-collected or open at interpreter exit with
messages buffered warns (:mod:`consumers._unflushed`).

One lock guards the buffers and is never held during HTTP: a flush takes the
buffer out, sends outside the lock, and puts back what was not sent in
front of anything buffered meanwhile.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any, Callable, Optional, Protocol, overload

from consumers._closing import Closing
from consumers._fork import ForkAware
from consumers._guesses import positional_urls, unexpected_keyword
from consumers._limits import (
    BULK_BATCH,
    DEFAULT_MAX_BYTES,
    MAX_MESSAGE_BYTES,
    Limit,
    batch_limits,
)
from consumers._pace import held_last, under_pressure
from consumers._protocol.batches import FlushPlan, batches, combine, mixpanel_rule
from consumers._protocol.batches import message_size as _size
from consumers._unflushed import UnflushedWatch
from consumers.consumer import MAX_BATCH, Consumer
from consumers.endpoints import MESSAGE_TYPES
from consumers.errors import DeliveryError, PayloadTooLargeError

__all__ = [
    "BULK_BATCH",
    "DEFAULT_MAX_BYTES",
    "MAX_MESSAGE_BYTES",
    "BatchSender",
    "BufferedConsumer",
]

log = logging.getLogger(__name__)

class BatchSender(Protocol):
    """What BufferedConsumer wraps: posts one batch of one type, raises the delivery errors."""

    def send_batch(self, message_type: str, messages: Sequence[str]) -> None: ...

    def close(self) -> None: ...


@functools.cache
def _consumer_keywords() -> frozenset[str]:
    """The keyword arguments Consumer takes (what BufferedConsumer passes on)."""
    return frozenset(p for p in inspect.signature(Consumer.__init__).parameters if p != "self")


class BufferedConsumer(Closing, ForkAware):
    """Buffers ``(type, message_json)`` per type and posts full batches.

    ``consumer`` is what posts a batch (anything with ``send_batch`` and
    ``close``); by default a :class:`~consumers.consumer.Consumer` built from
    the remaining keyword arguments (``region=``, ``api_host=``,
    ``service_account=``, ``retry=``, ...).  ``max_batch`` and ``max_bytes``
    are one limit for every type or a mapping ``{type: limit}`` overriding the
    defaults.
    """

    @overload
    def __init__(
        self,
        consumer: BatchSender,
        *,
        max_batch: Limit = ...,
        max_bytes: Optional[Limit] = ...,
    ) -> None: ...

    @overload
    def __init__(
        self,
        *,
        max_batch: Limit = ...,
        max_bytes: Optional[Limit] = ...,
        **consumer_kwargs: Any,
    ) -> None: ...

    def __init__(
        self,
        consumer: Optional[BatchSender] = None,
        *more: Any,  # only to answer the Ruby positional form with a clear error
        max_batch: Optional[Limit] = None,
        max_bytes: Optional[Limit] = None,
        **consumer_kwargs: Any,
    ) -> None:
        if more or isinstance(consumer, str):
            raise positional_urls(consumer, more)
        for name, value in consumer_kwargs.items():
            if name not in _consumer_keywords():
                raise unexpected_keyword(
                    name, value, {"consumer", "max_batch", "max_bytes"} | _consumer_keywords()
                )
        if consumer is not None and consumer_kwargs:
            raise TypeError(
                f"pass either consumer or Consumer arguments, not both: {sorted(consumer_kwargs)}"
            )
        self._max_batch, self._bulk_batch, self._max_bytes = batch_limits(max_batch, max_bytes)
        self._batch_given = max_batch is not None
        self._owns_consumer = consumer is None
        self.consumer: BatchSender = Consumer(**consumer_kwargs) if consumer is None else consumer
        self._lock = threading.Lock()
        self._buffers: dict[str, list[str]] = {t: [] for t in MESSAGE_TYPES}
        self._bytes: dict[str, int] = dict.fromkeys(MESSAGE_TYPES, 0)
        # per type, once checked sendable: the largest message it accepts (size as _size counts)
        self._message_limit: dict[str, int] = {}
        self._warned_at_exit = False
        self._watch_forks()
        _watch.add(self)

    def __repr__(self) -> str:
        return (
            f"BufferedConsumer(consumer={self.consumer!r}, max_batch={self._max_batch!r}, "
            f"max_bytes={self._max_bytes!r}, pending={self.pending()})"
        )

    @property
    def max_batch(self) -> dict[str, int]:
        """Messages per type that make :meth:`send` post the type's buffer."""
        return dict(self._max_batch)

    @property
    def bulk_batch(self) -> dict[str, int]:
        """Messages per type per request for a batch handed whole to :meth:`send_many`."""
        return dict(self._bulk_batch)

    @property
    def max_bytes(self) -> dict[str, int]:
        """JSON bytes per type per request."""
        return dict(self._max_bytes)

    @property
    def endpoints(self) -> Any:
        """The wrapped consumer's endpoints (``None`` when it has none)."""
        return getattr(self.consumer, "endpoints", None)

    @property
    def immediate(self) -> Optional[Callable[[str, str], None]]:
        """The wrapped consumer's unbuffered sink, for messages that must not wait."""
        return getattr(self.consumer, "immediate", None)

    # -- the sink -----------------------------------------------------------------

    def send(self, message_type: str, message_json: str) -> None:
        """Buffer one message; post its type's buffer when full.

        Bad input (unknown type, non-str message, a message over the size
        limit, /import without credentials) raises at once and buffers
        nothing.  When the automatic flush fails, the delivery error is raised
        and the messages, this one included, stay buffered.
        """
        limit = self._message_limit.get(message_type)
        if limit is None:
            limit = self._check(message_type)
        if not isinstance(message_json, str):
            raise TypeError(f"message_json must be a str, got {type(message_json).__name__}")
        size = _size(message_json)
        if size > limit:
            raise PayloadTooLargeError(
                f"a {message_type} message of {size - 1} characters exceeds the "
                f"{limit - 1}-byte limit; not sent",
                status=413,
                messages=[(message_type, message_json)],
                pending=self.pending(),
            )
        with self._lock:
            buffer = self._buffers[message_type]
            buffer.append(message_json)
            total = self._bytes[message_type] = self._bytes[message_type] + size
            due = (
                (len(buffer) >= self._max_batch[message_type]
                 and len(buffer) >= self._count_limit(message_type))
                or total + 1 >= self._max_bytes[message_type]
            )
        if due:
            failure, reported = self._flush_type(message_type)
            self._raise(failure, reported)

    __call__ = send

    def send_many(self, messages: Sequence[tuple[str, str]]) -> None:
        """Buffer ``messages`` (``(type, message_json)`` pairs) and post every full batch.

        Batches hold up to ``bulk_batch`` messages (and ``max_bytes``).  Bad
        input raises before anything is buffered, naming the message's
        index.  A delivery failure is raised as from :meth:`flush`, with the
        unsent messages buffered.
        """
        sizes = []
        for index, (message_type, message_json) in enumerate(messages):
            limit = self._message_limit.get(message_type)
            if limit is None:
                limit = self._check(message_type)
            if not isinstance(message_json, str):
                raise TypeError(f"message {index}: message_json must be a str, "
                                f"got {type(message_json).__name__}")
            size = _size(message_json)
            if size > limit:
                raise PayloadTooLargeError(
                    f"message {index}: a {message_type} message of {size - 1} characters "
                    "exceeds the size limit; nothing was buffered",
                    status=413, messages=[(message_type, message_json)], pending=self.pending())
            sizes.append(size)
        due: list[str] = []
        with self._lock:
            for (message_type, message_json), size in zip(messages, sizes):
                self._buffers[message_type].append(message_json)
                self._bytes[message_type] += size
            for message_type in MESSAGE_TYPES:
                count = len(self._buffers[message_type])
                if ((count >= self._bulk_batch[message_type]
                        and count >= self._count_limit(message_type, self._bulk_batch))
                        or self._bytes[message_type] + 1 >= self._max_bytes[message_type]):
                    due.append(message_type)
        failure: Optional[DeliveryError] = None
        reported: list[DeliveryError] = []
        for message_type in held_last(self.consumer, due):
            kept, dropped = self._flush_type(message_type, self._bulk_batch, full_only=True)
            reported.extend(dropped)
            if kept is not None:
                failure = failure or kept
        self._raise(failure, reported)

    def _check(self, message_type: str) -> int:
        """Raise if ``message_type`` cannot be sent; else the largest message it accepts."""
        check = getattr(self.consumer, "check_sendable", None)
        if check is not None:
            check(message_type)
        elif message_type not in MESSAGE_TYPES:
            raise ValueError(
                f"unknown message type {message_type!r}; expected one of {MESSAGE_TYPES}"
            )
        limit = self._message_limit[message_type] = min(
            self._max_bytes[message_type] - 1, MAX_MESSAGE_BYTES + 1)
        return limit

    # -- flushing -----------------------------------------------------------------

    def flush(self) -> None:
        """Post everything buffered now (every type).

        Raises the first delivery error that kept messages buffered (its
        ``pending`` counts them), else the report of messages refused and
        dropped; other types are still attempted after one type fails.
        """
        failures: list[DeliveryError] = []
        reported: list[DeliveryError] = []
        for message_type in held_last(self.consumer, MESSAGE_TYPES):
            failure, dropped = self._flush_type(message_type, self._bulk_batch)
            if failure is not None:
                failures.append(failure)
            reported.extend(dropped)
        for extra in failures[1:]:
            # WARNING: only the first failure is raised; these messages stay buffered too
            log.warning("flush of another type also failed (kept buffered): %s", extra)
        self._raise(failures[0] if failures else None, reported)

    def _raise(self, failure: Optional[DeliveryError], reported: list[DeliveryError]) -> None:
        """Raise what a flush leaves the caller to know, with an up-to-date ``pending``."""
        if failure is None and not reported:
            return
        pending = self.pending()
        if failure is not None:
            if reported:
                log.error(
                    "%d message(s) were refused and dropped during this flush: %s",
                    sum(len(e.messages) for e in reported), "; ".join(map(str, reported)),
                )
            failure.pending = pending
            failure.refusals = list(reported)
            raise failure
        if reported:
            error = _combine(reported)
            error.pending = pending
            raise error

    def _flush_type(
        self, message_type: str, counts: Optional[dict[str, int]] = None,
        full_only: bool = False,
    ) -> tuple[Optional[DeliveryError], list[DeliveryError]]:
        """Send one type's buffer: (the failure that kept messages, the refusals reported).

        ``full_only``: send only full batches; a last partial one stays buffered.
        """
        with self._lock:
            messages = self._buffers[message_type]
            if not messages:
                return None, []
            self._buffers[message_type] = []
            total, self._bytes[message_type] = self._bytes[message_type], 0
        chunks = batches(messages, self._count_limit(message_type, counts),
                         self._max_bytes[message_type], total=total)
        if full_only and chunks and len(chunks[-1]) < self._count_limit(message_type, counts) \
                and sum(map(_size, chunks[-1])) + 1 < self._max_bytes[message_type] // 2:
            last = chunks.pop()
            self._put_back(message_type, last, deque())
        plan = FlushPlan(message_type, chunks, mixpanel_rule)
        try:
            while True:
                batch = plan.next_batch()
                if batch is None:
                    break
                try:
                    self.consumer.send_batch(message_type, batch)
                except DeliveryError as exc:
                    plan.failed(exc)
                else:
                    plan.sent()
        finally:
            # also when interrupted: exactly what was not sent goes back, in order
            self._put_back(message_type, plan.unsent(), deque())
        return plan.failure, plan.reported

    def _count_limit(self, message_type: str, counts: Optional[dict[str, int]] = None) -> int:
        """Messages per request now: the service's 2,000 while the endpoint is held or
        slow (see :mod:`consumers._pace`), unless ``max_batch`` was given."""
        count = (counts or self._max_batch)[message_type]
        if self._batch_given or count >= MAX_BATCH:
            return count
        return MAX_BATCH if under_pressure(self.consumer, message_type) else count

    def _put_back(self, message_type: str, chunk: list[str], queue: deque[list[str]]) -> None:
        unsent = list(chunk)
        for rest in queue:
            unsent.extend(rest)
        if not unsent:
            return
        with self._lock:
            self._buffers[message_type][:0] = unsent
            self._bytes[message_type] += sum(map(_size, unsent))

    # -- inspection ---------------------------------------------------------------

    def pending(self) -> int:
        """How many messages are buffered (not counting a batch being posted right now)."""
        with self._lock:
            return sum(len(b) for b in self._buffers.values())

    def end_retries_at(self, deadline: Optional[float]) -> None:
        """Start no retry that would end after ``deadline`` (``time.monotonic()``; None: lift).

        Passed on to the wrapped consumer; what a cut retry did not deliver
        stays buffered, as after any failed flush.
        """
        end = getattr(self.consumer, "end_retries_at", None)
        if callable(end):
            end(deadline)

    def take_pending(self) -> list[tuple[str, str]]:
        """Remove and return every buffered message, each type's in order."""
        with self._lock:
            taken = [(t, m) for t in MESSAGE_TYPES for m in self._buffers[t]]
            for message_type in MESSAGE_TYPES:
                self._buffers[message_type] = []
                self._bytes[message_type] = 0
        return taken

    # -- lifecycle ----------------------------------------------------------------

    def _reset_in_child(self) -> None:
        """Start empty (the parent sends what it buffered), on new connections."""
        self._lock = threading.Lock()
        self._buffers = {t: [] for t in MESSAGE_TYPES}
        self._bytes = dict.fromkeys(MESSAGE_TYPES, 0)
        reset = getattr(self.consumer, "reset_after_fork", None)
        if callable(reset):
            reset()

    def close(self) -> None:
        """Flush, then close the consumer this object created (even if the flush raised)."""
        try:
            self.flush()
        finally:
            _watch.discard(self)
            if self._owns_consumer:
                self.consumer.close()

    def _unflushed(self) -> int:
        return sum(len(b) for b in getattr(self, "_buffers", {}).values())

    def __del__(self) -> None:
        try:
            _watch.collected(self)
        except Exception:  # a finalizer must not raise (interpreter shutdown)
            pass


_watch = UnflushedWatch("BufferedConsumer", log)

_combine = combine
