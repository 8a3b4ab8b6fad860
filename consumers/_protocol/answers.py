"""What an HTTP answer means: the delivery error it stands for, or none.

The transports hand over what they read (status, headers, body text) and
raise what these functions return.  The mapping, after retries where the
policy retries:

=================================  ==========================================
answer                             error
=================================  ==========================================
2xx                                none (but see :func:`status_answer`)
413                                :class:`~consumers.errors.PayloadTooLargeError`
a status the policy retries        :class:`~consumers.retry.RetryableRefusal`
                                   (``Retry-After`` kept)
any other non-2xx status           :class:`~consumers.errors.RefusedError`
=================================  ==========================================

Mixpanel's own answers: ``0`` or ``{"status": 0}`` with a 200 is a refusal
of the whole batch (:func:`status_answer`); a strict /import 400 with
``failed_records`` names exactly the refused records (:func:`batch_failure`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Optional

from consumers._pace import Pace, hold_from
from consumers.endpoints import redact_url
from consumers.errors import (
    DeliveryError,
    FailedRecord,
    PayloadTooLargeError,
    RecordsRejectedError,
    RefusedError,
)
from consumers.retry import RateLimitHeld, RetryableRefusal, RetryPolicy, parse_retry_after

__all__ = [
    "answer_error",
    "batch_failure",
    "describe_url",
    "held_past_budget",
    "note_answer",
    "rejected_records",
    "short",
    "status_answer",
]

log = logging.getLogger("consumers.consumer")


def describe_url(url: str) -> str:
    """The URL for messages: no query (it may carry a project id), no password."""
    return redact_url(url.split("?", 1)[0])


def short(text: str, limit: int = 300) -> str:
    """``text``, cut at ``limit`` characters."""
    return text if len(text) <= limit else text[:limit] + "..."


def note_answer(pace: Pace, key: str, policy: RetryPolicy, status: int,
                headers: Mapping[str, str], took: float) -> Optional[float]:
    """Tell ``pace`` how the endpoint answered; the instant it is now held until, if held.

    ``headers`` must look names up case-insensitively.
    """
    pace.took(key, took)
    if policy.respect_retry_after:
        hold = hold_from(status, headers)
        if hold is not None:
            return pace.hold(key, hold, status=status)
    return None


def answer_error(status: int, headers: Mapping[str, str], text: str, url: str,
                 policy: RetryPolicy, held_until: Optional[float] = None,
                 ) -> Optional[RefusedError]:
    """The error a non-2xx answer stands for (None for 2xx)."""
    if 200 <= status < 300:
        return None
    message = f"POST {describe_url(url)} answered {status}: {short(text)}"
    if status == 413:
        return PayloadTooLargeError(message, status=status, body=text)
    if policy.retries_status(status):
        retry_after = parse_retry_after(headers.get("Retry-After"))
        refusal = RetryableRefusal(message, status=status, body=text, retry_after=retry_after)
        refusal.held_until = held_until
        return refusal
    return RefusedError(message, status=status, body=text)


def status_answer(text: str, status: int, url: str) -> Optional[RefusedError]:
    """The refusal in a 2xx ``0`` / ``{"status": 0, ...}`` body from /track, /engage, /groups."""
    text = text.strip()
    if text == "1":
        return None
    try:
        answer = json.loads(text) if text else None
    except ValueError:
        answer = None
    if isinstance(answer, dict) and answer.get("status") in (1, "1", "OK", "ok"):
        return None
    if text == "0" or (isinstance(answer, dict) and answer.get("status") in (0, "0")):
        error = answer.get("error") if isinstance(answer, dict) else None
        return RefusedError(
            f"POST {describe_url(url)} refused the batch: {error or 'no valid data objects'}",
            status=status,
            body=text,
        )
    log.debug("unexpected answer from %s: %.200s", describe_url(url), text)
    return None


def batch_failure(imports: bool, error: DeliveryError, message_type: str,
                  messages: Sequence[str]) -> DeliveryError:
    """The error a failed Mixpanel batch raises: which records, or which messages, failed."""
    if imports and isinstance(error, RefusedError) and error.status == 400:
        rejected = rejected_records(error, message_type, messages)
        if rejected is not None:
            return rejected
    error.messages = [(message_type, m) for m in messages]
    return error


def rejected_records(
    exc: RefusedError, message_type: str, messages: Sequence[str]
) -> Optional[RecordsRejectedError]:
    """RecordsRejectedError from a strict /import 400 body; None without failed_records."""
    try:
        answer = json.loads(exc.body)
    except ValueError:
        return None
    failed = answer.get("failed_records") if isinstance(answer, dict) else None
    if not isinstance(failed, list) or not failed:
        return None
    records = []
    for item in failed:
        if not isinstance(item, dict):
            continue
        index = item.get("index")
        record = None
        if isinstance(index, int) and 0 <= index < len(messages):
            record = (message_type, messages[index])
        records.append(
            FailedRecord(
                index=index if isinstance(index, int) else -1,
                message=str(item.get("message", "")),
                field=item.get("field") or None,
                insert_id=item.get("insert_id") or None,
                record=record,
            )
        )
    imported = answer.get("num_records_imported")
    num_imported = imported if isinstance(imported, int) else len(messages) - len(records)
    first = records[0].message if records else ""
    return RecordsRejectedError(
        f"/import refused {len(records)} of {len(messages)} record(s) "
        f"({num_imported} imported): {first}",
        status=exc.status,
        body=exc.body,
        failed_records=records,
        num_imported=num_imported,
    )


def held_past_budget(url: str, until: float, now: float, started: float,
                     policy: RetryPolicy, deadline: Optional[float]) -> Optional[RateLimitHeld]:
    """The error for a POST whose endpoint is held past the retry budget or ``deadline``.

    ``until`` is when the hold ends, ``started`` when the POST began (all
    ``time.monotonic()``); None when waiting for the hold fits.
    """
    if until - started <= policy.max_elapsed and (deadline is None or until <= deadline):
        return None
    error = RateLimitHeld(
        f"POST {describe_url(url)} not sent: the service asked to wait "
        f"{until - now:.3g} s more", status=429, retry_after=until - now)
    error.held_until = until
    return error
