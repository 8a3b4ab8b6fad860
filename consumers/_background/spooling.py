"""Reading the spool back: this process's segments, and folders left by processes that are gone.

Each segment is delivered with :func:`consumers.replaying.replay` into a
:class:`ReplaySink`, the worker's own delivery path: ``flush()`` confirms a
batch (replay then moves its checkpoint), a failure raises so replay stops
and the unconfirmed batch stays on disk.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from consumers.errors import DeliveryError

if TYPE_CHECKING:
    from consumers._background.worker import Worker

__all__ = ["ReplaySink", "adopt_orphans", "replay_spool"]

logger = logging.getLogger("consumers.background")

#: Messages per replayed batch while probing a destination that was down.
PROBE_BATCH = 100


def replay_spool(worker: Worker) -> bool:
    """Replay complete segments into inner; False if the destination failed again."""
    spool = worker.spool
    assert spool is not None
    spool.seal()
    for segment in spool.segments():
        if not _replay_folder(worker, segment, own=True):
            return False
    return True


def adopt_orphans(worker: Worker) -> None:
    """Deliver folders under the spool root whose processes are gone (a crash, a fork child)."""
    spool = worker.spool
    if spool is None or worker.outage.active:
        return
    for folder in spool.orphans():
        logger.info("replaying a spool left behind in %s", folder)
        for segment in sorted(p for p in folder.glob("seg-*") if p.is_dir()):
            if not _replay_folder(worker, segment, own=False):
                return
        shutil.rmtree(folder, ignore_errors=True)


def _replay_folder(worker: Worker, folder: Path, *, own: bool) -> bool:
    """Deliver one spool segment; False (and it stays on disk) if delivery failed."""
    from consumers.replaying import replay

    if (worker.in_inner or worker.held) and not worker.flush_inner():
        return False
    outages = worker.outage.count
    sink = ReplaySink(worker, own)
    # a probe of a destination that was down sends small batches: most probes fail
    batch = min(worker.inner.batch, PROBE_BATCH) if worker.outage.active else worker.inner.batch
    worker.replaying = True
    try:
        result = replay(folder, sink, batch_size=batch)
    finally:
        worker.replaying = False
    if result.error is not None or worker.outage.count != outages:
        return False
    if result.torn:
        logger.warning("%d torn line(s) left in %s", result.torn, folder)
    if own:
        assert worker.spool is not None
        worker.spool.done(folder)
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return True


class _ReplayStopped(DeliveryError):
    """Tells replay the destination failed: stop, keep the checkpoint where it is."""


class ReplaySink:
    """The sink a spool segment is replayed into: the worker's own delivery path."""

    def __init__(self, worker: Worker, own: bool) -> None:
        self._worker = worker
        self._own = own
        self._outages = worker.outage.count
        self._unconfirmed = 0
        self._batch: list[tuple[str, str]] = []  # handed over whole at flush(), as a slice

    def __call__(self, message_type: str, message_json: str) -> None:
        worker = self._worker
        if worker.outage.count != self._outages or worker.abandoned:
            raise _ReplayStopped("destination unavailable")
        self._batch.append((message_type, message_json))
        self._unconfirmed += 1

    def flush(self) -> None:
        worker = self._worker
        batch, self._batch = self._batch, []
        if batch and worker.outage.count == self._outages:
            worker.hand_many(batch)
        if worker.outage.count != self._outages or not worker.flush_inner():
            raise _ReplayStopped("destination unavailable")
        with worker.lock:
            worker.replayed += self._unconfirmed
        if self._own and worker.spool is not None:
            worker.spool.read_back(self._unconfirmed)
        self._unconfirmed = 0
