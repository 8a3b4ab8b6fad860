"""Batching by count and bytes, and the plan of one flush: what is sent, split, reported, kept.

A :class:`FlushPlan` is handed the messages of one type; the transport asks
it for the next batch (:meth:`FlushPlan.next_batch`), posts it, and tells it
the outcome (:meth:`FlushPlan.sent` or :meth:`FlushPlan.failed`).  The plan
decides, by the sender's :data:`Rule`:

* ``SPLIT``: 413, or a 400 naming no record: the batch is halved and each
  half is sent, down to single messages; a single message still refused is
  reported;
* ``REPORT``: refused for good (strict /import's ``failed_records``,
  ``{"status": 0}``, a single bad message): reported, not sent again;
* ``KEEP``: the destination failed (transport errors, 401/403, 429/5xx past
  the retry budget): the flush stops, and :meth:`FlushPlan.unsent` is exactly
  the messages not sent, in their order, to be put back.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Sequence
from typing import Callable, Optional

from consumers.errors import (
    DeliveryError,
    FailedRecord,
    PayloadTooLargeError,
    RecordsRejectedError,
    RefusedError,
)

__all__ = [
    "Decision",
    "FlushPlan",
    "Rule",
    "batches",
    "combine",
    "message_size",
    "mixpanel_rule",
    "posthog_rule",
]

log = logging.getLogger("consumers.buffered")


class Decision(enum.Enum):
    """What a failed batch leads to."""

    SPLIT = "split"
    REPORT = "report"
    KEEP = "keep"


#: ``rule(error, batch_length) -> Decision``
Rule = Callable[[DeliveryError, int], Decision]


def message_size(message: str) -> int:
    """Bytes a message takes in a batch: its characters plus the comma.

    Exact for ASCII JSON; a batch that encodes larger than the limit is
    split when the service answers 413.
    """
    return len(message) + 1


def batches(messages: list[str], max_count: int, max_bytes: int,
            size: Callable[[str], int] = message_size,
            total: Optional[int] = None) -> list[list[str]]:
    """``messages`` cut, in order, into batches of at most ``max_count`` and ``max_bytes``.

    ``size`` is what one message adds to a batch (by default its characters
    and a comma); a batch's brackets count as one byte.  ``total``, when the
    caller has kept count, is the sum of the messages' sizes.
    """
    if total is None:
        total = sum(map(size, messages))
    if len(messages) <= max_count and total + 1 <= max_bytes:
        return [messages]
    chunks: list[list[str]] = []
    current: list[str] = []
    used = 1
    for message in messages:
        grow = size(message)
        if current and (len(current) >= max_count or used + grow > max_bytes):
            chunks.append(current)
            current, used = [], 1
        current.append(message)
        used += grow
    if current:
        chunks.append(current)
    return chunks


def _splittable(error: RefusedError) -> bool:
    """413, or a 400 naming no record: some message in the batch is the problem."""
    return isinstance(error, PayloadTooLargeError) or error.status == 400


def mixpanel_rule(error: DeliveryError, length: int) -> Decision:
    """Mixpanel's endpoints: split on 413/400, report records and ``{"status": 0}``, else keep."""
    if isinstance(error, RecordsRejectedError):
        return Decision.REPORT
    if isinstance(error, RefusedError):
        if _splittable(error):
            return Decision.SPLIT if length > 1 else Decision.REPORT
        if error.status == 200:  # {"status": 0}: nothing in it is valid
            return Decision.REPORT
    return Decision.KEEP


def posthog_rule(retry_statuses: frozenset[int]) -> Rule:
    """PostHog's /batch/: a refusal it does not retry drops the batch; anything else keeps it."""

    def rule(error: DeliveryError, length: int) -> Decision:
        if isinstance(error, RefusedError) and error.status not in retry_statuses:
            return Decision.REPORT
        return Decision.KEEP

    return rule


class FlushPlan:
    """The batches of one type's flush, and what became of each.

    ``batches`` are sent in order; ``rule`` decides what a failure means.
    After the flush, :attr:`reported` holds the refusals (their messages
    dropped), :attr:`failure` the error that stopped it (or None), and
    :meth:`unsent` what must be put back.
    """

    def __init__(self, message_type: str, batches: Sequence[list[str]], rule: Rule) -> None:
        self.message_type = message_type
        self._queue: deque[list[str]] = deque(batches)
        self._rule = rule
        self._current: list[str] = []
        self.reported: list[DeliveryError] = []
        self.failure: Optional[DeliveryError] = None
        self.delivered = 0

    def next_batch(self) -> Optional[list[str]]:
        """The next batch to post, or None when the flush is over."""
        if self.failure is not None or not self._queue:
            return None
        self._current = self._queue.popleft()
        return self._current

    def sent(self) -> None:
        """The current batch was accepted."""
        self.delivered += len(self._current)
        self._current = []

    def failed(self, error: DeliveryError) -> Decision:
        """The current batch failed with ``error``; returns what the plan does about it."""
        batch, self._current = self._current, []
        decision = self._rule(error, len(batch))
        if decision is Decision.SPLIT:
            half = len(batch) // 2
            self._queue.appendleft(batch[half:])
            self._queue.appendleft(batch[:half])
        elif decision is Decision.REPORT:
            if isinstance(error, RecordsRejectedError):
                self.delivered += max(0, len(batch) - len(error.failed_records))
            else:
                error.messages = [(self.message_type, m) for m in batch]
            self.reported.append(error)
        else:
            self.failure = error
            self._queue.appendleft(batch)
        return decision

    def unsent(self) -> list[str]:
        """Every message not sent (the batch in flight included), in order."""
        unsent = list(self._current)
        for rest in self._queue:
            unsent.extend(rest)
        return unsent


def combine(reported: list[DeliveryError]) -> DeliveryError:
    """One error for everything refused and dropped in a flush."""
    if len(reported) == 1:
        return reported[0]
    for error in reported[1:]:
        # DEBUG: the combined error raised carries these messages too
        log.debug("also refused and dropped: %s", error)
    if all(isinstance(e, RecordsRejectedError) for e in reported):
        records: list[FailedRecord] = []
        imported = 0
        for e in reported:
            assert isinstance(e, RecordsRejectedError)
            records.extend(e.failed_records)
            imported += e.num_imported
        first = reported[0]
        assert isinstance(first, RecordsRejectedError)
        return RecordsRejectedError(
            f"/import refused {len(records)} record(s) in {len(reported)} batches "
            f"({imported} imported): {records[0].message if records else ''}",
            status=first.status,
            body=first.body,
            failed_records=records,
            num_imported=imported,
        )
    first = reported[0]
    messages = [m for e in reported for m in e.messages]
    status = first.status if isinstance(first, RefusedError) else 0
    body = first.body if isinstance(first, RefusedError) else ""
    cls = PayloadTooLargeError if isinstance(first, PayloadTooLargeError) else RefusedError
    return cls(
        f"{len(messages)} message(s) refused and dropped; first: {first}",
        status=status,
        body=body,
        messages=messages,
    )
