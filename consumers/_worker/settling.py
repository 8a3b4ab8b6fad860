"""Acknowledging entries, and copying the refused ones to the dead-letter stream.

Both happen in one transaction: an entry leaves the pending list only once it
was delivered or dead-lettered.  What was delivered but could not be
acknowledged (Redis went away) is acknowledged as soon as Redis answers again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from consumers._worker.entries import Entry

if TYPE_CHECKING:
    from consumers.redis_worker import StreamWorker

log = logging.getLogger("consumers.redis_worker")


class Settlement:
    """The acknowledgements of ``worker``, including those Redis did not take yet."""

    def __init__(self, worker: StreamWorker) -> None:
        self.worker = worker
        self.unsettled: list[tuple[list[str], list[tuple[Entry, str]]]] = []

    def settle(self, ids: list[str], dead: list[tuple[Entry, str]]) -> None:
        """Dead-letter ``dead`` and acknowledge ``ids``; raises what Redis raised."""
        if not ids:
            return
        try:
            self._write(ids, dead)
        except self.worker._redis.RedisError:
            # Delivered but not acked: ack as soon as Redis answers again.
            self.unsettled.append((ids, dead))
            raise

    def settle_leftovers(self) -> None:
        """Write what an earlier :meth:`settle` could not."""
        while self.unsettled:
            ids, dead = self.unsettled[0]
            self._write(ids, dead)
            self.unsettled.pop(0)

    def left(self) -> int:
        """How many delivered entries are still unacknowledged."""
        return sum(len(i) for i, _ in self.unsettled)

    def _write(self, ids: list[str], dead: list[tuple[Entry, str]]) -> None:
        w = self.worker
        pipe = w.client.pipeline(transaction=True)
        for entry, reason in dead:
            pipe.xadd(w.dead_letter_stream, {
                "type": entry.type, "message": entry.message, "reason": reason,
                "source_stream": w.stream, "source_id": entry.id,
                "group": w.group, "consumer": w.name,
            })
        pipe.xack(w.stream, w.group, *ids)
        pipe.execute()
        w.counters["dead_lettered"] += len(dead)
        for entry, reason in dead:
            log.warning("dead-lettered entry %s to %r: %s", entry.id, w.dead_letter_stream,
                        reason)
