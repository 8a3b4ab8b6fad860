"""A failed hand-over to inner, sorted: delivered, lost for good, set aside, or to resend.

A transient failure (the destination is down) starts an outage and parks
what inner held (on disk if possible); a refusal loses the messages the
error names, or, when it names none, everything inner held; the rest is
sent again.  Messages for an endpoint the service holds wait aside.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Optional

from consumers._background.outage import is_transient
from consumers.errors import Message, RefusedError

if TYPE_CHECKING:
    from consumers._background.worker import Worker

__all__ = ["inner_failed", "without"]


def without(items: Sequence[Message], remove: Iterable[Message]) -> list[Message]:
    """``items`` minus ``remove``, as multisets, keeping order."""
    counts = collections.Counter(remove)
    kept = []
    for item in items:
        if counts[item] > 0:
            counts[item] -= 1
        else:
            kept.append(item)
    return kept


def inner_failed(worker: Worker, error: BaseException, current: Optional[Message] = None) -> None:
    """Sort what inner held into delivered, failed for good, and to be resent."""
    if worker.abandoned:
        return
    worker.last_error.record(error)
    mentioned = list(getattr(error, "messages", None) or ([current] if current else []))
    rest = worker.inner.take_pending()
    unsent = rest + without(mentioned, rest)  # still pending, plus failures inner forgot
    if is_transient(error):
        lost: list[Message] = []
        retry = unsent
    elif mentioned:
        lost, retry = mentioned, without(unsent, mentioned)
    else:  # refused without saying which: everything inner held is in doubt
        lost, retry = (unsent or list(worker.in_inner)), []
    accounted = len(unsent) if (unsent or mentioned) else len(lost)
    delivered = len(worker.in_inner) - accounted
    worker.in_inner = []
    with worker.lock:
        worker.delivered += max(0, delivered)
        worker.failed += len(lost)
        if lost and isinstance(error, RefusedError):
            worker.refused += len(lost)
    if lost:
        worker.owner._report_final(error, lost)
    if retry and is_transient(error) and not worker.replaying and not worker.owner._stopping:
        # a held endpoint's messages wait aside; only the others can mean an outage
        retry, aside = worker.holds.split(retry)
        worker.set_aside(aside)
    if not retry:
        return
    if is_transient(error):
        where = "spooling to disk" if worker.spool is not None else "holding messages"
        worker.outage.failed(error, where)
        if not worker.replaying:  # a replay's messages are still on disk: not again
            worker.park(retry)
    else:
        worker.held = retry + worker.held
