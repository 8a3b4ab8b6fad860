"""The end of delivery: ``close()``'s deadline, the worker's last pass, and what is left.

``close()`` lets the worker deliver until the deadline (less when an outage
or a hold outlasts it), then stops it.  The worker's last pass hands the
queue's rest to inner; whatever is still undelivered goes to the spool, or
is reported lost.  A worker that overruns the deadline is abandoned: close()
takes over what it had not delivered.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from consumers._background import lifecycle
from consumers.errors import DeliveryError, Message

if TYPE_CHECKING:
    from consumers._background.worker import Worker
    from consumers.background import BackgroundConsumer

__all__ = ["close", "finish", "leftovers", "rescue", "shutdown"]

logger = logging.getLogger("consumers.background")


def close(consumer: BackgroundConsumer, timeout: float) -> None:
    """Deliver for at most ``timeout`` seconds, then stop the worker (see ``close()``)."""
    with consumer._lock:
        if consumer._closing:
            return
        consumer._closing = True
    lifecycle.on_exit.discard(consumer)
    deadline = time.monotonic() + timeout
    # Retries end before the deadline, so the worker itself parks what they did
    # not deliver, with time left to write it to the spool.
    worker = consumer._worker
    worker.holds.end_retries_at(deadline - min(1.0, timeout / 4))
    spool = consumer._spool
    if worker.thread is None and spool is not None and (
            spool.has_data or spool.may_have_orphans()):
        consumer._start()  # deliver what is on disk first: ours, or a gone child's
    thread = worker.thread
    if thread is not None and threading.current_thread() is not thread:
        marker = consumer._queue_marker()
        # an outage will not end for us: what is left goes to the spool now
        while not marker.done.wait(0.02):
            if worker.outage.active or time.monotonic() >= deadline:
                break
            if not consumer._queue.items and worker.holds.ends_after(deadline):
                break  # a hold outlasts the deadline: the rest goes to the spool now
    with consumer._lock:
        consumer._stopping = True
        thread = worker.thread
    consumer._queue.notify_room()
    if thread is None:
        shutdown(worker)
        return
    worker.wake.set()
    thread.join(max(0.0, deadline - time.monotonic()))
    if thread.is_alive():
        logger.warning("the worker is still delivering after %.3g s; "
                       "taking over what it has not delivered", timeout)
        rescue(worker)


def leftovers(worker: Worker) -> list[Message]:
    """Everything not delivered: held, in inner, and still queued."""
    left: list[Message] = list(worker.held) + worker.holds.release(everything=True)
    worker.held = []
    messages, markers = worker.queue.take(1 << 62)
    worker.popped += len(messages)
    worker.waiters.extend(markers)
    return left + messages


def shutdown(worker: Worker) -> None:
    """Last pass on the worker (or in close() when no worker ran)."""
    with worker.lock:
        if worker.abandoned or worker.finished:
            return
    left = leftovers(worker)
    if left or worker.in_inner:
        # the queue's rest goes to inner first when the destination is up; what is
        # for a held endpoint goes to the spool (it would not be sent in time)
        if left and not worker.outage.active:
            free, left = worker.holds.split(left)
            if free:
                worker.hand_many(free)
        if worker.in_inner and not (not worker.outage.active and worker.flush_inner()):
            left = worker.inner.take_pending() + worker.held + left
            worker.in_inner, worker.held = [], []
    with worker.lock:
        if worker.abandoned:
            return
        worker.finished = True
    finish(worker.owner, left, close_inner=True)


def rescue(worker: Worker) -> None:
    """From close(), when the worker overran the deadline: take over what is left."""
    with worker.lock:
        if worker.finished:
            return
        worker.abandoned = worker.finished = True
    # may duplicate a batch the worker is still posting: spooled and delivered
    left = list(worker.in_inner) + leftovers(worker)
    finish(worker.owner, left, close_inner=False)


def finish(consumer: BackgroundConsumer, left: list[Message], *, close_inner: bool) -> None:
    """The end of delivery: park or report what is left, report drops, close."""
    worker = consumer._worker
    if left:
        if consumer._spool is not None and consumer._spool.write(left):
            with worker.lock:
                worker.spilled += len(left)
        else:
            with worker.lock:
                worker.failed += len(left)
            error = DeliveryError(
                f"{len(left)} message(s) undelivered when the background consumer "
                "closed, and no spool could take them", messages=left)
            worker.last_error.record(error)
            consumer._report_final(error, left)
    consumer._report_drops()
    worker.release_waiters()
    worker.holds.stop()
    if consumer._spool is not None:
        consumer._spool.close()
    if close_inner:
        try:
            consumer._inner.close()
        except Exception as error:
            consumer._report_final(error, consumer._inner.take_pending())
    lifecycle.live.discard(consumer)
