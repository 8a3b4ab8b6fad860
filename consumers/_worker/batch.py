"""One batch, start to finish: sorted, delivered, settled, and what is left retried.

Delivered and dead entries are acknowledged; the rest of a batch whose
delivery failed stays this worker's, to be retried after the backoff; the rest
of a batch the consumer is not configured for is released to other workers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from consumers._pace import held_until
from consumers._worker.delivery import deliver
from consumers._worker.entries import text, triage

if TYPE_CHECKING:
    from consumers.redis_worker import StreamWorker

log = logging.getLogger("consumers.redis_worker")


def process(worker: StreamWorker, raw: Sequence[tuple[Any, Any]], worn: dict[str, int]) -> int:
    """Deliver one batch read from the stream; how many entries were delivered and acked.

    ``worn``: the ids of entries handed out too often, to dead-letter.  Raises
    the consumer's :class:`~consumers.errors.ConfigurationError` after
    settling what came before it, and Redis errors.
    """
    w = worker
    w.counters["batches"] += 1
    good, dead, gone = triage(raw, worn, w.max_deliveries)
    if gone:
        log.warning("%d pending entries were deleted from the stream; acking them", len(gone))
    outcome = deliver(w.consumer, good)
    dead += outcome.dead
    ids = [e.id for e in outcome.delivered] + [e.id for e, _ in dead] + gone
    w.counters["delivered"] += len(outcome.delivered)
    settled = set(ids)
    unsettled = [(i, f) for i, f in raw if text(i) not in settled]
    if outcome.failure is not None:
        w._reader.retry = unsettled
    w._settlement.settle(ids, dead)
    if outcome.misconfigured is not None:
        w._reader.retry = []
        w._reader.release(unsettled)
        raise outcome.misconfigured
    if outcome.failure is not None:
        w._backoff.fail(f"delivery failed, will retry: {outcome.failure}",
                        held_until(outcome.failure))
    else:
        w._backoff.recovered()
    return len(outcome.delivered)
