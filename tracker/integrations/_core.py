"""What every framework integration shares: a tracker with its consumer, flushed and closed once."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import inspect
import threading
import weakref
from collections.abc import Mapping
from typing import Any, Callable, Optional

from tracker.tracker import Tracker

__all__ = ["Tracking", "context_of"]

#: How long a flush at the end of a task, or the close at exit, may take by default (seconds).
DEFAULT_TIMEOUT = 5.0


class Tracking:
    """A :class:`~tracker.Tracker`, the consumer it sends through, and their end of life.

    ``Tracking(token, region="eu")`` builds the tracker on a
    ``BackgroundConsumer(BufferedConsumer(...))`` (the caller never waits on
    the network); ``Tracking(tracker=..., consumer=...)`` wraps your own.
    ``flush()`` delivers what is queued; ``close()`` flushes and closes the
    consumer once (at interpreter exit too, unless ``close_at_exit=False``).
    On an event loop, ``await aflush()`` and ``await aclose()`` do the same
    without blocking it; an asyncio consumer (one with ``aclose()``, such as
    :class:`~consumers.aio.AsyncBackgroundConsumer`) is flushed and closed
    only that way.
    """

    def __init__(
        self,
        token: Optional[str] = None,
        *,
        region: Optional[str] = None,
        api_host: Optional[str] = None,
        tracker: Optional[Tracker] = None,
        consumer: Optional[Any] = None,
        timeout: float = DEFAULT_TIMEOUT,
        close_at_exit: bool = True,
    ) -> None:
        if tracker is None:
            if token is None:
                raise ValueError("give token= (and region= or api_host=), or tracker=")
            if consumer is None:
                consumer = _background_consumer(region, api_host)
            tracker = Tracker(token, consumer)
        elif token is not None or region is not None or api_host is not None:
            raise ValueError("token=, region= and api_host= build a tracker; with tracker=, "
                             "configure the tracker you pass")
        self.tracker: Tracker = tracker
        self.consumer: Optional[Any] = consumer
        self.timeout = timeout
        self._asyncio = inspect.iscoroutinefunction(getattr(consumer, "aclose", None))
        self._closed = False
        self._lock = threading.Lock()
        if close_at_exit:
            _close_at_exit(self)

    def context(self, fields: Mapping[str, Any]) -> contextlib.AbstractContextManager[Any]:
        """The tracker's request context with ``fields`` (nothing when ``fields`` is empty)."""
        if not fields:
            return contextlib.nullcontext()
        return self.tracker.context(**fields)

    def current_context(self) -> dict[str, Any]:
        """The fields of the tracker's context in force here (to carry into a task)."""
        return context_of(self.tracker)

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Deliver what the consumer holds; False if it could not within ``timeout``."""
        if self._asyncio:
            raise TypeError(f"{type(self.consumer).__name__} delivers on its event loop: "
                            f"use 'await tracking.aflush()' there")
        flush: Optional[Callable[..., Any]] = getattr(self.consumer, "flush", None)
        if flush is None or self._closed:
            return True
        wait = self.timeout if timeout is None else timeout
        try:
            result = flush(wait)
        except TypeError:  # a consumer whose flush() takes no timeout
            result = flush()
        return result is not False

    async def aflush(self, timeout: Optional[float] = None) -> bool:
        """:meth:`flush` on an event loop: an asyncio consumer awaited, any other in a thread."""
        if not self._asyncio:
            return await asyncio.get_running_loop().run_in_executor(None, self.flush, timeout)
        if self._closed:
            return True
        consumer: Any = self.consumer
        return bool(await consumer.flush(self.timeout if timeout is None else timeout))

    def close(self, timeout: Optional[float] = None) -> None:
        """Flush and close the consumer (once); later calls do nothing.

        An asyncio consumer is closed by :meth:`aclose` on its loop.  Where no
        loop runs (at interpreter exit), this closes the tracker only: the
        consumer kept in its spool, or reported, what its ended loop held.
        """
        if self._asyncio and _on_a_loop():
            raise TypeError(f"{type(self.consumer).__name__} delivers on its event loop: "
                            f"use 'await tracking.aclose()' there")
        with self._lock:
            if self._closed:
                return
            self._closed = True
        close: Optional[Callable[..., Any]] = None if self._asyncio else getattr(
            self.consumer, "close", None)
        if close is not None:
            wait = self.timeout if timeout is None else timeout
            try:
                close(wait)
            except TypeError:  # a consumer whose close() takes no timeout
                close()
        self.tracker.close()

    async def aclose(self, timeout: Optional[float] = None) -> None:
        """:meth:`close` on an event loop: an asyncio consumer awaited, any other in a thread."""
        if not self._asyncio:
            await asyncio.get_running_loop().run_in_executor(None, self.close, timeout)
            return
        with self._lock:
            if self._closed:
                return
            self._closed = True
        consumer: Any = self.consumer
        await consumer.aclose(self.timeout if timeout is None else timeout)
        self.tracker.close()

    def __repr__(self) -> str:
        return f"Tracking({self.tracker!r}, consumer={type(self.consumer).__name__})"


def context_of(tracker: Tracker) -> dict[str, Any]:
    """The fields of ``tracker``'s context in force in the calling thread or task."""
    return tracker.current_context()


def _on_a_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _background_consumer(region: Optional[str], api_host: Optional[str]) -> Any:
    from consumers.background import BackgroundConsumer
    from consumers.buffered import BufferedConsumer

    return BackgroundConsumer(BufferedConsumer(region=region, api_host=api_host))


_open: weakref.WeakSet[Tracking] = weakref.WeakSet()
_registered = False


def _close_at_exit(tracking: Tracking) -> None:
    global _registered
    if not _registered:
        # registered after the consumer's own exit hook, so it runs first (atexit is LIFO)
        atexit.register(_close_all)
        _registered = True
    _open.add(tracking)


def _close_all() -> None:
    for tracking in list(_open):
        tracking.close()
