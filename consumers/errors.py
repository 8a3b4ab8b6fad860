"""The delivery error family raised by every consumer.

Shape (after httpx)::

    DeliveryError                 anything that kept messages from being delivered
    ├── TransportError            no HTTP answer: could not connect, reset, timed out
    │   └── TimeoutError_         ... specifically a connect or read timeout
    └── RefusedError              the server answered and did not accept
        ├── PayloadTooLargeError  413, or a single message over the service's limit
        └── RecordsRejectedError  strict /import: some records failed validation

Every error says how many messages it concerns (``messages``) and how many
are still waiting in the consumer that raised it (``pending``), so a caller
always knows whether anything was lost.  Error text never contains
credentials.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import attrs

__all__ = [
    "ConfigurationError",
    "DeliveryError",
    "FailedRecord",
    "PayloadTooLargeError",
    "RecordsRejectedError",
    "RefusedError",
    "TimeoutError_",
    "TransportError",
]

#: One message as it travels between tracker and consumers: ``(type, message_json)``.
Message = tuple[str, str]


class ConfigurationError(ValueError):
    """The consumer is not configured for what was asked (e.g. /import without credentials).

    Raised before anything is sent; the message was not accepted.
    """


class DeliveryError(Exception):
    """Messages could not be delivered.

    ``messages`` are the messages this error is about (not delivered);
    ``pending`` is how many messages the raising consumer still holds for a
    later attempt (they are not lost); ``refusals`` are the refusals reported
    by the same flush, whose messages were dropped (the service will not take
    them).
    """

    def __init__(
        self,
        message: str,
        *,
        messages: Sequence[Message] = (),
        pending: int = 0,
    ) -> None:
        super().__init__(message)
        self.messages: list[Message] = list(messages)
        self.pending = pending
        self.refusals: list[DeliveryError] = []

    def __str__(self) -> str:
        text = super().__str__()
        if self.pending:
            text += f" ({self.pending} message(s) still pending)"
        return text


class TransportError(DeliveryError):
    """No HTTP answer: connection refused or reset, DNS failure, timeout."""


class TimeoutError_(TransportError):  # trailing underscore: avoids shadowing the builtin
    """A connect or read timeout."""


class RefusedError(DeliveryError):
    """The server answered with a status or body that means "not accepted"."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        body: str = "",
        messages: Sequence[Message] = (),
        pending: int = 0,
    ) -> None:
        super().__init__(message, messages=messages, pending=pending)
        self.status = status
        self.body = body


class PayloadTooLargeError(RefusedError):
    """The request, or a single message, is larger than the service accepts."""


@attrs.frozen
class FailedRecord:
    """One record a strict /import refused, with the service's reason."""

    index: int
    message: str
    field: Optional[str] = None
    insert_id: Optional[str] = None
    #: the ``(type, message_json)`` that was refused, when the consumer knows it
    record: Optional[Message] = None


class RecordsRejectedError(RefusedError):
    """Strict /import accepted part of a batch; ``failed_records`` were refused.

    The accepted records count as delivered and are never resent.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        body: str = "",
        failed_records: Sequence[FailedRecord] = (),
        num_imported: int = 0,
        pending: int = 0,
    ) -> None:
        refused = [r.record for r in failed_records if r.record is not None]
        super().__init__(message, status=status, body=body, messages=refused, pending=pending)
        self.failed_records: list[FailedRecord] = list(failed_records)
        self.num_imported = num_imported
