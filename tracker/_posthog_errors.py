"""How the PostHog client tells ``on_error`` about delivery failures.

``on_error`` takes one of two forms, told apart by its signature when the
client is built:

* the Ruby client's ``on_error(status, message)``: the HTTP status of the
  refusal (or :data:`NO_RESPONSE`, ``-1``, when no HTTP answer came or the
  messages were dropped before sending) and a text saying what failed;
* posthog-python's ``on_error(error, batch)``: the exception (a
  ``consumers.errors.DeliveryError``; ``error.status`` is the HTTP status
  when there was one) and the messages that failed, as dicts.

The posthog-python form is recognised when the first parameter is named
``error``, ``e``, ``err``, ``exc`` or ``exception``, or the second ``batch``,
``messages``, ``events`` or ``items``, or the first is annotated with an
exception type; any other callable gets the Ruby form.  A callable that
cannot take two positional arguments is refused when the client is built
(not later, as a ``TypeError`` on the delivery thread).
"""

from __future__ import annotations

import inspect
import json
import logging
from typing import Any, Callable, Optional

from tracker._sinks import is_delivery_error as _is_delivery_error
from tracker.errors import InvalidTypeError

__all__ = [
    "NO_RESPONSE",
    "ErrorCallback",
    "ErrorReporter",
    "ReportOutages",
    "is_transient",
    "status_of",
]

logger = logging.getLogger("tracker.posthog")

#: ``status`` given to ``on_error`` when there was no HTTP answer (the Ruby library's value).
NO_RESPONSE = -1

#: ``on_error(status, message)`` or ``on_error(error, batch)``
ErrorCallback = Callable[[Any, Any], Any]

_ERROR_NAMES = frozenset({"error", "e", "err", "exc", "exception"})
_BATCH_NAMES = frozenset({"batch", "messages", "events", "items"})
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def status_of(error: BaseException) -> int:
    status = getattr(error, "status", None)
    return status if isinstance(status, int) else NO_RESPONSE


def is_transient(error: BaseException) -> bool:
    """An outage the background queue keeps messages through (the same rule it uses)."""
    if not _is_delivery_error(error):
        return False
    status = getattr(error, "status", None)
    if not isinstance(status, int):
        return True  # no HTTP answer
    return status == 429 or status >= 500


def _describe(error: BaseException, count: int, what: str) -> str:
    return f"{count} PostHog message(s) {what}: {type(error).__name__}: {error}"


def _is_exception_annotation(annotation: Any) -> bool:
    if isinstance(annotation, str):  # from __future__ import annotations
        return annotation.endswith(("Exception", "Error"))
    return isinstance(annotation, type) and issubclass(annotation, BaseException)


def callback_form(callback: Any) -> str:
    """``"posthog"`` for ``on_error(error, batch)``; ``"ruby"`` for ``(status, message)``."""
    if not callable(callback):
        raise InvalidTypeError(
            f"on_error must be a callable (status, message) or (error, batch), "
            f"got {type(callback).__name__}"
        )
    try:
        signature = inspect.signature(callback)
    except (TypeError, ValueError):  # a builtin such as print: nothing to tell them apart by
        return "ruby"
    try:
        signature.bind(None, None)
    except TypeError:
        raise InvalidTypeError(
            f"on_error must take two arguments, (status, message) or (error, batch); "
            f"{getattr(callback, '__qualname__', type(callback).__name__)}{signature} does not"
        ) from None
    params = [p for p in signature.parameters.values() if p.kind in _POSITIONAL][:2]
    if params and (
        params[0].name in _ERROR_NAMES or _is_exception_annotation(params[0].annotation)
    ):
        return "posthog"
    if len(params) == 2 and params[1].name in _BATCH_NAMES:
        return "posthog"
    return "ruby"


class ErrorReporter:
    """Calls ``on_error`` in its form, or logs when there is none."""

    def __init__(self, on_error: Optional[ErrorCallback]) -> None:
        self.callback = on_error
        self.form = "ruby" if on_error is None else callback_form(on_error)

    def report(
        self,
        error: BaseException,
        count: int,
        what: str,
        *,
        messages: Any = (),
        kept: bool = False,
    ) -> None:
        """Tell ``on_error``; without one, log: ERROR when lost, WARNING when ``kept`` to resend."""
        if self.callback is None:
            logger.log(logging.WARNING if kept else logging.ERROR,
                       "delivery failed (status %s): %s", status_of(error),
                       _describe(error, count, what))
            return
        try:
            if self.form == "ruby":
                self.callback(status_of(error), _describe(error, count, what))
            else:
                self.callback(error, [json.loads(m) for _, m in messages or ()])
        except Exception:  # a broken handler must not break delivery
            logger.exception("on_error raised")


class ReportOutages:
    """Wraps the default PostHogConsumer: reports a batch that ran out of retries.

    The background queue keeps such a batch (on disk) and sends it again when
    the host answers, so it is not lost; ``on_error`` still hears about it
    once per failed batch, with the last status, as the Ruby client reports
    its final failure: the probes and the shutdown that fail on the same
    messages again during one outage are not reported again.  Refusals are
    reported by the queue's own callback.
    """

    #: hashes of messages already reported in this outage; beyond this many, start again
    _MAX_TOLD = 100_000

    def __init__(self, inner: Any, report: Callable[..., None]) -> None:
        self._inner = inner
        self._report = report
        self.max_batch: int = inner.max_batch
        self._told: set[int] = set()

    def _outage(self, error: BaseException, messages: Any) -> None:
        if not is_transient(error):
            return
        if len(self._told) > self._MAX_TOLD:
            self._told.clear()
        if messages:
            fresh = {hash(m) for m in messages} - self._told
            count = len(fresh)
            told = [m for m in messages if hash(m) in fresh]
        else:  # no batch named: at most once per outage
            fresh = {0}
            count = 0 if 0 in self._told else max(1, self.pending())
            told = []
        if count:
            self._told |= fresh
            self._report(error, count, "not delivered after the retry budget; kept to send again",
                         messages=told, kept=True)

    def send(self, message_type: str, message_json: str) -> None:
        try:
            self._inner.send(message_type, message_json)
        except Exception as error:
            messages = getattr(error, "messages", None) or [(message_type, message_json)]
            self._outage(error, messages)
            raise

    __call__ = send

    def flush(self) -> None:
        try:
            self._inner.flush()
        except Exception as error:
            self._outage(error, getattr(error, "messages", None))
            raise
        self._told.clear()  # delivered: the outage is over

    def pending(self) -> int:
        return int(self._inner.pending())

    def take_pending(self) -> list[tuple[str, str]]:
        return list(self._inner.take_pending())

    def close(self) -> None:
        self._inner.close()

    def __repr__(self) -> str:
        return repr(self._inner)
