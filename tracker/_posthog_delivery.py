"""From a built PostHog message to the sink: processors, the size limit, the off switch, errors.

:class:`Delivery` is the PostHog client's way out.  It picks the sink (the
default background consumer, a sink of the caller's, or none when
disabled), runs the processors on each message, serialises it once,
refuses it when it is over :data:`MAX_MESSAGE_BYTES`, hands it over, and
tells the :class:`~tracker._posthog_errors.ErrorReporter` about every
failure; it also flushes and shuts the sink down.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional

from tracker import _json
from tracker._pipeline import Pipeline
from tracker._posthog_errors import ErrorReporter, ReportOutages
from tracker._sinks import is_delivery_error as _is_delivery_error
from tracker._sinks import sink_callable as _sink_callable
from tracker.errors import InvalidInputError

__all__ = ["MAX_MESSAGE_BYTES", "Delivery", "MessageTooLargeError"]

#: The largest message (JSON, UTF-8 bytes) posthog-python sends, and so this client
#: (900 KiB; PostHog's ingestion refuses request bodies over 20 MiB).
MAX_MESSAGE_BYTES = 900 * 1024

Sink = Callable[[str, str], Any]

_TYPE = "posthog"


class MessageTooLargeError(InvalidInputError):
    """A message's JSON is larger than PostHog accepts; it was not sent.

    ``size`` is its size in bytes (UTF-8), ``limit`` the largest size accepted.
    """

    def __init__(self, message: str, *, size: int, limit: int) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit


def _discard(message_type: str, message_json: str) -> None:
    """The sink of a disabled client that was given none."""


class Delivery:
    """Processors, size check, hand-off, failure reports, flush and shutdown of one client.

    ``sink=None`` builds the default ``BackgroundConsumer`` around a
    ``PostHogConsumer`` (``host``, ``region``, ``consumer_options``,
    ``background_options``), unless ``disabled``: then nothing is built.
    """

    def __init__(
        self,
        api_key: str,
        pipeline: Pipeline,
        reporter: ErrorReporter,
        *,
        sink: Any,
        disabled: bool,
        host: Optional[str],
        region: Optional[str],
        consumer_options: dict[str, Any],
        background_options: dict[str, Any],
    ) -> None:
        self._pipeline = pipeline
        self._reporter = reporter
        self.disabled = disabled
        self.owned: Any = None
        self._lock = threading.Lock()
        self._closed = False
        if sink is None and disabled:
            self.sink: Any = _discard
        elif sink is None:
            self.owned = self._default_sink(api_key, host, region, consumer_options,
                                            background_options)
            self.sink = self.owned
        else:
            self.sink = sink
        self._send: Sink = _sink_callable(self.sink, "sink")

    def _default_sink(
        self,
        api_key: str,
        host: Optional[str],
        region: Optional[str],
        consumer_options: dict[str, Any],
        background_options: dict[str, Any],
    ) -> Any:
        # the only place the client touches IO
        from consumers.background import BackgroundConsumer
        from consumers.posthog import PostHogConsumer

        inner = PostHogConsumer(api_key, host, region=region, **consumer_options)
        background_options.setdefault("on_error", self._background_failed)
        return BackgroundConsumer(ReportOutages(inner, self.report), **background_options)

    # -- failures ------------------------------------------------------------

    def report(self, error: BaseException, count: int, what: str, *,
               messages: Any = (), kept: bool = False) -> None:
        """Count and report ``count`` messages that ``what`` (to ``on_error``, or the log)."""
        self._pipeline.count("failed", count)
        self._reporter.report(error, count, what, messages=messages, kept=kept)

    def _background_failed(self, error: BaseException, messages: list[tuple[str, str]]) -> None:
        self.report(error, len(messages), "not delivered", messages=messages)

    def _failed(self, error: BaseException, message_json: Optional[str] = None) -> None:
        messages = getattr(error, "messages", None) or (
            [(_TYPE, message_json)] if message_json is not None else []
        )
        self.report(error, len(messages) or 1, "not delivered", messages=messages)

    # -- messages ------------------------------------------------------------

    def deliver(self, message: dict[str, Any], where: str, started: bool = False) -> bool:
        """Process, serialise, check and send ``message``; False when delivery failed.

        ``started``: its properties began with ``Pipeline.start`` (the context
        and the head super properties are in), so only the rest run.
        """
        steps = self._pipeline.after_build if started else self._pipeline.steps
        if steps:
            processed = self._pipeline.apply(steps, _TYPE, message)
            if processed is None:
                return True
            message = processed
        message_json = _json.dumps(message)
        size = len(message_json)
        if size * 4 > MAX_MESSAGE_BYTES:  # cheap: a character is at most 4 bytes
            size = len(message_json.encode("utf-8"))
            if size > MAX_MESSAGE_BYTES:
                raise MessageTooLargeError(
                    f"{where}: the message is {size} bytes of JSON; PostHog accepts at most "
                    f"{MAX_MESSAGE_BYTES} bytes per message; nothing was sent",
                    size=size,
                    limit=MAX_MESSAGE_BYTES,
                )
        if self.disabled:
            self._pipeline.count("disabled")
            return True
        try:
            self._send(_TYPE, message_json)
        except Exception as error:
            if not _is_delivery_error(error):
                raise
            self._failed(error, message_json)
            return False
        return True

    # -- lifecycle -----------------------------------------------------------

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait for the sink's ``flush`` (when it has one); False on a timeout or a failure."""
        flush = getattr(self.sink, "flush", None)
        if not callable(flush):
            return True
        try:
            result = flush(timeout) if self.owned is not None else flush()
        except Exception as error:
            if not _is_delivery_error(error):
                raise
            self._failed(error)
            return False
        return result is not False

    def shutdown(self, timeout: Optional[float] = None) -> None:
        """Close the client's own consumer (once); a sink that was passed in is only flushed."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self.owned is not None:
            self.owned.close(timeout)
        elif not self.disabled:
            self.flush()
