"""Where a :class:`~tracker.Tracker` sends: its sink, its alias sink and its error
handler, chosen from the constructor's arguments.

The default consumer is built here, the only place (with the tracker's lazy
alias sink) that the tracker touches IO.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

from tracker._sinks import ErrorHandler, Sink, discard, log_error, sink_callable
from tracker.errors import InvalidInputError, InvalidTypeError

__all__ = ["Wiring", "error_handler_of", "wire"]


class Wiring(NamedTuple):
    """The sinks of one tracker; ``alias_send`` None: build a consumer on ``endpoints``."""

    send: Sink
    alias_send: Optional[Sink]
    endpoints: Any
    owned: list[Any]


def wire(
    sink: Any,
    *,
    region: Optional[str],
    api_host: Optional[str],
    alias_sink: Any,
    disabled: bool,
) -> Wiring:
    """The sinks a tracker built with these arguments uses (see ``Tracker``'s docstring)."""
    owned: list[Any] = []
    alias_send: Optional[Sink] = None
    endpoints: Any = None
    send: Sink
    if sink is None and disabled:
        send = alias_send = discard
    elif sink is None:
        from consumers import Consumer  # the only place the tracker touches IO

        consumer = Consumer(region=region, api_host=api_host)
        owned.append(consumer)
        send = consumer.send
        endpoints = getattr(consumer, "endpoints", None)
        alias_send = consumer.send
    else:
        if region is not None or api_host is not None:
            raise InvalidInputError(
                "region= and api_host= configure the default consumer; with a sink, "
                "give the region to the consumer you pass (or pass alias_sink=)"
            )
        send = sink_callable(sink, "sink")
        endpoints = getattr(sink, "endpoints", None)
        immediate = getattr(sink, "immediate", None)
        if callable(immediate):
            alias_send = immediate
        elif endpoints is None:
            alias_send = send
    if alias_sink is not None:
        alias_send = sink_callable(alias_sink, "alias_sink")
    return Wiring(send, alias_send, endpoints, owned)


def error_handler_of(error_handler: Any, sink: Any) -> ErrorHandler:
    """The callable for ``error_handler=``, also told to ``sink`` when it reports later."""
    handle = getattr(error_handler, "handle", None)
    on_error: ErrorHandler
    if error_handler is None:
        on_error = log_error
    elif callable(handle):
        on_error = handle
    elif callable(error_handler):
        on_error = error_handler
    else:
        raise InvalidTypeError("error_handler must be a callable or have .handle(error)")
    if error_handler is not None and sink is not None:
        # a consumer that reports failures later (a background one) tells this handler
        use = getattr(sink, "use_error_handler", None)
        if callable(use):
            use(on_error)
    return on_error
