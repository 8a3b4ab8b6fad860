"""What ``send()`` does off its fast path: durable write-ahead, a queue with no room, drops.

The caller's thread waits for room (``"spill"``, ``"block"``) at most
``block_timeout`` seconds, and once a wait timed out, later sends skip it
until the worker made room again.  Then ``"spill"`` writes the message to
the spool itself, and what is left is dropped: counted and reported.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from consumers.errors import Message

if TYPE_CHECKING:
    from consumers.background import BackgroundConsumer

__all__ = ["POLICIES", "drop", "overflowed", "write_ahead"]

logger = logging.getLogger("consumers.background")

#: The ``overflow=`` policies.
POLICIES = ("spill", "block", "drop")


def write_ahead(consumer: BackgroundConsumer, message: Message) -> None:
    """Durable mode: the message goes to the spool before ``send()`` returns."""
    if consumer._closing:
        drop(consumer, message, "the background consumer is closed")
        return
    assert consumer._spool is not None
    if consumer._spool.write([message]):
        with consumer._lock:
            consumer._written += 1
        if consumer._worker.thread is None:
            consumer._start()
        return
    logger.warning("durable mode: the spool cannot be written; queueing in memory")
    consumer._durable = False
    consumer.send(*message)


def overflowed(consumer: BackgroundConsumer, message: Message, size: int) -> None:
    """The queue has no room for ``message`` (``size`` bytes): wait, spill or drop."""
    if consumer._closing:
        drop(consumer, message, "the background consumer is closed")
        return
    consumer._worker.wake.set()
    if consumer._overflow != "drop" and not consumer._shedding:
        if consumer._queue.wait_for_room(size, consumer._block_timeout,
                                         lambda: consumer._closing):
            consumer._queue.items.append(message)
            consumer._queue.added += size
            return
        consumer._shedding = True
    if consumer._overflow == "spill" and consumer._spool is not None:
        if consumer._spool.write([message]):
            # the worker is stuck (a destination slower than block_timeout): last resort
            with consumer._lock:
                consumer._written += 1
                consumer._overflow_spilled += 1
            return
        if not consumer._spool_failure_logged:
            consumer._spool_failure_logged = True
            logger.warning("the spool is unusable; falling back to overflow='block' "
                           "(wait block_timeout, then drop) while it stays so")
    limit = f"max_queue_bytes={consumer._max_queue_bytes}" + (
        f", max_queue={consumer._max_queue}" if consumer._max_queue is not None else "")
    if consumer._overflow == "drop":
        reason = f"the queue is full ({limit})"
    else:
        reason = f"the queue stayed full for {consumer._block_timeout:g} s ({limit})"
    drop(consumer, message, reason)


def drop(consumer: BackgroundConsumer, message: Message, reason: str) -> None:
    """Count ``message`` as dropped; the worker reports it (or this thread, with none left)."""
    consumer._losses.record(reason, message)
    if consumer._stopping or consumer._worker.finished:  # no worker left to report it
        consumer._report_drops()
    else:
        consumer._worker.wake.set()
