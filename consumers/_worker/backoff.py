"""The pace of a worker's retries: exponential backoff with jitter, or the
service's own hold (a 429's ``Retry-After``) when it gave one."""

from __future__ import annotations

import logging
import random
import time
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from consumers.redis_worker import StreamWorker

log = logging.getLogger("consumers.redis_worker")


class Backoff:
    """When ``worker`` may try again, and since when it has been failing."""

    def __init__(self, worker: StreamWorker) -> None:
        self.worker = worker
        self.delay = 0.0
        self.retry_at = 0.0
        self.failing_since: Optional[float] = None

    def recovered(self) -> None:
        """A cycle worked: no more waiting."""
        self.delay = 0.0
        self.retry_at = 0.0
        if self.failing_since is not None:
            log.info("%r working again", self.worker)
        self.failing_since = None

    def fail(self, text: str, held: Optional[float] = None) -> None:
        """Count and log a failure; wait longer (or until ``held``) before the next try."""
        w = self.worker
        if self.failing_since is None:
            self.failing_since = time.monotonic()
        w.counters["failures"] += 1
        w.last_error = text
        # the first failure after a success is news; the retries of one outage are not
        level = logging.WARNING if self.delay == 0.0 else logging.DEBUG
        self.delay = min(w.backoff_max, max(w.backoff_initial, self.delay * 2))
        delay = self.delay * (0.5 + random.random() / 2)
        if held is not None and held > time.monotonic():  # the service said how long
            delay = held - time.monotonic()
        self.retry_at = time.monotonic() + delay
        log.log(level, "%s; retrying in %.1f s", text, delay)
