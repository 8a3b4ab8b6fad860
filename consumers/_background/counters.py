"""Health counters that are not simple tallies: delivery lag, the last error, spool size, retries.

Delivery lag is read without a clock call on the caller's path: the worker
notes, each time it looks, how many bytes callers had queued by then
(:class:`Lag`).  The message at the head of the queue was queued after the
last note that does not yet include it, so its age is known to within one
look of the worker (``POLL`` while messages wait, ``flush_interval`` when
idle); the age reported is the longer bound.
"""

from __future__ import annotations

import collections
import os
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from consumers.background import BackgroundConsumer

__all__ = ["Lag", "LastError", "retried", "snapshot", "spool_bytes"]

#: Notes kept at most (at one per POLL, over a minute of backlog).
MAX_NOTES = 4096
#: Characters of an error's text kept.
MAX_ERROR_TEXT = 300

_SECRET_IN_URL = re.compile(r"//[^/@\s]*@")


class Lag:
    """(time, bytes queued so far) notes, to date the message at the head of the queue."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._notes: collections.deque[tuple[float, int]] = collections.deque(maxlen=MAX_NOTES)
        self._notes.append((time.monotonic(), 0))

    def note(self, added: int) -> None:
        """The worker looked: ``added`` bytes had been queued by now."""
        with self._lock:
            if added != self._notes[-1][1]:
                self._notes.append((time.monotonic(), added))

    def queued_at(self, offset: int) -> float:
        """At the latest when the message starting at byte ``offset`` was queued.

        Notes older than that are forgotten (``offset`` only grows).
        """
        with self._lock:
            notes = self._notes
            while len(notes) > 1 and notes[1][1] <= offset:
                notes.popleft()
            return notes[0][0]


class LastError:
    """When the last delivery error happened, and its text (credentials in URLs removed)."""

    def __init__(self) -> None:
        self.value: Optional[tuple[float, str]] = None

    def record(self, error: BaseException) -> None:
        text = str(error) or type(error).__name__
        text = _SECRET_IN_URL.sub("//", text)[:MAX_ERROR_TEXT]
        self.value = (time.time(), f"{type(error).__name__}: {text}")


def _transport(sink: Any) -> Any:
    for _ in range(4):
        transport = getattr(sink, "transport", None)
        if transport is not None:
            return transport
        sink = getattr(sink, "consumer", None)
        if sink is None:
            break
    return None


def retried(sink: Any) -> int:
    """Requests the transport under ``sink`` has retried (0 when it cannot say)."""
    count = getattr(_transport(sink), "retried", 0)
    return count if isinstance(count, int) else 0


def spool_bytes(spool: Any) -> int:
    """Bytes on disk in the spool's segments (those not yet replayed completely)."""
    if spool is None:
        return 0
    total = 0
    for folder in list(getattr(spool, "_segments", ())):
        total += _folder_bytes(Path(folder))
    return total


def _folder_bytes(folder: Path) -> int:
    total = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:  # replayed and removed meanwhile
        return 0
    for entry in entries:
        try:
            if entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
            elif entry.is_dir(follow_symlinks=False):
                total += _folder_bytes(Path(entry.path))
        except OSError:
            continue
    return total


def snapshot(owner: BackgroundConsumer) -> dict[str, int]:
    """What :meth:`BackgroundConsumer.stats` returns (documented there)."""
    worker = owner._worker
    queue = owner._queue
    worker.lag.note(queue.added)
    oldest = worker.backlog_since
    if queue.nbytes > 0:
        head = worker.lag.queued_at(queue.removed)
        oldest = head if oldest is None else min(oldest, head)
    lag_ms = 0 if oldest is None else max(0, int((time.monotonic() - oldest) * 1000))
    last = worker.last_error.value
    with worker.lock:
        queued = max(0, len(owner._queue.items) - owner._queue.markers_queued())
        return {
            "enqueued": worker.popped + queued + owner._written,
            "delivered": worker.delivered,
            "failed": worker.failed,
            "dropped": owner._losses.total,
            "spilled": worker.spilled + owner._overflow_spilled,
            "replayed": worker.replayed,
            "queued": queued,
            "queued_bytes": owner._queue.nbytes,
            "in_flight": len(worker.in_inner) + len(worker.held),
            "held_back": worker.holds.count,
            "spooled": owner._spool.count if owner._spool is not None else 0,
            "spool_bytes": spool_bytes(owner._spool),
            "refused": worker.refused,
            "retried": max(0, retried(owner._inner.sink) - worker.retried_base),
            "delivery_lag_ms": lag_ms,
            "last_error_time": int(last[0]) if last is not None else 0,
            **owner._inner.pace_stats(),
        }
