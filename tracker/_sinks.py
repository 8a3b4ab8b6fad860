"""Sinks and error handlers as both trackers (Mixpanel's and PostHog's) take them.

A sink is any callable ``sink(type, message_json)`` or a consumer object
with ``.send``; a delivery failure is a ``consumers.errors.DeliveryError``,
recognised by its class name so that ``tracker`` imports no IO.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from tracker.errors import InvalidTypeError

__all__ = ["ErrorHandler", "Sink", "discard", "is_delivery_error", "log_error", "sink_callable"]

logger = logging.getLogger("tracker")

Sink = Callable[[str, str], Any]
ErrorHandler = Callable[[BaseException], Any]


def discard(message_type: str, message_json: str) -> None:
    """The sink of a disabled tracker that was given none: nothing is built, nothing sent."""


def log_error(error: BaseException) -> None:
    """The default error handler: log the failure (logger ``tracker``)."""
    logger.error("delivery failed: %s", error)


def is_delivery_error(error: BaseException) -> bool:
    """Whether ``error`` is a delivery failure (not the caller's bug)."""
    return any(c.__name__ == "DeliveryError" for c in type(error).__mro__)


def sink_callable(sink: Any, what: str) -> Sink:
    """The callable to hand messages to: ``sink.send`` when it has one, else ``sink``."""
    send = getattr(sink, "send", None)
    if callable(send):
        return send  # type: ignore[no-any-return]
    if callable(sink):
        return sink  # type: ignore[no-any-return]
    raise InvalidTypeError(
        f"{what} must be a callable (type, message_json) or a consumer with .send, "
        f"got {type(sink).__name__}"
    )
