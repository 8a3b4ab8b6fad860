"""When the destination is down: which errors mean an outage, and when to probe again."""

from __future__ import annotations

import logging
import time

from consumers._pace import held_until
from consumers.errors import RefusedError, TransportError

__all__ = ["Outage", "is_transient"]

logger = logging.getLogger("consumers.background")


def is_transient(error: BaseException) -> bool:
    """An outage (worth keeping and retrying later), not a refusal of these messages."""
    if isinstance(error, TransportError):
        return True
    if isinstance(error, RefusedError):
        return error.status == 429 or error.status >= 500
    return False


class Outage:
    """Probe schedule: ``interval`` after the first failure, doubling up to ``max_interval``.

    When the service said how long to wait (``Retry-After``, remembered by the
    transport's pace), the next probe is at that moment instead: its word,
    not our guess, and the backoff does not grow.
    """

    def __init__(self, interval: float, max_interval: float) -> None:
        self.interval = interval
        self.max_interval = max(interval, max_interval)
        self.active = False
        self.count = 0  # transient failures seen; a change means "stop and back off"
        self.backoff = interval
        self.next_probe = 0.0

    def failed(self, error: BaseException, where: str) -> None:
        self.count += 1
        now = time.monotonic()
        until = held_until(error)
        if until is not None and until <= now:
            until = None
        if not self.active:
            if until is not None:
                logger.warning("destination rate limited (%s); %s, trying again in %.3g s "
                               "as it asked", error, where, until - now)
            else:
                logger.warning("destination unavailable (%s); %s, probing every %.3g to "
                               "%.3g s", error, where, self.interval, self.max_interval)
            self.active = True
            self.backoff = self.interval
        elif until is None:
            self.backoff = min(self.backoff * 2, self.max_interval)
        self.next_probe = now + self.backoff if until is None else until

    def probe_failed_quietly(self) -> None:
        """A probe failed without a delivery error being seen: back off anyway."""
        if self.next_probe <= time.monotonic():
            self.backoff = min(self.backoff * 2, self.max_interval)
            self.next_probe = time.monotonic() + self.backoff

    def due(self) -> bool:
        return time.monotonic() >= self.next_probe

    def ended(self) -> None:
        logger.info("destination reachable again")
        self.active = False
        self.backoff = self.interval
