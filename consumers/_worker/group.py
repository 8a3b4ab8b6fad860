"""Reading a worker's batches from the consumer group, and claiming others' entries.

A batch comes from, in order: the entries of a failed delivery (still this
worker's), this worker's own pending list (after a restart or a Redis error),
entries idle in dead or stalled workers' lists (``XAUTOCLAIM``), new entries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from consumers._worker.entries import entries_of, id_key, text

if TYPE_CHECKING:
    from consumers.redis_worker import StreamWorker

log = logging.getLogger("consumers.redis_worker")


class GroupReader:
    """Where the next batch of ``worker`` comes from, and the cursors to get it."""

    def __init__(self, worker: StreamWorker) -> None:
        self.worker = worker
        self.group_ready = False
        self.own_pending_first = True  # a restarted worker first retries its own PEL
        self.pending_cursor = "0"
        self.retry: list[tuple[Any, Any]] = []  # entries of a failed delivery, still ours
        self.claim_cursor = "0-0"
        self.next_claim = 0.0

    def restart(self) -> None:
        """Read this worker's own pending list again first (what it still holds)."""
        self.own_pending_first = True
        self.pending_cursor = "0"

    def ensure_group(self) -> None:
        """Create the consumer group unless it is known to exist."""
        if self.group_ready:
            return
        w = self.worker
        try:
            # From the start of the stream: tuples queued before any worker existed count.
            w.client.xgroup_create(w.stream, w.group, id="0", mkstream=True)
            log.info("created consumer group %r on stream %r", w.group, w.stream)
        except w._redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self.group_ready = True

    def next_batch(self) -> tuple[list[tuple[str, Any]], str]:
        """The next entries and where they came from: retry, own, claimed or new."""
        w = self.worker
        if self.retry:
            return self._take_retry(), "retry"
        if self.own_pending_first:
            entries = entries_of(w.client.xreadgroup(
                w.group, w.name, {w.stream: self.pending_cursor},
                count=w.batch_size,
            ))
            if entries:
                self.pending_cursor = text(entries[-1][0])
                return entries, "own"
            self.own_pending_first = False
            self.pending_cursor = "0"
        now = time.monotonic()
        if now >= self.next_claim:
            self.next_claim = now + max(0.05, w.claim_idle_ms / 2000)
            claimed = self._claim()
            if claimed:
                return claimed, "claimed"
        return entries_of(w.client.xreadgroup(
            w.group, w.name, {w.stream: ">"}, count=w.batch_size,
            block=w.block_ms,
        )), "new"

    def _take_retry(self) -> list[tuple[Any, Any]]:
        # XCLAIM JUSTID resets the idle time without counting a delivery, so a long
        # outage neither lets other workers grab the entries nor wears them out;
        # entries another worker took meanwhile (or acked) are left to it.
        w = self.worker
        retry, self.retry = self.retry, []
        ids = [raw_id for raw_id, _ in retry]
        kept: Any = w.client.xclaim(
            w.stream, w.group, w.name, 0, ids, justid=True,
        )
        mine = {text(i) for i in kept}
        return [(raw_id, fields) for raw_id, fields in retry if text(raw_id) in mine]

    def _claim(self) -> list[tuple[str, Any]]:
        w = self.worker
        reply: Any = w.client.xautoclaim(
            w.stream, w.group, w.name, w.claim_idle_ms,
            start_id=self.claim_cursor, count=w.batch_size,
        )
        self.claim_cursor = text(reply[0])
        claimed = list(reply[1])
        if claimed:
            log.warning(
                "reclaimed %d entries idle for %d ms or more (a worker died or stalled)",
                len(claimed), w.claim_idle_ms,
            )
            # Reclaimed ids may be scattered: the next cycles look for more at once.
            self.next_claim = 0.0
        return claimed

    def worn_out(self, claimed: list[tuple[Any, Any]]) -> dict[str, int]:
        """Reclaimed entries handed out more than ``max_deliveries`` times."""
        w = self.worker
        ids = {text(raw_id) for raw_id, _ in claimed}
        ordered = sorted(ids, key=id_key)
        rows: Any = w.client.xpending_range(
            w.stream, w.group, min=ordered[0], max=ordered[-1],
            count=len(ids) * 4 + 100, consumername=w.name,
        )
        return {
            text(row["message_id"]): int(row["times_delivered"])
            for row in rows
            if text(row["message_id"]) in ids and int(row["times_delivered"]) > w.max_deliveries
        }

    def release(self, raw: Sequence[tuple[Any, Any]]) -> None:
        """Make entries this worker cannot deliver claimable by any other worker at once."""
        if not raw:
            return
        w = self.worker
        ids = [raw_id for raw_id, _ in raw]
        # IDLE makes them look long abandoned; JUSTID does not count a delivery.
        w.client.xclaim(w.stream, w.group, w.name, 0, ids,
                        idle=w.claim_idle_ms, justid=True)
        log.error("stopping: %d entries left unacknowledged in %r for a worker that can "
                  "deliver them", len(ids), w.stream)
