"""Handing a batch of entries to the consumer and sorting out what happened.

Each entry ends up delivered, dead (refused for what it is, with the reason),
or neither (to be retried: a transport failure, or a consumer that is not
configured for it).
"""

from __future__ import annotations

from typing import Any, Optional, Protocol

import attrs

from consumers._worker.entries import Entry
from consumers.errors import (
    ConfigurationError,
    DeliveryError,
    Message,
    PayloadTooLargeError,
    RecordsRejectedError,
    RefusedError,
)

# Statuses that mean "this message is not acceptable", as opposed to "not now"
# (429, 5xx) or "not with these credentials / at this address" (401, 403, 404).
_MESSAGE_STATUSES = (200, 400, 413)


class SupportsSend(Protocol):
    """What the worker needs from a consumer (``take_pending`` is optional)."""

    def send(self, type: str, message_json: str) -> None: ...

    def flush(self) -> None: ...


@attrs.define
class Outcome:
    """What became of the entries of one delivery."""

    delivered: list[Entry] = attrs.Factory(list)
    dead: list[tuple[Entry, str]] = attrs.Factory(list)
    failure: Optional[DeliveryError] = None
    misconfigured: Optional[ConfigurationError] = None


def deliver(consumer: SupportsSend, entries: list[Entry]) -> Outcome:
    """Hand ``entries`` to the consumer and flush; sort them by what happened."""
    outcome = Outcome()
    refused: dict[Message, str] = {}
    suspects: set[Message] = set()
    handed: list[Entry] = []
    uncertain: Optional[Entry] = None
    for entry in entries:
        try:
            consumer.send(entry.type, entry.message)
        except ConfigurationError as exc:
            # Not the message's fault: deliver what came before it, then stop.
            outcome.misconfigured = exc
            break
        except (TypeError, ValueError) as exc:
            outcome.dead.append((entry, f"the consumer refused the message: {exc}"))
            continue
        except DeliveryError as exc:
            handed.append(entry)
            if not _absorb(exc, refused, suspects):
                outcome.failure = exc
                uncertain = entry
                break
            continue
        handed.append(entry)
    if outcome.failure is None:
        outcome.failure = _flush(consumer, refused, suspects)
    unsent = set(take_pending(consumer)) if outcome.failure is not None else set()
    if suspects and outcome.failure is None:
        outcome.failure = _isolate(consumer, suspects, refused)
        unsent |= suspects
    for entry in handed:
        key = entry.tuple
        if key in refused:
            outcome.dead.append((entry, refused[key]))
        elif key not in unsent and key not in suspects:
            outcome.delivered.append(entry)
    if uncertain is not None and outcome.delivered and outcome.delivered[-1] is uncertain:
        # The entry whose send raised may never have reached the buffer: send it again.
        outcome.delivered.pop()
    return outcome


def take_pending(consumer: Any) -> list[Message]:
    """Clear what the consumer still holds (when it can say), returning it."""
    take = getattr(consumer, "take_pending", None)
    return list(take()) if take is not None else []


def _flush(
    consumer: SupportsSend, refused: dict[Message, str], suspects: set[Message]
) -> Optional[DeliveryError]:
    # A flush can stop at the first type whose batch was refused: go on until empty.
    for _ in range(16):
        try:
            consumer.flush()
        except DeliveryError as exc:
            if not _absorb(exc, refused, suspects):
                return exc
            continue
        pending = getattr(consumer, "pending", None)
        if pending is None or not pending():
            return None
    return None


def _isolate(
    consumer: SupportsSend, suspects: set[Message], refused: dict[Message, str]
) -> Optional[DeliveryError]:
    """Resend the messages of a refused batch one at a time to find the bad ones."""
    for message in sorted(suspects):
        try:
            consumer.send(*message)
            consumer.flush()
        except (TypeError, ValueError) as exc:
            refused[message] = f"the consumer refused the message: {exc}"
        except DeliveryError as exc:
            if not _absorb(exc, refused, set()) and message not in refused:
                take_pending(consumer)
                return exc
            refused.setdefault(message, _reason(exc))
        suspects.discard(message)
    return None


def _reason(exc: DeliveryError) -> str:
    status = getattr(exc, "status", None)
    body = getattr(exc, "body", "") or ""
    head = f"refused with status {status}" if status is not None else "refused"
    return f"{head}: {exc}" + (f" -- {body[:500]}" if body and body not in str(exc) else "")


def _absorb(exc: DeliveryError, refused: dict[Message, str], suspects: set[Message]) -> bool:
    """Record a refusal that is about the messages; False for a failure to retry."""
    if isinstance(exc, RecordsRejectedError):
        for record in exc.failed_records:
            if record.record is not None:
                where = f" ({record.field})" if record.field else ""
                refused[record.record] = f"/import rejected the record{where}: {record.message}"
        return True
    if isinstance(exc, PayloadTooLargeError) or (
        isinstance(exc, RefusedError) and exc.status in _MESSAGE_STATUSES
    ):
        if len(exc.messages) == 1:
            refused[exc.messages[0]] = _reason(exc)
            return True
        if exc.messages:
            suspects.update(m for m in exc.messages if m not in refused)
            return True
    return False
