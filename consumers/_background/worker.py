"""The worker thread: queue slices into the wrapped sink, outages into the spool, then exit.

The worker hands the inner sink whole slices of the queue (``Inner.batch``
messages at a time) and flushes it once the queue is empty.  While callers
keep appending it does not compete with them for the interpreter: it waits
until they pause for one :data:`POLL` interval, the queue passes its
high-water mark, ``flush_interval`` has passed since the oldest waiting
message arrived, or someone asks (``flush()``, ``close()``).

How a failed hand-over is sorted is :mod:`consumers._background.failures`;
the last pass, at close, is :mod:`consumers._background.ending`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Optional

from consumers import _runtime
from consumers._background import ending, failures, lifecycle, spooling
from consumers._background.counters import Lag, LastError, retried
from consumers._background.holds import Holds
from consumers._background.outage import Outage
from consumers._background.queue import Marker
from consumers.errors import DeliveryError, Message

if TYPE_CHECKING:
    from consumers.background import BackgroundConsumer

__all__ = ["POLL", "Worker"]

logger = logging.getLogger("consumers.background")

#: How often a worker with messages waiting looks whether the callers paused.
POLL = 0.02
#: Messages moved to the spool at once when the queue is nearly full.
SPILL_SLICE = 2000


class Worker:
    """Delivery state and loop of one background consumer (one per process)."""

    def __init__(self, owner: BackgroundConsumer) -> None:
        self.owner = owner
        self.queue = owner._queue
        self.inner = owner._inner
        self.spool = owner._spool
        self.outage = Outage(owner._probe_interval, owner._max_probe_interval)
        self.wake = threading.Event()
        self.lock = threading.Lock()  # counters, and the hand-over to close()'s rescue
        self.thread: Optional[threading.Thread] = None
        self.green: object = None  # the greenlet it runs in, under gevent or eventlet
        self.in_inner: list[Message] = []  # handed to inner since its last good flush
        self.held: list[Message] = []  # to resend first (the spool could not take them)
        self.waiters: list[Marker] = []
        # messages for endpoints the service put on hold: aside, while the others flow
        self.holds = Holds(self.inner, max(1024, owner._max_queue_bytes // 4))
        self.popped = self.delivered = self.failed = self.spilled = self.replayed = 0
        self.refused = 0  # of failed: refused by the service
        self.retried_base = retried(self.inner.sink)  # the transport may predate us (a fork)
        self.last_error = LastError()
        self.lag = Lag()
        self.backlog_since: Optional[float] = None  # when the oldest message out of the queue
        # and not yet delivered was queued (at the latest)
        self.adopted = False
        self.replaying = False
        self.abandoned = False  # close() gave up waiting and took over what was left
        self.finished = False
        self._woken = False
        self._last_added = -1
        self._waiting_since: Optional[float] = None

    # -- the loop --------------------------------------------------------------------
    def start(self) -> None:
        self.thread = threading.Thread(target=self.run, name="tracking-background-consumer",
                                       daemon=True)
        self.thread.start()

    def run(self) -> None:
        self.green = _runtime.current_greenlet()
        lifecycle.forget_inherited(self.owner)
        try:
            while not self.owner._stopping and not self.abandoned:
                try:
                    self.step()
                except Exception:  # a bug here must not end delivery for the process
                    logger.exception("unexpected error in the worker")
                    self.wake.wait(self.outage.interval)
                self.owner._report_drops()
                self.note_backlog()
                self.sleep()
        finally:
            ending.shutdown(self)

    def note_backlog(self) -> None:
        """For the delivery lag: what callers queued by now, and whether anything waits."""
        self.lag.note(self.queue.added)
        if self.in_inner or self.held or self.holds.deferred or self._spool_waiting():
            if self.backlog_since is None:  # on disk from before (a crash, durable mode)
                self.backlog_since = time.monotonic()
        else:
            self.backlog_since = None

    def take(self, limit: int) -> list[Message]:
        """Up to ``limit`` messages off the queue; the flush markers met go to the waiters."""
        if self.backlog_since is None and self.queue.items:
            self.backlog_since = self.lag.queued_at(self.queue.removed)
        messages, markers = self.queue.take(limit)
        self.popped += len(messages)
        self.waiters.extend(markers)
        return messages

    def sleep(self) -> None:
        self.wake.clear()
        if self.owner._stopping or self.abandoned:
            return
        now = time.monotonic()
        if self.outage.active:
            timeout = self.outage.next_probe - now
        elif self.queue.items or self.in_inner or self._spool_waiting():
            timeout = POLL
        else:
            timeout = self.owner._flush_interval
        hold_ends = self.holds.next_end()
        if hold_ends is not None:
            timeout = min(timeout, hold_ends)
        self._woken = timeout <= 0 or self.wake.wait(timeout)

    def _spool_waiting(self) -> bool:
        return self.spool is not None and self.spool.has_data

    def _due(self) -> bool:
        """Whether to deliver now, or let the callers go on appending undisturbed."""
        added = self.queue.added + self.owner._written  # callers' activity, memory or disk
        quiet = added == self._last_added
        self._last_added = added
        if not (self.queue.items or self.in_inner or self._spool_waiting()):
            self._waiting_since = None
            return False
        now = time.monotonic()
        if self._waiting_since is None:
            self._waiting_since = now
        return (self._woken or quiet or self.owner._closing
                or now - self._waiting_since >= self.owner._flush_interval)

    def step(self) -> None:
        owner = self.owner
        if not self.adopted:
            self.adopted = True
            spooling.adopt_orphans(self)
        if self.outage.active:
            if owner._closing:
                owner._stopping = True  # the rest goes to the spool: no budget past close()
                return
            if not self.outage.due() or not self.probe():
                self.drain_to_spool()
                return
        if self.holds.deferred and self.holds.next_end() == 0:
            released = self.holds.release()  # their hold ended: deliver them now
            if released:
                self.hand_many(released)
        due = self._due()
        if (self.queue.items or self.in_inner) and due:
            self.deliver_queue()
            if self.outage.active:
                return
        if self.spool is not None and self.spool.has_data and not self.holds.active() and (
                self.waiters or (due and not self.queue.items)):
            if not spooling.replay_spool(self):
                if not self.outage.active:  # replay itself failed: pause as in an outage
                    self.outage.failed(RuntimeError("the spool could not be replayed"),
                                       "keeping it on disk")
                return
        if self.waiters:
            spooling.adopt_orphans(self)
        self.resolve_waiters()

    # -- delivering --------------------------------------------------------------------
    def deliver_queue(self) -> None:
        queue = self.queue
        spill_at = queue.max_bytes * 0.9
        while (queue.items and not self.outage.active and not self.abandoned
               and not self.holds.full):
            if (queue.nbytes > spill_at and self.owner._overflow == "spill"
                    and self.spool is not None and self.spool.writable):
                # callers are about to run out of room: the disk is faster than the network
                self.park(self.take(SPILL_SLICE))
                if not self.spool.writable:
                    break  # the disk refused them: the rest stays in the bounded queue
                continue
            messages = self.take(self.inner.batch_now())
            if messages and self.holds.pace is not None:
                messages, held = self.holds.split(messages)
                self.set_aside(held)
            if messages:
                self.hand_many(messages)
        if (self.in_inner or self.held) and not self.outage.active:
            self.flush_inner()
        if not queue.items and not self._spool_waiting():
            self._waiting_since = None
        if queue.nbytes < queue.max_bytes // 2:
            self.owner._shedding = False

    def hand(self, item: Message) -> None:
        """Give one message to inner (which may deliver a full batch right away)."""
        if not self.in_inner:
            self.first_unflushed = time.monotonic()
        self.in_inner.append(item)
        try:
            with self.inner.lock, self.holds.watching():
                self.inner.send(*item)
        except Exception as error:
            failures.inner_failed(self, error, current=item)

    def hand_many(self, messages: list[Message]) -> None:
        send_many = self.inner.send_many
        if send_many is None:
            for item in messages:
                self.hand(item)
            return
        self.in_inner.extend(messages)
        try:
            with self.inner.lock, self.holds.watching():
                send_many(messages)
        except DeliveryError as error:
            failures.inner_failed(self, error)
        except Exception:  # bad input in the slice (nothing was taken): one by one
            del self.in_inner[len(self.in_inner) - len(messages):]
            for item in messages:
                self.hand(item)

    def flush_inner(self) -> bool:
        """Deliver what inner holds (and messages to resend). False: an outage began."""
        outages = self.outage.count
        while self.outage.count == outages and not self.abandoned:
            if self.held:
                held, self.held = self.held, []
                self.hand_many(held)
                if self.outage.count != outages:
                    break
            try:
                with self.holds.watching():
                    self.inner.flush()
            except Exception as error:
                # a refusal removes the refused messages; go round for the others
                failures.inner_failed(self, error)
                continue
            self.settle_delivered()
            if not self.held:
                return True
        return False

    def settle_delivered(self) -> None:
        delivered = len(self.in_inner)
        if delivered:
            self.in_inner = []
            with self.lock:
                self.delivered += delivered

    def park(self, items: list[Message]) -> None:
        """Keep undelivered messages through an outage: on disk if possible."""
        if not items or self.abandoned:
            return
        if self.spool is not None and self.spool.write(items):
            with self.lock:
                self.spilled += len(items)
            return
        # bounded: the worker stops taking from the queue while the spool fails
        self.held.extend(items)

    def set_aside(self, items: list[Message]) -> None:
        """Keep messages for held endpoints until their hold ends: in memory, bounded
        (past the bound, on disk)."""
        if not items:
            return
        if self.holds.full and self.spool is not None and self.spool.writable:
            self.park(items)
            return
        self.holds.defer(items)

    def probe(self) -> bool:
        """One delivery attempt after an outage: held messages first, then the spool."""
        outages = self.outage.count
        ok = not self.held or self.flush_inner()
        ok = ok and not (self._spool_waiting() and not spooling.replay_spool(self))
        if not ok or self.outage.count != outages:
            self.outage.probe_failed_quietly()
            return False
        self.outage.ended()
        return True

    def drain_to_spool(self) -> None:
        """During an outage, move queued messages to disk so callers keep room."""
        while (self.queue.items and self.spool is not None and self.spool.writable
               and not self.abandoned):
            messages = self.take(SPILL_SLICE)
            if messages and not (self.spool.write(messages)):
                self.held.extend(messages)  # at most one slice: the loop stops here
                break
            with self.lock:
                self.spilled += len(messages)

    # -- flush requests -------------------------------------------------------------------
    def resolve_waiters(self) -> None:
        if not self.waiters or self.outage.active:
            return
        if self.queue.items or self.holds.deferred:
            return
        if (self.in_inner or self.held) and not self.flush_inner():
            return
        if self._spool_waiting():
            return
        waiters, self.waiters = self.waiters, []
        for marker in waiters:
            marker.ok = True
            marker.done.set()

    def release_waiters(self) -> None:
        for marker in self.waiters:
            marker.done.set()
        self.waiters = []
