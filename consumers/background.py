"""``BackgroundConsumer``: hand messages to a worker thread; the caller never waits on IO.

``send()`` appends ``(type, message_json)`` to a bounded in-memory queue and
returns.  One daemon thread drains the queue into the wrapped sink (usually a
:class:`~consumers.buffered.BufferedConsumer`) and flushes it when a batch is
full or every ``flush_interval`` seconds.

Memory stays bounded: when the queue is full, ``overflow`` decides what
``send()`` does:

``"spill"`` (default)
    append the message to an on-disk spool (a :class:`~consumers.file.FileConsumer`
    folder); the worker replays the spool into the wrapped sink once the
    destination accepts messages again.  Nothing is lost and memory stays
    bounded, at the price of disk writes on the caller's thread while the queue
    is full.  If no spool folder can be created, the consumer falls back to
    ``"block"`` and logs why.
``"block"``
    wait up to ``block_timeout`` seconds for room, then drop the message
    (counted, reported to ``on_error``).
``"drop"``
    drop the message at once (counted, reported to ``on_error``).

The spool also holds batches that exhausted the wrapped sink's retry budget
during an outage: the worker takes them out with ``take_pending()``, writes
them to the spool and probes the destination with growing pauses
(``probe_interval`` doubling up to ``max_probe_interval``) instead of spinning.

Spool location: ``spool=None`` means a folder of this process's own under
``tempfile.gettempdir()`` (``tracking-spool-<pid>-<random>``), created only when
first needed and removed by ``close()`` when empty.  Whatever could not be
delivered before exit stays there (the path is logged) and can be sent later
with ``replay(path, BufferedConsumer(...))``; the temporary directory may be
cleaned by the OS, and spool files hold the messages in clear text.  Give
``spool="some/dir"`` for a durable location: each process writes its own
subfolder, and a consumer that starts on the same folder replays the subfolders
left behind by processes that are gone.

Fork safety: after ``os.fork()`` the child starts with an empty queue, fresh
locks, its own spool subfolder and no worker thread (one starts on the first
``send()``), so it never sends the parent's queued messages.  The wrapped sink's
``reset_after_fork()`` is called in the child when it has one (every consumer
in this package has), and the fork does not wait for the parent's worker.
Otherwise the sink's buffered messages are discarded in the child with
``take_pending()`` (they belong to the parent), and the fork waits for any
delivery in progress so the child does not inherit a half-used sink.

``on_error(error, messages)`` runs on the worker thread for messages that are
lost for good: dropped, refused by the service, or undeliverable at close
without a spool.  Exceptions it raises are logged and never stop the worker.
"""

from __future__ import annotations

import atexit
import collections
import itertools
import logging
import os
import shutil
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Callable, Optional, Union

from consumers._closing import Closing
from consumers._spool import Spool
from consumers.errors import DeliveryError, Message, RefusedError, TransportError

__all__ = ["BackgroundConsumer", "ErrorCallback", "QueueFullError"]

logger = logging.getLogger("consumers.background")

#: ``on_error(error, messages)``
ErrorCallback = Callable[[BaseException, list[Message]], Any]

_OVERFLOW_POLICIES = ("spill", "block", "drop")
_DEFAULT_BATCH = 50
# Dropped messages kept for the on_error report; beyond this only the count grows.
_DROP_REPORT_LIMIT = 1000


class QueueFullError(DeliveryError):
    """Messages were dropped because the queue was full (or the consumer closed)."""


def _log_error(error: BaseException, messages: list[Message]) -> None:
    logger.error("%d message(s) not delivered: %s", len(messages), error)


def _is_transient(error: BaseException) -> bool:
    """An outage (worth spooling and retrying later), not a refusal of these messages."""
    if isinstance(error, TransportError):
        return True
    if isinstance(error, RefusedError):
        return error.status == 429 or error.status >= 500
    return False


def _without(items: Sequence[Message], remove: Iterable[Message]) -> list[Message]:
    """``items`` minus ``remove``, as multisets, keeping order."""
    counts = collections.Counter(remove)
    kept = []
    for item in items:
        if counts[item] > 0:
            counts[item] -= 1
        else:
            kept.append(item)
    return kept


class _Marker:
    """A flush request travelling through the queue behind the messages it waits for."""

    __slots__ = ("done", "ok")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False


# Live consumers, for the fork and atexit hooks (weak: hooks never keep one alive).
_live: weakref.WeakSet[BackgroundConsumer] = weakref.WeakSet()


class BackgroundConsumer(Closing):
    """Deliver through ``inner`` on a worker thread; ``send()`` only enqueues.

    ``inner`` is any sink (a consumer with ``send``/``flush``/``close`` or a
    callable); ``take_pending()`` and ``reset_after_fork()`` are used when it
    has them.  ``batch_size`` (default: ``inner.max_batch`` or 50) messages, or
    ``flush_interval`` seconds, trigger ``inner.flush()``.
    """

    def __init__(
        self,
        inner: Any,
        *,
        max_queue: int = 10_000,
        flush_interval: float = 1.0,
        batch_size: Optional[int] = None,
        on_error: Optional[ErrorCallback] = None,
        overflow: str = "spill",
        spool: Optional[Union[str, os.PathLike[str]]] = None,
        block_timeout: float = 5.0,
        atexit_drain: bool = True,
        shutdown_timeout: float = 10.0,
        probe_interval: float = 1.0,
        max_probe_interval: float = 30.0,
    ) -> None:
        if overflow not in _OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {_OVERFLOW_POLICIES}, got {overflow!r}")
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue!r}")
        if flush_interval <= 0:
            raise ValueError(f"flush_interval must be positive, got {flush_interval!r}")
        send = getattr(inner, "send", None)
        if not callable(send):
            if not callable(inner):
                raise TypeError("inner must be a consumer with .send or a callable sink")
            send = inner
        self._inner = inner
        self._inner_send: Callable[[str, str], Any] = send
        self._max_queue = max_queue
        self._flush_interval = flush_interval
        if batch_size is None:
            batch_size = getattr(inner, "max_batch", None)
            if not isinstance(batch_size, int) or batch_size < 1:
                batch_size = _DEFAULT_BATCH
        self._batch_size = batch_size
        # Waking the worker costs the caller a GIL hand-off: wake it rarely (a quarter of
        # the queue), and let the flush_interval timer bound the latency.
        self._wake_at = max(1, min(max(batch_size, max_queue // 4), max_queue // 2))
        self._on_error: ErrorCallback = on_error if on_error is not None else _log_error
        self._overflow = overflow
        self._block_timeout = block_timeout
        self._shutdown_timeout = shutdown_timeout
        self._probe_interval = probe_interval
        self._max_probe_interval = max(probe_interval, max_probe_interval)
        use_spool = overflow == "spill" or spool is not None
        self._spool: Optional[Spool] = (
            Spool(Path(spool) if spool is not None else None) if use_spool else None
        )
        self._reset_state()
        _live.add(self)
        if atexit_drain:
            _atexit_registry.add(self)

    # -- state -------------------------------------------------------------------
    def _reset_state(self) -> None:
        """Fresh queue, locks, counters and no thread (construction and fork child)."""
        self._queue: collections.deque[Any] = collections.deque()
        self._wake = threading.Event()
        self._lock = threading.Lock()  # slow paths: counters, thread start, overflow
        self._room = threading.Condition(threading.Lock())
        self._blocked = 0
        self._inner_lock = threading.Lock()  # held by the worker while it uses inner
        self._thread: Optional[threading.Thread] = None
        self._closing = False
        self._stopping = False
        self._markers_queued = 0
        # counters (written by the worker, or under self._lock)
        self._popped = 0
        self._delivered = 0
        self._failed = 0
        self._dropped = 0
        self._spilled = 0
        self._overflow_spilled = 0
        self._replayed = 0
        self._drop_report: collections.deque[tuple[str, Message]] = (
            collections.deque(maxlen=_DROP_REPORT_LIMIT))
        # worker-only state
        self._in_inner: list[Message] = []  # handed to inner since its last good flush
        self._held: list[Message] = []  # to resend first (no spool during an outage)
        self._waiters: list[_Marker] = []
        self._first_unflushed = 0.0
        self._outage = False
        self._outages = 0  # transient failures seen; a change means "stop and back off"
        self._timed_out = False
        self._next_probe = 0.0
        self._backoff = self._probe_interval
        self._adopted = False
        self._replaying = False

    # -- the caller's side ---------------------------------------------------------
    def send(self, type: str, message_json: str) -> None:
        """Queue one message for the worker; never does IO unless the queue is full."""
        queue = self._queue
        if len(queue) < self._max_queue and not self._closing:
            queue.append((type, message_json))
            if self._thread is None:
                self._start()
            if len(queue) >= self._wake_at and not self._wake.is_set():
                self._wake.set()
            return
        self._overflowed((type, message_json))

    __call__ = send

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._stopping:
                return
            thread = threading.Thread(target=self._run, name="tracking-background-consumer",
                                      daemon=True)
            thread.start()
            self._thread = thread

    def _overflowed(self, message: Message) -> None:
        if self._closing:
            self._drop(message, "message dropped: the background consumer is closed")
            return
        if self._overflow == "spill" and self._spool is not None:
            if self._spool.write([message]):
                with self._lock:
                    self._spilled += 1
                    self._overflow_spilled += 1
                if self._thread is None:
                    self._start()
                return
            logger.warning("the spool is unusable; "
                         "falling back to overflow='block'")
            self._overflow = "block"
        if self._overflow == "block" and self._wait_for_room():
            self._queue.append(message)
            return
        reason = (f"the queue stayed full for {self._block_timeout:g} s"
                  if self._overflow == "block" else "the queue is full")
        self._drop(message, f"message dropped: {reason} (max_queue={self._max_queue})")

    def _wait_for_room(self) -> bool:
        deadline = time.monotonic() + self._block_timeout
        with self._room:
            self._blocked += 1
            try:
                while len(self._queue) >= self._max_queue:
                    if self._closing:
                        return False
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._wake.set()
                    # short slices: a wake-up between our check and the wait is not lost
                    self._room.wait(min(left, 0.05))
                return True
            finally:
                self._blocked -= 1

    def _drop(self, message: Message, reason: str) -> None:
        with self._lock:
            self._dropped += 1
            stopped = self._stopping
            if not stopped:
                self._drop_report.append((reason, message))
        if stopped:  # no worker left to report it
            self._report(QueueFullError(reason, messages=[message]), [message])
        else:
            self._wake.set()

    # -- flush / close -------------------------------------------------------------
    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until every message sent so far is delivered or failed for good.

        Returns False if ``timeout`` seconds passed first (``None``: no limit;
        during an outage that lasts until the destination recovers).
        Spooled messages count as not yet delivered.
        """
        if self._stopping:
            return self._idle()
        if threading.current_thread() is self._thread:
            # from on_error: the worker cannot wait for itself
            logger.warning("flush() called on the worker thread; ignored")
            return False
        marker = _Marker()
        with self._lock:
            self._markers_queued += 1
        self._queue.append(marker)
        if self._thread is None:
            self._start()
        self._wake.set()
        return marker.done.wait(timeout) and marker.ok

    def _idle(self) -> bool:
        return not self._queue and not self._in_inner and not self._held and not (
            self._spool is not None and self._spool.has_data)

    def close(self, timeout: Optional[float] = None) -> None:
        """Flush (for at most ``timeout``, default ``shutdown_timeout`` seconds) and stop.

        Messages still undelivered then are written to the spool (when there
        is one) or reported to ``on_error``.  Closes ``inner``.  Later sends
        are dropped.
        """
        if timeout is None:
            timeout = self._shutdown_timeout
        with self._lock:
            if self._closing:
                return
            self._closing = True
        _atexit_registry.discard(self)
        deadline = time.monotonic() + timeout
        thread = self._thread
        if thread is not None:
            self.flush(timeout)
        with self._lock:
            self._stopping = True
            thread = self._thread
        with self._room:
            self._room.notify_all()
        if thread is None:
            self._shutdown()
            return
        self._wake.set()
        thread.join(max(0.0, deadline - time.monotonic()) + 1.0)
        if thread.is_alive():
            logger.warning("the worker is still delivering after %.3g s; "
                           "it finishes in the background", timeout)

    # -- introspection -------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        """Counters since start (or since the fork, in a child).

        ``enqueued`` messages accepted by ``send()`` (queued or spilled);
        ``delivered`` accepted by the destination (``replayed`` of them came
        back from the spool); ``failed`` refused for good; ``dropped`` by the
        overflow policy or after close; ``spilled`` written to the spool (again
        after a replay attempt that failed);
        ``queued`` waiting in memory; ``spooled`` waiting on disk.
        """
        with self._lock:
            queued = max(0, len(self._queue) - self._markers_queued)
            return {
                "enqueued": self._popped + queued + self._overflow_spilled,
                "delivered": self._delivered,
                "failed": self._failed,
                "dropped": self._dropped,
                "spilled": self._spilled,
                "replayed": self._replayed,
                "queued": queued,
                "in_flight": len(self._in_inner) + len(self._held),
                "spooled": self._spool.count if self._spool is not None else 0,
            }

    @property
    def spool_path(self) -> Optional[Path]:
        """This process's spool folder, once something has been spilled."""
        return self._spool.path if self._spool is not None else None

    @property
    def endpoints(self) -> Any:
        """The wrapped consumer's endpoints (so a Tracker routes aliases the same way)."""
        return getattr(self._inner, "endpoints", None)

    @property
    def immediate(self) -> Any:
        """The wrapped consumer's unbuffered sink (``None`` when it has none).

        It sends on the caller's thread, outside the queue: only for messages
        that must reach the service before the call returns (an alias).
        """
        return getattr(self._inner, "immediate", None)

    def __repr__(self) -> str:
        return (f"BackgroundConsumer({self._inner!r}, max_queue={self._max_queue}, "
                f"overflow={self._overflow!r})")

    # -- the worker ----------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stopping:
                try:
                    self._step()
                except Exception:  # a bug here must not end delivery for the process
                    logger.exception("unexpected error in the worker")
                    self._wake.wait(self._probe_interval)
                self._report_drops()
                self._sleep()
        finally:
            self._shutdown()

    def _sleep(self) -> None:
        self._wake.clear()
        self._timed_out = False
        if self._stopping or self._work_waiting():
            return
        now = time.monotonic()
        if self._outage:
            timeout = self._next_probe - now
        elif self._in_inner:
            timeout = self._first_unflushed + self._flush_interval - now
        else:
            timeout = self._flush_interval
        if timeout > 0 and not self._wake.wait(timeout):
            self._timed_out = True
        elif timeout <= 0:
            self._timed_out = True

    def _work_waiting(self) -> bool:
        """Whether the worker should go round again without sleeping."""
        queue = self._queue
        if self._outage:
            return self._spool is not None and len(queue) >= self._wake_at
        if len(queue) >= self._wake_at or self._held:
            return True
        if any(type(item) is _Marker for item in itertools.islice(queue, 0, 64)):
            return True
        return self._spool is not None and self._spool.has_data and not queue

    def _step(self) -> None:
        if not self._adopted:
            self._adopted = True
            self._adopt_orphans()
        if self._outage:
            if time.monotonic() < self._next_probe or not self._probe():
                # still down: queued messages wait on disk, where a crash cannot take them
                self._drain_to_spool()
                return
        self._drain_to_inner()
        if self._outage:
            return
        if self._spool is not None and self._spool.has_data and (
                self._waiters or not self._queue):
            if not self._replay_spool():
                if not self._outage:  # replay itself failed: pause as in an outage
                    self._enter_outage(RuntimeError("the spool could not be replayed"))
                return
        self._resolve_waiters()

    # handing messages to inner ---------------------------------------------------
    def _drain_to_inner(self) -> None:
        queue = self._queue
        while queue and not self._outage:
            try:
                item = queue.popleft()
            except IndexError:
                break
            if type(item) is _Marker:
                self._marker_popped(item)
                self._flush_inner()
                continue
            self._popped += 1
            if self._blocked:
                self._notify_room()
            self._hand(item)
            if len(self._in_inner) >= self._batch_size:
                self._flush_inner()
        if self._in_inner and not self._outage and (
                self._timed_out
                or time.monotonic() - self._first_unflushed >= self._flush_interval):
            self._flush_inner()

    def _notify_room(self) -> None:
        with self._room:
            self._room.notify_all()

    def _marker_popped(self, marker: _Marker) -> None:
        with self._lock:
            self._markers_queued -= 1
        self._waiters.append(marker)

    def _hand(self, item: Message) -> None:
        """Give one message to inner (which may deliver a full batch right away)."""
        if not self._in_inner:
            self._first_unflushed = time.monotonic()
        self._in_inner.append(item)
        try:
            with self._inner_lock:
                self._inner_send(*item)
        except Exception as error:
            self._inner_failed(error, current=item)

    def _flush_inner(self) -> bool:
        """Deliver what inner holds (and messages to resend). False: an outage began."""
        outages = self._outages
        flush = getattr(self._inner, "flush", None)
        while self._outages == outages:
            while self._held and self._outages == outages:
                self._hand(self._held.pop(0))
            if self._outages != outages:
                break
            try:
                if callable(flush):
                    with self._inner_lock:
                        flush()
            except Exception as error:
                # a refusal removes the refused messages; go round for the others
                self._inner_failed(error)
                continue
            self._settle_delivered()
            if not self._held:
                return True
        return False

    def _settle_delivered(self) -> None:
        delivered = len(self._in_inner)
        if delivered:
            self._in_inner = []
            with self._lock:
                self._delivered += delivered

    def _take_back(self) -> list[Message]:
        take = getattr(self._inner, "take_pending", None)
        if not callable(take):
            return []
        with self._inner_lock:
            return list(take())

    def _inner_failed(self, error: BaseException, current: Optional[Message] = None) -> None:
        """Sort what inner held into delivered, failed for good, and to be resent."""
        mentioned = list(getattr(error, "messages", None) or ([current] if current else []))
        rest = self._take_back()
        unsent = rest + _without(mentioned, rest)  # still pending, plus failures inner forgot
        if _is_transient(error):
            lost: list[Message] = []
            retry = unsent
        elif mentioned:
            lost, retry = mentioned, _without(unsent, mentioned)
        else:  # refused without saying which: everything inner held is in doubt
            lost, retry = (unsent or list(self._in_inner)), []
        accounted = len(unsent) if (unsent or mentioned) else len(lost)
        delivered = len(self._in_inner) - accounted
        self._in_inner = []
        with self._lock:
            self._delivered += max(0, delivered)
            self._failed += len(lost)
        if lost:
            self._report(error, lost)
        if not retry:
            return
        if _is_transient(error):
            self._enter_outage(error)
            if not self._replaying:  # a replay's messages are still on disk: not again
                self._park(retry)
        else:
            self._held = retry + self._held

    def _park(self, items: list[Message]) -> None:
        """Keep undelivered messages through an outage: on disk if possible."""
        if self._spool is not None and self._spool.write(items):
            with self._lock:
                self._spilled += len(items)
            return
        self._held.extend(items)

    def _enter_outage(self, error: BaseException) -> None:
        self._outages += 1
        if not self._outage:
            logger.warning("destination unavailable (%s); %s, "
                           "probing every %.3g to %.3g s", error,
                           "spooling to disk" if self._spool is not None else "holding messages",
                           self._probe_interval, self._max_probe_interval)
            self._outage = True
            self._backoff = self._probe_interval
        else:
            self._backoff = min(self._backoff * 2, self._max_probe_interval)
        self._next_probe = time.monotonic() + self._backoff

    def _probe(self) -> bool:
        """One delivery attempt after an outage: held messages first, then the spool."""
        outages = self._outages
        ok = not self._held or self._flush_inner()
        ok = ok and not (self._spool is not None and self._spool.has_data
                         and not self._replay_spool())
        if not ok or self._outages != outages:
            if self._next_probe <= time.monotonic():  # failed without a delivery error
                self._backoff = min(self._backoff * 2, self._max_probe_interval)
                self._next_probe = time.monotonic() + self._backoff
            return False
        logger.info("destination reachable again")
        self._outage = False
        self._backoff = self._probe_interval
        return True

    def _drain_to_spool(self) -> None:
        """During an outage, move queued messages to disk so callers keep room."""
        if self._spool is None:
            return
        batch: list[Message] = []
        while self._queue:
            try:
                item = self._queue.popleft()
            except IndexError:
                break
            if type(item) is _Marker:
                self._marker_popped(item)
                continue
            self._popped += 1
            batch.append(item)
            if len(batch) >= 1000:
                self._park(batch)
                self._notify_room()
                batch = []
        if batch:
            self._park(batch)
        self._notify_room()

    # the spool -----------------------------------------------------------------------
    def _replay_spool(self) -> bool:
        """Replay complete segments into inner; False if the destination failed again."""
        assert self._spool is not None
        self._spool.seal()
        for segment in self._spool.segments():
            if not self._replay_folder(segment, own=True):
                return False
        return True

    def _adopt_orphans(self) -> None:
        if self._spool is None:
            return
        for folder in self._spool.orphans():
            logger.info("replaying a spool left behind in %s", folder)
            for segment in sorted(p for p in folder.glob("seg-*") if p.is_dir()):
                if not self._replay_folder(segment, own=False):
                    return
            shutil.rmtree(folder, ignore_errors=True)

    def _replay_folder(self, folder: Path, *, own: bool) -> bool:
        """Deliver one spool segment; False (and it stays on disk) if delivery failed."""
        from consumers.replaying import replay

        if (self._in_inner or self._held) and not self._flush_inner():
            return False
        outages = self._outages
        sink = _ReplaySink(self, own)
        self._replaying = True
        try:
            result = replay(folder, sink, batch_size=self._batch_size)
        finally:
            self._replaying = False
        if result.error is not None or self._outages != outages:
            return False
        if result.torn:
            logger.warning("%d torn line(s) left in %s", result.torn, folder)
        if own:
            assert self._spool is not None
            self._spool.done(folder)
        else:
            shutil.rmtree(folder, ignore_errors=True)
        return True

    # flush requests and reports ----------------------------------------------------
    def _resolve_waiters(self) -> None:
        if not self._waiters or self._outage:
            return
        if (self._in_inner or self._held) and not self._flush_inner():
            return
        if self._spool is not None and self._spool.has_data:
            return
        waiters, self._waiters = self._waiters, []
        for marker in waiters:
            marker.ok = True
            marker.done.set()

    def _report(self, error: BaseException, messages: list[Message]) -> None:
        try:
            self._on_error(error, messages)
        except Exception:
            logger.exception("on_error raised")

    def _report_drops(self) -> None:
        if not self._drop_report:
            return
        groups: dict[str, list[Message]] = {}
        while self._drop_report:
            try:
                reason, message = self._drop_report.popleft()
            except IndexError:
                break
            groups.setdefault(reason, []).append(message)
        for reason, messages in groups.items():
            self._report(QueueFullError(reason, messages=messages), messages)

    # shutting down -------------------------------------------------------------------
    def _shutdown(self) -> None:
        """Last pass on the worker (or in close() when no worker ran)."""
        leftovers: list[Message] = list(self._held)
        self._held = []
        while self._queue:
            item = self._queue.popleft()
            if type(item) is _Marker:
                self._marker_popped(item)
            else:
                self._popped += 1
                leftovers.append(item)
        if (self._in_inner or self._held) and not (not self._outage and self._flush_inner()):
            leftovers.extend(self._take_back())
            leftovers.extend(self._held)
            self._in_inner = []
            self._held = []
        if leftovers:
            if self._spool is not None and self._spool.write(leftovers):
                with self._lock:
                    self._spilled += len(leftovers)
            else:
                with self._lock:
                    self._failed += len(leftovers)
                self._report(DeliveryError("undelivered when the background consumer closed",
                                           messages=leftovers), leftovers)
        self._report_drops()
        for marker in self._waiters:
            marker.done.set()
        self._waiters = []
        if self._spool is not None:
            self._spool.close()
        close = getattr(self._inner, "close", None)
        if callable(close):
            try:
                close()
            except Exception as error:
                self._report(error, self._take_back())
        _live.discard(self)

    # fork ------------------------------------------------------------------------------
    def _before_fork(self) -> None:
        self._fork_waited = False
        if not callable(getattr(self._inner, "reset_after_fork", None)):
            # a child must not inherit a sink halfway through a delivery
            self._fork_waited = self._inner_lock.acquire(timeout=self._shutdown_timeout)
        if self._spool is not None:
            self._spool.flush_for_fork()

    def _after_fork_parent(self) -> None:
        if getattr(self, "_fork_waited", False):
            self._inner_lock.release()
            self._fork_waited = False

    def _after_fork_child(self) -> None:
        closing = self._closing
        self._reset_state()
        self._closing = closing
        self._stopping = closing
        if self._spool is not None:
            self._spool.forget_after_fork()
        reset = getattr(self._inner, "reset_after_fork", None)
        if callable(reset):
            reset()
        else:
            take = getattr(self._inner, "take_pending", None)
            if callable(take):
                take()  # the parent delivers these


class _ReplayStopped(DeliveryError):
    """Tells replay the destination failed: stop, keep the checkpoint where it is."""


class _ReplaySink:
    """The sink a spool segment is replayed into: the worker's own delivery path.

    ``flush()`` confirms a batch (replay then moves its checkpoint); a failure
    raises so replay stops, and the unconfirmed batch stays on disk.
    """

    def __init__(self, owner: BackgroundConsumer, own: bool) -> None:
        self._owner = owner
        self._own = own
        self._outages = owner._outages
        self._unconfirmed = 0

    def __call__(self, message_type: str, message_json: str) -> None:
        owner = self._owner
        if owner._outages != self._outages:
            raise _ReplayStopped("destination unavailable")
        owner._hand((message_type, message_json))
        self._unconfirmed += 1
        if owner._outages != self._outages:
            raise _ReplayStopped("destination unavailable")

    def flush(self) -> None:
        owner = self._owner
        if owner._outages != self._outages or not owner._flush_inner():
            raise _ReplayStopped("destination unavailable")
        with owner._lock:
            owner._replayed += self._unconfirmed
        if self._own and owner._spool is not None:
            owner._spool.read_back(self._unconfirmed)
        self._unconfirmed = 0


class _AtexitRegistry:
    """Consumers to drain when the interpreter exits normally."""

    def __init__(self) -> None:
        self._members: weakref.WeakSet[BackgroundConsumer] = weakref.WeakSet()
        self._registered = False

    def add(self, consumer: BackgroundConsumer) -> None:
        self._members.add(consumer)
        if not self._registered:
            self._registered = True
            atexit.register(self.drain)

    def discard(self, consumer: BackgroundConsumer) -> None:
        self._members.discard(consumer)

    def drain(self) -> None:
        for consumer in list(self._members):
            try:
                consumer.close()
            except Exception:
                logger.exception("close at exit failed")


_atexit_registry = _AtexitRegistry()


def _before_fork() -> None:
    for consumer in list(_live):
        consumer._before_fork()


def _after_fork_parent() -> None:
    for consumer in list(_live):
        consumer._after_fork_parent()


def _after_fork_child() -> None:
    for consumer in list(_live):
        consumer._after_fork_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_parent,
                        after_in_child=_after_fork_child)
