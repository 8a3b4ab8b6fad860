"""``BackgroundConsumer``: hand messages to a worker thread; the caller never waits on IO.

``send()`` appends ``(type, message_json)`` to an in-memory queue bounded by
bytes (``max_queue_bytes``, default 64 MiB: about 170,000 typical events, a
burst's worth) and returns.  One daemon thread hands whole slices of the
queue to the wrapped sink (usually a :class:`~consumers.buffered.BufferedConsumer`,
which posts each slice in requests of its public ``bulk_batch``: 1000
messages unless ``max_batch`` was given) and flushes it.  While the callers
keep sending, the worker leaves them the interpreter; it delivers when they
pause, when ``flush_interval`` has passed since the oldest waiting message,
when the queue is half full, and on ``flush()``/``close()``.

The caller's thread never writes to disk while the destination is healthy.
When the queue is nearly full the *worker* moves its oldest messages to the
spool; a caller that finds no room waits (``overflow="spill"`` or
``"block"``) up to ``block_timeout`` seconds for the worker to make some.
Then ``"spill"`` writes the message to the spool itself (the worker is
stuck: the destination is not healthy), ``"block"`` drops it, and so does
``"spill"`` when the spool cannot be written; ``"drop"`` drops at once.
After one wait timed out, later sends skip the wait until the worker has
made room again (a full queue does not cost every caller
``block_timeout``).  Every drop is counted (``stats()["dropped"]``) and
reported to ``on_error`` with exact counts (:class:`QueueFullError`).

The spool (a folder of :class:`~consumers.file.FileConsumer` segments) also
holds what could not be delivered during an outage; the worker probes the
destination with growing pauses (``probe_interval`` doubling up to
``max_probe_interval``) and replays the spool when it answers.  When the
spool cannot be written (disk full, read-only), the worker leaves messages
in the bounded queue and the overflow policy applies.

``durable=True`` writes every message ahead to the spool before ``send()``
returns (a few microseconds of disk IO on the caller's thread), and the
worker delivers from the spool: a SIGKILL then loses nothing ``send()``
accepted; the next consumer on the same ``spool`` folder delivers it.  In
the default mode a SIGKILL loses what is queued in memory.

Spool location: ``spool=None`` means a folder under the user's cache
directory, one per program and destination (:mod:`consumers._spool_home`:
``~/.cache/tracking-toolkit/spool/<program>-<hash>/`` on Linux,
``$TRACKING_TOOLKIT_SPOOL_DIR`` when set), so the next run of the same
program sending to the same destination replays what this one could not
deliver.  ``spool="some/dir"`` picks the folder; either way each process
writes its own subfolder, created when first needed and removed by
``close()`` when empty, and a consumer that starts on the same folder
replays the subfolders left behind by processes that are gone.
``spool=TEMP_SPOOL`` (``from consumers.background import TEMP_SPOOL``) is a
folder of this process's own under ``tempfile.gettempdir()``
(``tracking-spool-<pid>-<random>``) that no later process adopts; a sink
naming no destination (a plain callable) gets that form too.  Whatever is
left at exit is logged with its path and can be sent later with
``replay(path, BufferedConsumer(...))``.

``close()`` (and interpreter exit) waits at most ``shutdown_timeout``
seconds; then what is undelivered, including a batch the worker is still
retrying, goes to the spool (path logged) or is reported to ``on_error``.

Forks and ``multiprocessing`` children: see :mod:`consumers._background.lifecycle`.

``on_error(error, messages)`` hears of messages lost for good: dropped,
refused by the service, or undeliverable at close without a spool.  Without
``on_error``, a :class:`~tracker.Tracker` given this consumer and an
``error_handler`` routes them there; else they are logged.

``immediate`` (what a tracker sends an alias through) tries the wrapped
consumer's synchronous sink for ``alias_timeout`` seconds, then queues the
message instead; on an asyncio event loop's thread it queues the message
and has the queue delivered at once, without waiting.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable, Optional, Union

from consumers import _runtime
from consumers._background import counters, ending, lifecycle
from consumers._background.alias import BudgetedSend
from consumers._background.inner import Inner
from consumers._background.losses import Losses, QueueFullError
from consumers._background.overflow import POLICIES, overflowed, write_ahead
from consumers._background.queue import OVERHEAD, Marker, MessageQueue
from consumers._background.worker import Worker
from consumers._closing import Closing
from consumers._spool import Spool
from consumers._spool_home import TEMP_SPOOL, default_spool_root
from consumers.errors import DeliveryError, Message

__all__ = ["TEMP_SPOOL", "BackgroundConsumer", "ErrorCallback", "QueueFullError"]

logger = logging.getLogger("consumers.background")

#: ``on_error(error, messages)``
ErrorCallback = Callable[[BaseException, list[Message]], Any]

DEFAULT_MAX_QUEUE_BYTES = 64 * 1024 * 1024


def _log_error(error: BaseException, messages: list[Message]) -> None:
    logger.error("%d message(s) not delivered, lost for good: %s", len(messages), error)


class BackgroundConsumer(Closing):
    """Deliver through ``inner`` on a worker thread; ``send()`` only enqueues.

    ``inner`` is any sink (a consumer with ``send``/``flush``/``close`` or a
    callable); ``send_many()``, ``take_pending()`` and ``reset_after_fork()``
    are used when it has them.  ``batch_size`` overrides how many messages
    are handed to it at once (default: its ``bulk_batch`` or ``max_batch``).
    ``max_queue`` optionally also bounds the queue by message count.
    """

    def __init__(
        self,
        inner: Any,
        *,
        max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
        max_queue: Optional[int] = None,
        flush_interval: float = 1.0,
        batch_size: Optional[int] = None,
        on_error: Optional[ErrorCallback] = None,
        overflow: str = "spill",
        spool: Optional[Union[str, os.PathLike[str]]] = None,
        durable: bool = False,
        block_timeout: float = 5.0,
        atexit_drain: bool = True,
        shutdown_timeout: float = 10.0,
        probe_interval: float = 1.0,
        max_probe_interval: float = 30.0,
        alias_timeout: float = 2.0,
    ) -> None:
        if overflow not in POLICIES:
            raise ValueError(f"overflow must be one of {POLICIES}, got {overflow!r}")
        if max_queue is not None and max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue!r}")
        if max_queue_bytes < 1024:
            raise ValueError(f"max_queue_bytes must be at least 1024, got {max_queue_bytes!r}")
        if flush_interval <= 0:
            raise ValueError(f"flush_interval must be positive, got {flush_interval!r}")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
        if durable and (spool is None or spool is TEMP_SPOOL):
            raise ValueError("durable=True needs spool='some/dir', where the next process "
                             "finds what this one could not deliver")
        self._inner = Inner(inner, batch_size)
        self._max_queue_bytes = max_queue_bytes
        self._max_queue = max_queue
        self._flush_interval = flush_interval
        self._on_error: Optional[ErrorCallback] = on_error
        self._fallback_error: ErrorCallback = _log_error
        self._overflow = overflow
        self._durable = durable
        self._block_timeout = block_timeout
        self._shutdown_timeout = shutdown_timeout
        self._probe_interval = probe_interval
        self._max_probe_interval = max(probe_interval, max_probe_interval)
        self._alias_timeout = alias_timeout
        self._fork_waited = False  # the fork hooks hold inner's lock across a fork
        use_spool = overflow == "spill" or spool is not None
        if spool is None:
            root = default_spool_root(inner)  # found by the next run of this program
        else:
            root = None if spool is TEMP_SPOOL else Path(spool)
        self._spool: Optional[Spool] = Spool(root) if use_spool else None
        self._reset_state()
        lifecycle.live.add(self)
        lifecycle.watch_multiprocessing(self)
        self._atexit_drain = atexit_drain
        if atexit_drain:
            lifecycle.on_exit.add(self)

    def _reset_state(self) -> None:
        """Fresh queue, locks, counters and no thread (construction and fork child)."""
        self._queue = MessageQueue(self._max_queue_bytes, self._max_queue)
        self._wake_at = self._max_queue_bytes // 2
        self._lock = threading.Lock()  # slow paths: thread start, close
        self._closing = False
        self._stopping = False
        self._shedding = False  # a block timed out: drop at once until there is room
        self._written = 0  # messages callers wrote to the spool (durable mode, last resort)
        self._overflow_spilled = 0  # ... of them because the queue stayed full
        self._spool_failure_logged = False
        self._losses = Losses()
        self._worker = Worker(self)
        self._inherited_green: object = None  # a parent's worker greenlet, ended in this child

    # -- the caller's side ---------------------------------------------------------
    def send(self, type: str, message_json: str) -> None:
        """Queue one message for the worker; no IO on this thread (but in durable mode)."""
        if message_json.__class__ is not str:
            raise TypeError(f"message_json must be a str, got {message_json.__class__.__name__}")
        queue = self._queue
        size = len(message_json) + OVERHEAD
        if self._durable:
            write_ahead(self, (type, message_json))
            return
        if (queue.added - queue.removed + size <= queue.max_bytes and not self._closing
                and (queue.max_count is None or len(queue.items) < queue.max_count)):
            queue.items.append((type, message_json))
            queue.added += size
            if self._worker.thread is None:
                self._start()
            if queue.added - queue.removed >= self._wake_at:
                self._worker.wake.set()
            return
        overflowed(self, (type, message_json), size)

    __call__ = send

    def _start(self) -> None:
        with self._lock:
            if self._worker.thread is not None or self._stopping:
                return
            _runtime.warn_uwsgi_without_threads("BackgroundConsumer")
            self._worker.start()

    # -- errors ----------------------------------------------------------------------
    def use_error_handler(self, handler: Callable[[BaseException], Any]) -> None:
        """Report final failures to ``handler(error)`` when no ``on_error`` was given.

        A :class:`~tracker.Tracker` calls this with its own ``error_handler``.
        """
        self._fallback_error = lambda error, messages: handler(error)

    def _report_final(self, error: BaseException, messages: list[Message]) -> None:
        """``messages`` are lost for good because of ``error``."""
        if isinstance(error, DeliveryError):
            error.pending = 0  # this consumer took back what inner still held
            error.messages = list(messages)
        callback = self._on_error if self._on_error is not None else self._fallback_error
        try:
            callback(error, messages)
        except Exception:
            logger.exception("on_error raised")

    def _report_drops(self) -> None:
        if self._losses:
            for error in self._losses.take():
                self._report_final(error, error.messages)

    # -- flush / close -------------------------------------------------------------
    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until every message sent so far is delivered or failed for good.

        Returns False if ``timeout`` seconds passed first (``None``: no limit;
        during an outage that lasts until the destination recovers).
        Spooled messages count as not yet delivered.
        """
        worker = self._worker
        if self._stopping:
            return self._idle()
        if threading.current_thread() is worker.thread:
            # from on_error: the worker cannot wait for itself
            logger.warning("flush() called on the worker thread; ignored")
            return False
        marker = self._queue_marker()
        return marker.done.wait(timeout) and marker.ok

    def _queue_marker(self) -> Marker:
        """A flush request behind every message sent so far; done when they are."""
        marker = Marker()
        self._queue.items.append(marker)
        if self._worker.thread is None:
            self._start()
        self._worker.wake.set()
        return marker

    def _idle(self) -> bool:
        worker = self._worker
        return (not self._queue.items and not worker.in_inner and not worker.held
                and not worker.holds.deferred) and not (
            self._spool is not None and self._spool.has_data)

    def close(self, timeout: Optional[float] = None) -> None:
        """Deliver for at most ``timeout`` (default ``shutdown_timeout``) seconds, and stop.

        During an outage, or once the deadline passed, what is undelivered
        (a batch still being retried included) is written to the spool, whose
        path is logged, or reported to ``on_error``.  Closes ``inner``.  Later
        sends are dropped and reported.
        """
        ending.close(self, self._shutdown_timeout if timeout is None else timeout)

    # -- introspection -------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        """Counters since start (or since the fork, in a child).

        ``enqueued`` messages accepted by ``send()``; ``delivered`` accepted by
        the destination (``replayed`` of them came back from the spool);
        ``failed`` lost for good: refused, or undeliverable with nowhere to
        keep them; ``refused`` the part of ``failed`` the service refused (a
        4xx answer, or over its size limits); ``dropped`` by the overflow
        policy or after close; ``spilled`` written to the spool by the worker
        (again after a replay attempt that failed); ``queued`` waiting in
        memory (``queued_bytes`` their size); ``in_flight`` with the wrapped
        sink; ``held_back`` waiting in memory for an endpoint the service
        holds; ``spooled`` on disk, ``spool_bytes`` the size of the spool's
        files; ``retried`` requests the transport sent again after a failed
        attempt; ``delivery_lag_ms`` the age of the oldest message not yet
        delivered (0 when none waits; to within one look of the worker, and
        from this consumer's start for what an earlier process spooled);
        ``last_error_time`` Unix seconds of the last delivery error (0: none,
        see :meth:`last_error`); ``rate_limited`` how often the service held
        an endpoint (429/503 with ``Retry-After``), ``held_ms`` for how long
        in all, ``held_capped`` how often its wait was longer than the cap
        (see :mod:`consumers._pace`).
        """
        return counters.snapshot(self)

    def last_error(self) -> Optional[tuple[float, str]]:
        """``(Unix time, text)`` of the last delivery error (transient or final), or None.

        The text names the error's class and says what happened, as the log
        does; no credentials (the transports' errors never carry them, and a
        ``user:password@`` in a URL is removed).
        """
        return self._worker.last_error.value

    @property
    def spool_path(self) -> Optional[Path]:
        """This process's spool folder, once something has been written there."""
        return self._spool.path if self._spool is not None else None

    @property
    def endpoints(self) -> Any:
        """The wrapped consumer's endpoints (so a Tracker routes aliases the same way)."""
        return getattr(self._inner.sink, "endpoints", None)

    @property
    def immediate(self) -> Optional[Callable[[str, str], None]]:
        """A sink for messages that must reach the service soon (an alias).

        It tries the wrapped consumer's unbuffered sink on the caller's thread
        for ``alias_timeout`` seconds, then queues the message (delivered in
        the background, spooled during an outage).  On an asyncio event
        loop's thread it queues the message and has the queue delivered at
        once, without waiting.  ``None`` when the wrapped consumer has no such
        sink.
        """
        immediate = getattr(self._inner.sink, "immediate", None)
        if not callable(immediate):
            return None
        return BudgetedSend(immediate, self.send, self._alias_timeout,
                            lambda: self._worker.outage.active, self._send_soon)

    def _send_soon(self, type: str, message_json: str) -> None:
        """Queue a message and have the queue delivered now, without waiting for it."""
        self.send(type, message_json)
        self._queue_marker()

    def __repr__(self) -> str:
        return (f"BackgroundConsumer({self._inner.sink!r}, max_queue_bytes="
                f"{self._max_queue_bytes}, overflow={self._overflow!r}, durable={self._durable})")
