"""``AsyncBackgroundConsumer``: delivery as a task on the running loop; ``send()`` never waits.

::

    async with AsyncBackgroundConsumer(region="eu") as consumer:
        tracker = Tracker(token, consumer)       # unchanged: send() is synchronous
        tracker.track("user-1", "Signed up")     # queued; the task posts it
        await consumer.flush()                   # True once delivered

``send(type, message_json)`` checks the message (type, configuration, size:
bad input raises at once), appends it to an in-memory queue bounded by
``max_queue_bytes`` and returns; it does no IO.  Called from another thread
(a synchronous view run in a thread pool), it hands the message to the loop
through a locked buffer (:mod:`consumers.aio._handoff`) that counts against
the same bound.  The delivery task (:mod:`consumers.aio._worker`)
posts through the sender (:class:`~consumers.aio.AsyncConsumer` for
Mixpanel, :class:`~consumers.aio.AsyncPostHogSender` for PostHog) in
requests of the sender's limits, with the same batching, bisection,
partial-failure and retry rules as the threaded consumers, and with its
``Retry-After`` holds.

When the queue is full (an outage longer than memory allows), a new message
is written to the spool (one short append on the caller's thread, the
``"spill"`` policy of :class:`~consumers.background.BackgroundConsumer`), or
dropped and reported when there is no spool.  :meth:`aclose` delivers for at
most ``shutdown_timeout`` seconds, then writes what is left to the spool (on
a thread) or reports it.  The spool folder is the one a
``BackgroundConsumer`` for the same program and destination uses, so either
kind replays what the other left.

With ``durable=True`` (and a ``spool=`` folder) ``send()`` writes each
message to the spool before it returns, and the task delivers by replaying
it (:mod:`consumers.aio._durable`).

A loop that ends before :meth:`aclose` (``asyncio.run()`` cancels the task)
leaves what was queued in the spool, or reports it; a forked child starts
with nothing of the parent's (:mod:`consumers.aio._lifecycle`).

``immediate`` (what a :class:`~tracker.Tracker` sends an alias through)
queues the message ahead of everything else and wakes the task: the caller
never waits.  Messages lost for good (refused, dropped) reach
``on_error(error, messages)``, else the tracker's error handler, else the log.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Optional, Union

from consumers._background.losses import QueueFullError
from consumers._fork import ForkAware
from consumers._spool import Spool
from consumers.aio import _durable, _lifecycle
from consumers.aio._handoff import HandOff
from consumers.aio._options import check_options, choose_spool
from consumers.aio._progress import Progress
from consumers.aio._queue import OVERHEAD, MessageQueue
from consumers.aio._sender import AsyncSender, sender_types
from consumers.aio._wake import Wake
from consumers.aio._worker import Worker
from consumers.errors import DeliveryError, Message

__all__ = ["AsyncBackgroundConsumer", "AsyncSender"]

logger = logging.getLogger("consumers.aio")

DEFAULT_MAX_QUEUE_BYTES = 64 * 1024 * 1024

ErrorCallback = Callable[[BaseException, list[Message]], Any]

_running_loop = asyncio._get_running_loop
_NO_LOOP = object()  # what _loop_if_open is while closed: no loop is it


def _log_error(error: BaseException, messages: list[Message]) -> None:
    logger.error("%d message(s) not delivered, lost for good: %s", len(messages), error)


class AsyncBackgroundConsumer(MessageQueue, ForkAware):
    """Deliver through ``inner`` (an :class:`AsyncSender`) from a task on the running loop.

    ``inner`` defaults to an :class:`~consumers.aio.AsyncConsumer` built
    from the other keyword arguments (``region=``, ``api_host=``,
    ``retry=``, ...).  ``spool``: ``None`` (the default folder, see
    :mod:`consumers.background`), a folder, ``TEMP_SPOOL``, or ``False``
    (no spool: what cannot be kept is dropped and reported).  Up to
    ``max_in_flight`` requests are posted at once (one while probing a
    destination that was down); after a failure, what they did not send goes
    back to the front of the queue in order.  ``durable=True``: every message
    is on disk (in the ``spool=`` folder) before ``send()`` returns.
    """

    _no_loop: object = _NO_LOOP

    def __init__(
        self,
        inner: Optional[AsyncSender] = None,
        *,
        max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
        flush_interval: float = 1.0,
        on_error: Optional[ErrorCallback] = None,
        spool: Union[bool, str, Path, None] = None,
        shutdown_timeout: float = 10.0,
        probe_interval: float = 1.0,
        max_probe_interval: float = 30.0,
        max_in_flight: int = 4,
        durable: bool = False,
        **consumer_kwargs: Any,
    ) -> None:
        MessageQueue.__init__(self, max_queue_bytes)
        check_options(flush_interval=flush_interval, probe_interval=probe_interval,
                      shutdown_timeout=shutdown_timeout, max_in_flight=max_in_flight)
        if inner is None:
            from consumers.aio.senders import AsyncConsumer

            inner = AsyncConsumer(**consumer_kwargs)
        elif consumer_kwargs:
            raise TypeError(f"pass either inner or AsyncConsumer arguments, not both: "
                            f"{sorted(consumer_kwargs)}")
        self.inner: AsyncSender = inner
        self.flush_interval = flush_interval
        self.shutdown_timeout = shutdown_timeout
        self.probe_interval = probe_interval
        self.max_probe_interval = max(probe_interval, max_probe_interval)
        self.max_in_flight = max_in_flight
        self.batch = max(inner.limits(t)[0] for t in sender_types(inner))
        self.spool: Optional[Spool] = choose_spool(spool, inner, durable)
        self.durable = durable
        self.written = 0  # messages send() wrote ahead to the spool (durable mode)
        self.written_lock = threading.Lock()
        self._on_error = on_error
        self._fallback_error: ErrorCallback = _log_error
        self.stats_counts = dict.fromkeys(
            ("delivered", "refused", "dropped", "spilled", "replayed", "outages"), 0)
        self.progress = Progress()
        self._check = inner.check
        self._handoff = HandOff(self._accept, OVERHEAD)
        self.wake = Wake()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        # the loop while the consumer is open, else an object no loop is
        self._loop_if_open: object = _NO_LOOP
        self._task: Optional[asyncio.Task[None]] = None
        self._worker = Worker(self)
        self._closed = False
        self._watch_forks()
        _lifecycle.live.add(self)
        loop = asyncio._get_running_loop()
        if loop is not None:
            self._start(loop)

    def __repr__(self) -> str:
        return f"AsyncBackgroundConsumer(inner={self.inner!r}, queued={self.pending})"

    # -- the caller's side ---------------------------------------------------------
    def send(self, type: str, message_json: str) -> None:
        """Queue one message for the delivery task; raises at once for a bad message."""
        if message_json.__class__ is not str:
            raise TypeError(f"message_json must be a str, got {message_json.__class__.__name__}")
        self._check(type, message_json)
        # The common case, on the loop's thread while it runs, is written out here:
        # each call and look-up saved is saved on every tracked event.
        if _running_loop() is self._loop_if_open:
            queued = self.queued_bytes + len(message_json) + OVERHEAD
            if queued <= self.max_queue_bytes:
                self.queued_bytes = queued
                tail = self.tail  # MessageQueue.push, written out
                self.texts[tail] = message_json
                if type != self.tail_type:
                    self.starts[tail] = self.tail_type = type
                self.tail = tail = tail + 1
                self.accepted += 1
                if tail - self.head == self.batch:  # a request's worth: the task posts it
                    self.wake.set()
                return
        self._hand_over(False, type, message_json)

    __call__ = send

    @property
    def immediate(self) -> Callable[[str, str], None]:
        """A sink for what must reach the service soon (an alias): queued first; never waits."""
        return self._send_urgent

    def _send_urgent(self, type: str, message_json: str) -> None:
        if message_json.__class__ is not str:
            raise TypeError(f"message_json must be a str, got {message_json.__class__.__name__}")
        self._check(type, message_json)
        self._hand_over(True, type, message_json)

    def _hand_over(self, urgent: bool, type: str, text: str) -> None:
        """Everything but the common case: not started, closed, full, another thread."""
        if self._closed:
            self._keep_or_report([(type, text)], "the consumer is closed")
            return
        loop, running = self._loop, _running_loop()
        if self.durable and not urgent:
            if _durable.write_ahead(self, type, text):
                if self._task is None and running is not None:
                    self._start(running)
                return
            if self._task is not None:  # the spool failed: in memory, the common way, from now
                self._loop_if_open = self._loop
        if self._task is None and running is not None:  # not started, or its task ended
            self._start(running)
            self._accept(urgent, type, text)
            return
        if loop is None:
            self._accept(urgent, type, text)  # not started: the task takes it when it starts
            return
        if running is loop:
            self._accept(urgent, type, text)
            return
        if self.queued_bytes + self._handoff.size + len(text) + OVERHEAD > self.max_queue_bytes:
            self._keep_or_report([(type, text)], "the queue is full")  # the loop is behind
            return
        lost = self._handoff.put(loop, urgent, type, text)
        if lost:
            self._keep_or_report(lost, "its event loop is closed")

    def _accept(self, urgent: bool, type: str, message_json: str) -> None:
        if self._closed:
            self._keep_or_report([(type, message_json)], "the consumer is closed")
            return
        if urgent:
            self.urgent.append((type, message_json))
            self.accepted += 1
            self.wake.set()
            return
        size = len(message_json) + OVERHEAD
        if self.queued_bytes + size > self.max_queue_bytes:
            self._keep_or_report([(type, message_json)], "the queue is full")
            return
        self.push(type, message_json)
        self.queued_bytes += size
        self.accepted += 1
        if self.pending >= self.batch:
            self.wake.set()

    def _keep_or_report(self, messages: list[Message], why: str) -> None:
        """Spill ``messages`` to the spool, else report them dropped."""
        if self.spool is not None and self.spool.write(messages):
            self.stats_counts["spilled"] += len(messages)
            return
        self.stats_counts["dropped"] += len(messages)
        self.report(QueueFullError(f"{len(messages)} message(s) dropped: {why}",
                                   messages=messages, dropped=len(messages)), messages)

    # -- the task's side -----------------------------------------------------------
    def count_outcome(self, total: int, delivered: int, unsent: int, *, queued: bool) -> None:
        self.stats_counts["delivered"] += delivered
        self.stats_counts["refused"] += total - delivered - unsent
        if queued:
            self.progress.settled += total - unsent

    def report(self, error: BaseException, messages: list[Message]) -> None:
        """``messages`` are lost for good because of ``error``."""
        callback = self._on_error if self._on_error is not None else self._fallback_error
        try:
            callback(error, messages)
        except Exception:
            logger.exception("the error callback failed")

    def notify_flushers(self, *, failed: bool = False) -> None:
        """Answer the ``flush()`` calls that are over (all impatient ones after a failure)."""
        self.progress.notify(clean=not self.spool_waiting, failed=failed,
                             until_clean=self.durable)

    @property
    def spool_waiting(self) -> bool:
        """Whether messages wait in this process's spool."""
        return self.spool is not None and self.spool.has_data

    # -- lifecycle -----------------------------------------------------------------
    def _task_done(self, task: asyncio.Task[None]) -> None:
        _lifecycle.task_ended(self, task)

    def _reset_in_child(self) -> None:
        _lifecycle.reset_in_child(self)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        # durable mode takes the way round the common case: the message goes to disk
        self._loop_if_open = _NO_LOOP if self.durable else loop
        if self.pending or self.urgent or (self.durable and self.spool_waiting):
            self.wake.set()
        self._task = loop.create_task(self._worker.run(), name="tracking-delivery")
        self._task.add_done_callback(self._task_done)

    def start(self) -> None:
        """Start the delivery task on the running loop (sending or ``async with`` also do)."""
        if self._task is None:
            self._start(asyncio.get_running_loop())

    async def __aenter__(self) -> AsyncBackgroundConsumer:
        self.start()
        return self

    async def __aexit__(self, exc_type: Optional[type[BaseException]],
                        exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        await self.aclose()

    def use_error_handler(self, handler: Callable[[BaseException], Any]) -> None:
        """Report losses to ``handler(error)`` when no ``on_error`` was given (a Tracker's)."""
        self._fallback_error = lambda error, messages: handler(error)

    async def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until every message sent so far was delivered or refused for good.

        False when ``timeout`` passed first, when some messages wait in the
        spool (in durable mode it waits for the spool to be delivered), and
        (without a ``timeout``) as soon as the destination is down: what
        waits is kept, and is delivered when it answers again.
        """
        self.start()
        self._handoff.take_all()  # what other threads sent before this call counts
        if (self.progress.settled >= self.accepted and not self.pending and not self.urgent
                and not (self.durable and self.spool_waiting)):
            return not self._worker.outage and not self.spool_waiting
        if self._worker.outage and timeout is None:
            return False
        self.wake.set()
        return await self.progress.wait(self.accepted, timeout)

    async def aclose(self, timeout: Optional[float] = None) -> None:
        """Deliver for at most ``timeout`` (default ``shutdown_timeout``) seconds, and stop.

        What is still undelivered then goes to the spool, or is reported.
        """
        if self._closed:
            return
        timeout = self.shutdown_timeout if timeout is None else timeout
        self.inner.end_retries_at(time.monotonic() + timeout)
        if self._task is not None:
            await self.flush(timeout)
        self._closed = True
        self._loop_if_open = _NO_LOOP
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        left = self.take_all() + self._handoff.drain()
        if left:
            kept = self.spool is not None and await asyncio.to_thread(self.spool.write, left)
            if kept:
                self.stats_counts["spilled"] += len(left)
                logger.warning("%d message(s) not delivered before close; kept in the spool",
                               len(left))
            else:
                self.stats_counts["dropped"] += len(left)
                self.report(DeliveryError(f"{len(left)} message(s) not delivered before "
                                          f"close: {self._worker.last_error}", messages=left),
                            left)
        if self.spool is not None:
            await asyncio.to_thread(self.spool.close)
        await self.inner.aclose()

    def stats(self) -> dict[str, int]:
        """Counters: enqueued, delivered, refused, dropped, spilled, replayed, outages; queued."""
        counts = {"enqueued": self.accepted + self.written, **self.stats_counts}
        counts["queued"] = self.pending + len(self.urgent)
        return counts
