"""The delivery task of :class:`~consumers.aio.AsyncBackgroundConsumer`, on the event loop.

It takes slices of the queue, cuts each type's messages into requests and
follows a :class:`~consumers._protocol.batches.FlushPlan` for them: the same
rules as :class:`~consumers.buffered.BufferedConsumer`.  When the
destination fails past the retry budget the unsent messages go back to the
front of the queue, in order, and the task waits (``probe_interval``,
doubling up to ``max_probe_interval``) before probing with a small slice.
Messages in the spool (spilled when the queue was full or at close, written
ahead in durable mode) are read back (:mod:`consumers.aio._segments`) and
delivered once the destination answers; a segment leaves the disk only when
all of it was delivered or refused.

Every wait is an ``await``; the only disk IO (reading the spool back,
removing a delivered segment) runs on a thread.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from consumers._protocol.batches import FlushPlan, batches, message_size
from consumers._replay.lines import CorruptLineError
from consumers.aio._segments import replay_segment
from consumers.aio._turns import heavy_step
from consumers.errors import DeliveryError, Message, RecordsRejectedError

if TYPE_CHECKING:
    from consumers.aio.background import AsyncBackgroundConsumer

__all__ = ["Worker", "group"]

logger = logging.getLogger("consumers.aio")

#: Messages per slice while probing a destination that was down.
PROBE_SLICE = 100


def group(messages: Sequence[Message]) -> dict[str, list[str]]:
    """Each type's messages, in their order."""
    by_type: dict[str, list[str]] = {}
    for message_type, message_json in messages:
        by_type.setdefault(message_type, []).append(message_json)
    return by_type


def _reported_messages(error: DeliveryError) -> list[Message]:
    if isinstance(error, RecordsRejectedError):
        return [r.record for r in error.failed_records if r.record is not None]
    return list(error.messages)


class Worker:
    """Delivers the consumer's queue; one per consumer and loop."""

    def __init__(self, consumer: AsyncBackgroundConsumer) -> None:
        self.c = consumer
        self.outage = False
        self.probe = consumer.probe_interval
        self.last_error: Optional[DeliveryError] = None
        self.adopt_due = consumer.spool is not None  # at start, and after each outage
        # durable mode: what send() had written when the open segment was last sealed
        self.sealed_written, self.sealed_at = 0, time.monotonic()

    async def run(self) -> None:
        c = self.c
        transport = getattr(c.inner, "transport", None)
        if transport is not None and hasattr(transport, "open"):
            await transport.open()
        if c.durable and c.spool is not None:
            await asyncio.to_thread(c.spool.prepare)
        while True:
            if not c.urgent and (self.outage or not self._due()):
                await self._pause()
            c.wake.clear()
            try:
                await self._pass()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug of ours or of a sink must not end delivery
                logger.exception("the delivery task failed; it carries on")
                await asyncio.sleep(self.probe)
            c.notify_flushers()

    def _due(self) -> bool:
        c = self.c
        if c.durable and c.progress.flush_requested > 0 and c.spool_waiting:
            return True  # a flush waits for the spool: replay it again at once
        return c.pending > 0 and (c.progress.flush_requested > 0 or c.pending >= c.batch)

    async def _pause(self) -> None:
        c = self.c
        if self.outage:
            await asyncio.sleep(self.probe)
            self.probe = min(self.probe * 2, c.max_probe_interval)
            return
        await c.wake.wait(c.flush_interval)

    async def _pass(self) -> None:
        """Deliver what is queued (urgent first), then what the spool holds."""
        c = self.c
        while c.urgent:
            if not await self.deliver(group([c.urgent.popleft()]), queued=True):
                return
        # a round of requests now; more while full ones are queued (or a flush waits): the
        # few queued meanwhile wait for the next wake-up, not for a request of their own
        first = True
        while c.pending and (first or self._due()):
            if self.outage:  # probe with one small request
                if not await self.deliver(c.take(PROBE_SLICE), queued=True):
                    return
                continue
            first = False
            if not await self._deliver_at_once():
                return
        if c.spool is not None and c.spool.has_data:
            await self._replay_spool()
        if self.adopt_due and not self.outage:
            self.adopt_due = False
            await self._adopt_orphans()

    async def _deliver_at_once(self) -> bool:
        """Post up to ``max_in_flight`` slices at once (a slow destination answers in parallel).

        Each slice is taken, cut into requests and encoded in turns of the loop
        of their own (:func:`~consumers.aio._turns.heavy_step`).
        What any of them did not send goes back to the front of the queue in
        the slices' order, also when the task is cancelled meanwhile.
        """
        c = self.c
        kept: list[list[Message]] = []
        tasks: list[asyncio.Task[bool]] = []
        try:
            while len(tasks) < c.max_in_flight and self._another_slice(bool(tasks)):
                await heavy_step()  # taking a slice is a step of its own
                if not self._another_slice(bool(tasks)):
                    break
                keep: list[Message] = []
                kept.append(keep)
                c.wake.clear()  # a wake-up for the messages this slice takes is answered
                tasks.append(asyncio.ensure_future(
                    self.deliver(c.take(c.batch), queued=True, keep=keep)))
            results = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)  # their put-backs
            raise
        finally:
            c.put_back([m for unsent in kept for m in unsent])
        if not all(results):
            self.outage = True  # another slice's success does not end the outage
            return False
        return True

    def _another_slice(self, started: bool) -> bool:
        """Whether to start a slice now: the first of a round; then full ones (or on flush)."""
        c = self.c
        if not started or c.progress.flush_requested:
            return c.pending > 0
        return c.pending >= c.batch  # not the few queued since the round began

    async def deliver(self, by_type: dict[str, list[str]], *, queued: bool,
                      keep: Optional[list[Message]] = None) -> bool:
        """Send each type's messages; False if the destination failed (unsent put back).

        ``queued``: the items came from the queue (else from the spool, where
        they stay until delivered).  ``keep``: where the unsent go instead of
        the queue (the caller puts them back).
        """
        c = self.c
        types = list(by_type)
        for index, message_type in enumerate(types):
            await heavy_step()  # cutting the messages into requests
            messages = by_type[message_type]
            count, max_bytes = c.inner.limits(message_type)
            size = getattr(c.inner, "size", message_size)
            plan = FlushPlan(message_type, batches(messages, count, max_bytes, size),
                             c.inner.rule)
            try:
                await self._follow(plan)
            finally:
                unsent = plan.unsent()
                if queued and unsent:
                    rest = [(message_type, m) for m in unsent]
                    rest += [(t, m) for t in types[index + 1:] for m in by_type[t]]
                    if keep is not None:
                        keep.extend(rest)
                    else:
                        c.put_back(rest)
                c.count_outcome(len(messages), plan.delivered, len(unsent), queued=queued)
            for error in plan.reported:
                c.report(error, _reported_messages(error))
            if plan.failure is not None:
                self._failed(plan.failure)
                return False
        if self.outage:
            logger.warning("destination answers again; delivering what was kept")
            self.adopt_due = self.c.spool is not None
        self.outage = False
        self.probe = c.probe_interval
        return True

    async def _follow(self, plan: FlushPlan) -> None:
        sender = self.c.inner
        while True:
            batch = plan.next_batch()
            if batch is None:
                return
            try:
                await sender.send_batch(plan.message_type, batch)
            except DeliveryError as exc:
                plan.failed(exc)
            else:
                plan.sent()

    def _failed(self, error: DeliveryError) -> None:
        self.last_error = error
        if not self.outage:
            self.c.stats_counts["outages"] += 1
            logger.warning("destination unavailable (%s); %d message(s) kept, retrying in "
                           "%.3g s", error, self.c.pending, self.probe)
        self.outage = True
        self.c.notify_flushers(failed=True)

    async def _replay_spool(self) -> None:
        spool = self.c.spool
        assert spool is not None
        if self._seal_due():
            spool.seal()
            if self.c.durable:  # the next segment opened here, not by send() on the loop
                await asyncio.to_thread(spool.prepare)
        for segment in spool.segments():
            count = await self._replay(segment)
            if count is None:
                return
            spool.read_back(count)
            self.c.stats_counts["replayed"] += count
            await asyncio.to_thread(spool.done, segment)

    def _seal_due(self) -> bool:
        """Whether to close the open segment for replay now.

        In durable mode only once it holds a request's worth, a flush waits,
        or it is ``flush_interval`` old: every segment is a folder and a file
        to make, and a read to start.
        """
        c = self.c
        if not c.durable:
            return True
        now = time.monotonic()
        if (c.written - self.sealed_written >= c.batch or c.progress.flush_requested > 0
                or now - self.sealed_at >= c.flush_interval):
            self.sealed_written, self.sealed_at = c.written, now
            return True
        return False

    async def _replay(self, segment: Path) -> Optional[int]:
        """Deliver a spool segment: how many messages it held; None if the destination failed.

        Its unreadable lines (torn, corrupt) are counted as refused and
        reported once all of it was delivered.
        """
        delivered, count, unreadable = await replay_segment(segment, self._deliver_kept,
                                                            self.c.batch)
        if not delivered:
            return None
        if unreadable:
            self.c.stats_counts["refused"] += unreadable
            self.c.report(CorruptLineError(f"{unreadable} line(s) of the spool segment "
                                           f"{segment} could not be read"), [])
        return count

    async def _deliver_kept(self, messages: list[Message]) -> bool:
        return await self.deliver(group(messages), queued=False)

    async def _adopt_orphans(self) -> None:
        """Deliver spool folders left by processes that are gone (a crash, an earlier run)."""
        spool = self.c.spool
        assert spool is not None
        for folder in spool.orphans():  # each is locked while handled here
            logger.info("replaying a spool left behind in %s", folder)
            for segment in sorted(p for p in folder.glob("seg-*") if p.is_dir()):
                count = await self._replay(segment)
                if count is None:
                    return
                self.c.stats_counts["replayed"] += count
                await asyncio.to_thread(shutil.rmtree, segment, True)
            await asyncio.to_thread(shutil.rmtree, folder, True)
