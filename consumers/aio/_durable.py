"""Durable mode of :class:`~consumers.aio.AsyncBackgroundConsumer`: on disk before send() returns.

With ``durable=True`` every message (an alias excepted: it goes ahead of
the queue, in memory) is appended to the spool by ``send()`` itself, on the
caller's thread, whichever it is: one ``write(2)``, no ``fsync``.  A
SIGKILL or an OOM kill then loses nothing ``send()`` accepted: the next
consumer on the same folder delivers it.  The delivery task delivers by
replaying the spool, a sealed segment at a time
(:mod:`consumers.aio._segments`); it is woken each time a request's worth
was written, or by ``flush()``, else after ``flush_interval``, and opens
the next segment ahead, on a thread, so ``send()`` does not make its folder.
When the spool cannot be written the consumer says so once and queues in
memory from then on.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from consumers.aio.background import AsyncBackgroundConsumer

__all__ = ["wake_task", "write_ahead"]

logger = logging.getLogger("consumers.aio")


def write_ahead(consumer: AsyncBackgroundConsumer, message_type: str, text: str) -> bool:
    """Append one message to the spool; False (durable mode then off) if it cannot be written."""
    spool = consumer.spool
    assert spool is not None
    if not spool.write([(message_type, text)]):
        logger.warning("durable mode: the spool cannot be written; queueing in memory")
        consumer.durable = False
        return False
    with consumer.written_lock:
        consumer.written += 1
        written = consumer.written
    if written % consumer.batch == 0:  # a request's worth: the task replays it
        wake_task(consumer)
    return True


def wake_task(consumer: AsyncBackgroundConsumer) -> None:
    """Wake the delivery task, from the loop's thread or any other."""
    loop = consumer._loop
    if loop is None:
        return  # not started: the task looks at the spool when it starts
    if asyncio._get_running_loop() is loop:
        consumer.wake.set()
        return
    try:
        loop.call_soon_threadsafe(consumer.wake.set)
    except RuntimeError:  # its loop is closed: the next consumer on the folder delivers it
        pass
