"""Workers that deliver a Redis stream of tuples through a consumer.

The consuming side of :class:`~consumers.redis_stream.RedisStreamSink`: any
number of workers, on any number of machines, share one consumer group::

    worker = StreamWorker("redis://queue:6379/0", BufferedConsumer(region="eu"),
                          stream="tracking", group="mixpanel")
    worker.run()          # until SIGTERM / stop()

Guarantees, in order of importance:

* An entry is acknowledged (``XACK``) only after the consumer confirmed its
  delivery, or after it was copied to the dead-letter stream.  Anything else
  stays in the group's pending list: a worker that dies holding entries has
  them reclaimed (``XAUTOCLAIM``) by the others after ``claim_idle_ms``.
  Delivery is at least once; Mixpanel drops the duplicates by ``$insert_id``.
* Messages the service refuses for what they are (strict /import
  ``failed_records``, a 400 or 413 on a single message, an entry that cannot
  be parsed) go to the dead-letter stream with the reason, never retried
  forever.  Transport failures are retried with backoff, the same entries.
* The stream is trimmed only below the oldest entry some group still needs
  (``XTRIM MINID``), never by length.
* A consumer that is not configured for an entry (``/import`` without
  credentials: :class:`~consumers.errors.ConfigurationError`) stops the
  worker: the error is raised out of :meth:`StreamWorker.run`, and that entry
  and the rest of its batch stay in the stream, unacknowledged and at once
  claimable by a worker that has the credentials.

The command line (``python -m consumers worker``) lives in :mod:`consumers.cli`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Optional, Union

from consumers._closing import Closing
from consumers._pace import pace_stats
from consumers._worker.backoff import Backoff
from consumers._worker.batch import process
from consumers._worker.delivery import SupportsSend as SupportsSend
from consumers._worker.delivery import take_pending
from consumers._worker.group import GroupReader
from consumers._worker.settling import Settlement
from consumers._worker.stats import stream_stats, trim_delivered
from consumers.redis_stream import connect, describe, import_redis

if TYPE_CHECKING:
    import redis

__all__ = ["StreamWorker", "stream_stats", "trim_delivered"]

log = logging.getLogger(__name__)


class StreamWorker(Closing):
    """Read a stream in a consumer group and deliver each entry through ``consumer``.

    ``consumer`` is any sink with ``send`` and ``flush`` (default: a
    ``BufferedConsumer()`` for the US region).  ``take_pending()`` is used,
    when the consumer has it, to clear what a failed flush left behind: the
    entries stay unacknowledged and are retried from the stream.
    """

    def __init__(
        self,
        client_or_url: Union[str, redis.Redis],
        consumer: Optional[SupportsSend] = None,
        *,
        stream: str = "tracking",
        group: str = "mixpanel",
        name: Optional[str] = None,
        batch_size: int = 500,
        claim_idle_ms: int = 60_000,
        dead_letter_stream: Optional[str] = None,
        block_ms: int = 1_000,
        trim_interval: float = 5.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        max_deliveries: int = 10,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
        if claim_idle_ms < 1:
            raise ValueError(f"claim_idle_ms must be positive, got {claim_idle_ms!r}")
        self._redis = import_redis()
        self._where = describe(client_or_url)
        # The socket timeout must outlast a blocked XREADGROUP.
        self.client, self._owns_client = connect(
            client_or_url, timeout=max(10.0, block_ms / 1000 + 5.0)
        )
        self._owns_consumer = consumer is None
        if consumer is None:
            from consumers.buffered import BufferedConsumer

            consumer = BufferedConsumer()
        self.consumer = consumer
        self.stream = stream
        self.group = group
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.batch_size = batch_size
        self.claim_idle_ms = claim_idle_ms
        self.dead_letter_stream = dead_letter_stream or f"{stream}:dead"
        self.block_ms = block_ms
        self.trim_interval = trim_interval
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.max_deliveries = max_deliveries
        self.counters = {
            "delivered": 0, "dead_lettered": 0, "reclaimed": 0, "batches": 0,
            "failures": 0, "trimmed": 0,
        }
        self.last_error: Optional[str] = None
        self._reader = GroupReader(self)
        self._next_trim = 0.0
        self._backoff = Backoff(self)
        self._settlement = Settlement(self)
        self._stop = threading.Event()

    def __repr__(self) -> str:
        return (
            f"StreamWorker({self._where!r}, stream={self.stream!r}, group={self.group!r}, "
            f"name={self.name!r}, consumer={type(self.consumer).__name__})"
        )

    # -- running -----------------------------------------------------------------

    def run(self, stop_event: Optional[threading.Event] = None) -> None:
        """Deliver until ``stop_event`` (or :meth:`stop`) is set.

        The batch in flight is finished first: what was delivered is
        acknowledged, the rest stays pending for a retry or another worker.
        Redis or the service being unreachable is retried with backoff (a
        warning each time), for as long as it lasts.  Raises
        :class:`~consumers.errors.ConfigurationError` when the consumer cannot
        deliver an entry as configured; the entries not delivered stay pending.
        """
        if stop_event is not None:
            self._stop = stop_event
        log.info("%r started", self)
        try:
            while not self._stop.is_set():
                self.run_once()
                delay = self._backoff.retry_at - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
        finally:
            self._finish()
            log.info("%r stopped: %s", self, self.counters)

    def drain(
        self, stop_event: Optional[threading.Event] = None, *, give_up_after: float = 60.0
    ) -> bool:
        """Deliver until the group has nothing left to read or retry; True when it has.

        Returns False when stopped first, or when Redis or the service kept
        failing for ``give_up_after`` seconds (see :attr:`last_error`); what
        was not delivered stays pending in the stream.  Raises like :meth:`run`.
        """
        if give_up_after <= 0:
            raise ValueError(f"give_up_after must be positive, got {give_up_after!r}")
        if stop_event is not None:
            self._stop = stop_event
        log.info("%r draining", self)
        try:
            while not self._stop.is_set():
                delivered = self.run_once()
                if self._backoff.failing_since is None:
                    if delivered == 0 and self._drained():
                        return True
                    continue
                failing = time.monotonic() - self._backoff.failing_since
                if failing >= give_up_after:
                    log.error("giving up after %.0f s of failures: %s", failing, self.last_error)
                    return False
                delay = min(self._backoff.retry_at - time.monotonic(), give_up_after - failing)
                if delay > 0:
                    self._stop.wait(delay)
            return False
        finally:
            self._finish()
            log.info("%r stopped: %s", self, self.counters)

    def _drained(self) -> bool:
        try:
            info = stream_stats(self.client, self.stream, self.group)
        except self._redis.RedisError as exc:
            self._backoff.fail(f"Redis at {self._where} unavailable: {exc}")
            return False
        return bool(info["lag"] == 0 and info["pending"] == 0)

    def stop(self) -> None:
        """Ask :meth:`run` to return after the batch in flight."""
        self._stop.set()

    def run_once(self) -> int:
        """Read one batch (own pending first, then reclaimed, then new) and deliver it.

        Returns how many entries were delivered and acknowledged.  Never
        sleeps except in a blocked ``XREADGROUP`` (``block_ms``); after a
        failure :meth:`run` waits out the backoff.
        """
        try:
            self._settlement.settle_leftovers()
            self._reader.ensure_group()
            self._maintain()
            entries, source = self._reader.next_batch()
            if not entries:
                self._backoff.recovered()
                return 0
            worn: dict[str, int] = {}
            if source == "claimed":
                self.counters["reclaimed"] += len(entries)
                worn = self._reader.worn_out(entries)
            return process(self, entries, worn)
        except self._redis.RedisError as exc:
            # Whatever this worker still holds is in its pending list: start from there.
            self._reader.restart()
            if not isinstance(exc, self._redis.ResponseError):
                self._backoff.fail(f"Redis at {self._where} unavailable: {exc}")
                return 0
            if "NOGROUP" in str(exc):
                log.warning("consumer group %r vanished; creating it again", self.group)
                self._reader.group_ready = False
            self._backoff.fail(f"Redis refused a command: {exc}")
        return 0

    def close(self) -> None:
        """Release the Redis client and the default consumer (if this worker made them)."""
        if self._owns_consumer:
            close = getattr(self.consumer, "close", None)
            if close is not None:
                close()
        if self._owns_client:
            self.client.close()

    # -- stopping ----------------------------------------------------------------

    def _finish(self) -> None:
        try:
            self._settlement.settle_leftovers()
        except self._redis.RedisError as exc:
            log.warning("could not ack %d delivered entries before stopping (%s); they "
                        "will be delivered again", self._settlement.left(), exc)
        left = take_pending(self.consumer)
        if left:
            log.warning("%d messages left undelivered in the consumer; they stay pending in "
                        "the stream", len(left))

    # -- housekeeping ------------------------------------------------------------

    def _maintain(self) -> None:
        now = time.monotonic()
        if now < self._next_trim:
            return
        self._next_trim = now + self.trim_interval
        self.counters["trimmed"] += trim_delivered(self.client, self.stream)

    def stats(self) -> dict[str, Any]:
        """The group's progress plus this worker's counters (JSON-ready)."""
        info = stream_stats(self.client, self.stream, self.group, self.dead_letter_stream)
        info["worker"] = {"name": self.name, **self.counters, **pace_stats(self.consumer),
                          "last_error": self.last_error}
        return info
