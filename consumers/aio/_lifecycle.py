"""When the delivery task's loop ends before ``aclose()``, and when the process forks.

* ``asyncio.run()`` cancels every task still running when its coroutine
  returns, the delivery task too.  What the consumer still queued would
  end with the loop: :func:`task_ended` writes it to the spool (then
  closes the open segment, so this process's next loop or the next program
  on the same spool delivers it) or reports it, and a later ``send()`` on a
  running loop starts delivery again.
* ``os.fork()`` (gunicorn ``--preload``, ``multiprocessing``): the child
  has a copy of the consumer, of the messages the parent will deliver, of
  the parent's connections and of its task.  :func:`reset_in_child` leaves
  all of that to the parent: the child starts empty, and its first send on
  a running loop starts its own task.  Before the fork, every spool's open
  file is flushed, so nothing buffered is written twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import weakref
from typing import TYPE_CHECKING

from consumers.aio._handoff import HandOff
from consumers.aio._progress import Progress
from consumers.aio._queue import OVERHEAD, MessageQueue
from consumers.aio._wake import Wake
from consumers.aio._worker import Worker

if TYPE_CHECKING:
    from consumers.aio.background import AsyncBackgroundConsumer

__all__ = ["live", "reset_in_child", "task_ended"]

logger = logging.getLogger("consumers.aio")

#: Consumers alive now (weakly held), for the fork hook.
live: weakref.WeakSet[AsyncBackgroundConsumer] = weakref.WeakSet()


def task_ended(consumer: AsyncBackgroundConsumer, task: asyncio.Task[None]) -> None:
    """The delivery task ended; unless by ``aclose()``, keep or report what it had queued."""
    if consumer._closed or task is not consumer._task:
        return
    consumer._task, consumer._loop_if_open = None, consumer._no_loop
    left = consumer.take_all() + consumer._handoff.drain()
    if not left:
        logger.info("the delivery task ended before aclose(), with nothing queued")
        return
    logger.error("the delivery task ended before aclose() (did its event loop end?); "
                 "%d message(s) undelivered", len(left))
    consumer._keep_or_report(left, "the delivery task ended before aclose()")
    if consumer.spool is not None:
        consumer.spool.seal()


def reset_in_child(consumer: AsyncBackgroundConsumer) -> None:
    """In a fork child: no queue, task, loop or connections of the parent's."""
    MessageQueue.__init__(consumer, consumer.max_queue_bytes)
    consumer.stats_counts = dict.fromkeys(consumer.stats_counts, 0)
    consumer.written, consumer.written_lock = 0, threading.Lock()
    consumer.progress = Progress()
    consumer._handoff = HandOff(consumer._accept, OVERHEAD)
    consumer.wake = Wake()
    consumer._loop, consumer._loop_if_open, consumer._task = None, consumer._no_loop, None
    consumer._worker = Worker(consumer)
    if consumer.spool is not None:
        consumer.spool.forget_after_fork()
    transport = getattr(consumer.inner, "transport", None)
    forget = getattr(transport, "forget_after_fork", None)
    if callable(forget):
        forget()


def _before_fork() -> None:
    for consumer in list(live):
        if consumer.spool is not None:
            consumer.spool.before_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork)
