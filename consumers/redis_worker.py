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

import json
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional, Protocol, Union

import attrs

from consumers._closing import Closing
from consumers._pace import held_until, pace_stats
from consumers.errors import (
    ConfigurationError,
    DeliveryError,
    Message,
    PayloadTooLargeError,
    RecordsRejectedError,
    RefusedError,
)
from consumers.redis_stream import connect, describe, import_redis

if TYPE_CHECKING:
    import redis

__all__ = ["StreamWorker", "stream_stats", "trim_delivered"]

log = logging.getLogger(__name__)

try:
    import orjson as _fast_json
except ImportError:  # pragma: no cover - orjson is the optional "fast" extra
    _fast_json = None  # type: ignore[assignment]


def _json_loads(text: str) -> Any:
    return _fast_json.loads(text) if _fast_json is not None else json.loads(text)

# Statuses that mean "this message is not acceptable", as opposed to "not now"
# (429, 5xx) or "not with these credentials / at this address" (401, 403, 404).
_MESSAGE_STATUSES = (200, 400, 413)


class SupportsSend(Protocol):
    """What the worker needs from a consumer (``take_pending`` is optional)."""

    def send(self, type: str, message_json: str) -> None: ...

    def flush(self) -> None: ...


@attrs.frozen
class _Entry:
    id: str
    type: str
    message: str

    @property
    def tuple(self) -> Message:
        return (self.type, self.message)


@attrs.define
class _Outcome:
    delivered: list[_Entry] = attrs.Factory(list)
    dead: list[tuple[_Entry, str]] = attrs.Factory(list)
    failure: Optional[DeliveryError] = None
    misconfigured: Optional[ConfigurationError] = None


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _next_id(entry_id: str) -> str:
    ms, seq = _id_key(entry_id)
    return f"{ms}-{seq + 1}"


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
        self._group_ready = False
        self._own_pending_first = True  # a restarted worker first retries its own PEL
        self._pending_cursor = "0"
        self._retry: list[tuple[Any, Any]] = []  # entries of a failed delivery, still ours
        self._claim_cursor = "0-0"
        self._next_claim = 0.0
        self._next_trim = 0.0
        self._backoff = 0.0
        self._retry_at = 0.0
        self._failing_since: Optional[float] = None
        self._unsettled: list[tuple[list[str], list[tuple[_Entry, str]]]] = []
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
                delay = self._retry_at - time.monotonic()
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
                if self._failing_since is None:
                    if delivered == 0 and self._drained():
                        return True
                    continue
                failing = time.monotonic() - self._failing_since
                if failing >= give_up_after:
                    log.error("giving up after %.0f s of failures: %s", failing, self.last_error)
                    return False
                delay = min(self._retry_at - time.monotonic(), give_up_after - failing)
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
            self._fail(f"Redis at {self._where} unavailable: {exc}")
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
            self._settle_leftovers()
            self._ensure_group()
            self._maintain()
            entries, source = self._next_batch()
            if not entries:
                self._recovered()
                return 0
            worn: dict[str, int] = {}
            if source == "claimed":
                self.counters["reclaimed"] += len(entries)
                worn = self._worn_out(entries)
            return self._process(entries, worn)
        except self._redis.RedisError as exc:
            # Whatever this worker still holds is in its pending list: start from there.
            self._own_pending_first = True
            self._pending_cursor = "0"
            if not isinstance(exc, self._redis.ResponseError):
                self._fail(f"Redis at {self._where} unavailable: {exc}")
                return 0
            if "NOGROUP" in str(exc):
                log.warning("consumer group %r vanished; creating it again", self.group)
                self._group_ready = False
            self._fail(f"Redis refused a command: {exc}")
        return 0

    def close(self) -> None:
        """Release the Redis client and the default consumer (if this worker made them)."""
        if self._owns_consumer:
            close = getattr(self.consumer, "close", None)
            if close is not None:
                close()
        if self._owns_client:
            self.client.close()

    # -- reading -----------------------------------------------------------------

    def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            # From the start of the stream: tuples queued before any worker existed count.
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
            log.info("created consumer group %r on stream %r", self.group, self.stream)
        except self._redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def _next_batch(self) -> tuple[list[tuple[str, Any]], str]:
        if self._retry:
            return self._take_retry(), "retry"
        if self._own_pending_first:
            entries = _entries_of(self.client.xreadgroup(
                self.group, self.name, {self.stream: self._pending_cursor},
                count=self.batch_size,
            ))
            if entries:
                self._pending_cursor = _text(entries[-1][0])
                return entries, "own"
            self._own_pending_first = False
            self._pending_cursor = "0"
        now = time.monotonic()
        if now >= self._next_claim:
            self._next_claim = now + max(0.05, self.claim_idle_ms / 2000)
            claimed = self._claim()
            if claimed:
                return claimed, "claimed"
        return _entries_of(self.client.xreadgroup(
            self.group, self.name, {self.stream: ">"}, count=self.batch_size,
            block=self.block_ms,
        )), "new"

    def _take_retry(self) -> list[tuple[Any, Any]]:
        # XCLAIM JUSTID resets the idle time without counting a delivery, so a long
        # outage neither lets other workers grab the entries nor wears them out;
        # entries another worker took meanwhile (or acked) are left to it.
        retry, self._retry = self._retry, []
        ids = [raw_id for raw_id, _ in retry]
        kept: Any = self.client.xclaim(
            self.stream, self.group, self.name, 0, ids, justid=True,
        )
        mine = {_text(i) for i in kept}
        return [(raw_id, fields) for raw_id, fields in retry if _text(raw_id) in mine]

    def _claim(self) -> list[tuple[str, Any]]:
        reply: Any = self.client.xautoclaim(
            self.stream, self.group, self.name, self.claim_idle_ms,
            start_id=self._claim_cursor, count=self.batch_size,
        )
        self._claim_cursor = _text(reply[0])
        claimed = list(reply[1])
        if claimed:
            log.warning(
                "reclaimed %d entries idle for %d ms or more (a worker died or stalled)",
                len(claimed), self.claim_idle_ms,
            )
            # Reclaimed ids may be scattered: the next cycles look for more at once.
            self._next_claim = 0.0
        return claimed

    def _worn_out(self, claimed: list[tuple[Any, Any]]) -> dict[str, int]:
        """Reclaimed entries handed out more than ``max_deliveries`` times."""
        ids = {_text(raw_id) for raw_id, _ in claimed}
        ordered = sorted(ids, key=_id_key)
        rows: Any = self.client.xpending_range(
            self.stream, self.group, min=ordered[0], max=ordered[-1],
            count=len(ids) * 4 + 100, consumername=self.name,
        )
        return {
            _text(row["message_id"]): int(row["times_delivered"])
            for row in rows
            if _text(row["message_id"]) in ids and int(row["times_delivered"]) > self.max_deliveries
        }

    # -- delivering --------------------------------------------------------------

    def _process(
        self, raw: Sequence[tuple[Any, Any]], worn: Optional[dict[str, int]] = None
    ) -> int:
        self.counters["batches"] += 1
        good: list[_Entry] = []
        dead: list[tuple[_Entry, str]] = []
        gone: list[str] = []
        for raw_id, fields in raw:
            entry_id = _text(raw_id)
            if fields is None:
                gone.append(entry_id)
                continue
            entry, reason = _parse(entry_id, fields)
            if reason is None and worn and entry_id in worn:
                # Entries that keep coming back from dead workers may be what kills them.
                reason = (f"handed to workers {worn[entry_id]} times without an ack "
                          f"(max_deliveries={self.max_deliveries})")
            if reason is None:
                good.append(entry)
            else:
                dead.append((entry, reason))
        if gone:
            log.warning("%d pending entries were deleted from the stream; acking them", len(gone))
        outcome = self._deliver(good)
        dead += outcome.dead
        ids = [e.id for e in outcome.delivered] + [e.id for e, _ in dead] + gone
        self.counters["delivered"] += len(outcome.delivered)
        settled = set(ids)
        unsettled = [(i, f) for i, f in raw if _text(i) not in settled]
        if outcome.failure is not None:
            self._retry = unsettled
        self._settle(ids, dead)
        if outcome.misconfigured is not None:
            self._retry = []
            self._release(unsettled)
            raise outcome.misconfigured
        if outcome.failure is not None:
            self._fail(f"delivery failed, will retry: {outcome.failure}",
                       held_until(outcome.failure))
        else:
            self._recovered()
        return len(outcome.delivered)

    def _release(self, raw: Sequence[tuple[Any, Any]]) -> None:
        """Make entries this worker cannot deliver claimable by any other worker at once."""
        if not raw:
            return
        ids = [raw_id for raw_id, _ in raw]
        # IDLE makes them look long abandoned; JUSTID does not count a delivery.
        self.client.xclaim(self.stream, self.group, self.name, 0, ids,
                           idle=self.claim_idle_ms, justid=True)
        log.error("stopping: %d entries left unacknowledged in %r for a worker that can "
                  "deliver them", len(ids), self.stream)

    def _deliver(self, entries: list[_Entry]) -> _Outcome:
        """Hand ``entries`` to the consumer and flush; sort them by what happened."""
        outcome = _Outcome()
        refused: dict[Message, str] = {}
        suspects: set[Message] = set()
        handed: list[_Entry] = []
        uncertain: Optional[_Entry] = None
        for entry in entries:
            try:
                self.consumer.send(entry.type, entry.message)
            except ConfigurationError as exc:
                # Not the message's fault: deliver what came before it, then stop.
                outcome.misconfigured = exc
                break
            except (TypeError, ValueError) as exc:
                outcome.dead.append((entry, f"the consumer refused the message: {exc}"))
                continue
            except DeliveryError as exc:
                handed.append(entry)
                if not _absorb(exc, refused, suspects):
                    outcome.failure = exc
                    uncertain = entry
                    break
                continue
            handed.append(entry)
        if outcome.failure is None:
            outcome.failure = self._flush(refused, suspects)
        unsent = set(self._take_pending()) if outcome.failure is not None else set()
        if suspects and outcome.failure is None:
            outcome.failure = self._isolate(suspects, refused)
            unsent |= suspects
        for entry in handed:
            key = entry.tuple
            if key in refused:
                outcome.dead.append((entry, refused[key]))
            elif key not in unsent and key not in suspects:
                outcome.delivered.append(entry)
        if uncertain is not None and outcome.delivered and outcome.delivered[-1] is uncertain:
            # The entry whose send raised may never have reached the buffer: send it again.
            outcome.delivered.pop()
        return outcome

    def _flush(
        self, refused: dict[Message, str], suspects: set[Message]
    ) -> Optional[DeliveryError]:
        # A flush can stop at the first type whose batch was refused: go on until empty.
        for _ in range(16):
            try:
                self.consumer.flush()
            except DeliveryError as exc:
                if not _absorb(exc, refused, suspects):
                    return exc
                continue
            pending = getattr(self.consumer, "pending", None)
            if pending is None or not pending():
                return None
        return None

    def _isolate(
        self, suspects: set[Message], refused: dict[Message, str]
    ) -> Optional[DeliveryError]:
        """Resend the messages of a refused batch one at a time to find the bad ones."""
        for message in sorted(suspects):
            try:
                self.consumer.send(*message)
                self.consumer.flush()
            except (TypeError, ValueError) as exc:
                refused[message] = f"the consumer refused the message: {exc}"
            except DeliveryError as exc:
                if not _absorb(exc, refused, set()) and message not in refused:
                    self._take_pending()
                    return exc
                refused.setdefault(message, _reason(exc))
            suspects.discard(message)
        return None

    def _take_pending(self) -> list[Message]:
        take = getattr(self.consumer, "take_pending", None)
        return list(take()) if take is not None else []

    # -- acknowledging -----------------------------------------------------------

    def _settle(self, ids: list[str], dead: list[tuple[_Entry, str]]) -> None:
        if not ids:
            return
        try:
            self._write_settlement(ids, dead)
        except self._redis.RedisError:
            # Delivered but not acked: ack as soon as Redis answers again.
            self._unsettled.append((ids, dead))
            raise

    def _settle_leftovers(self) -> None:
        while self._unsettled:
            ids, dead = self._unsettled[0]
            self._write_settlement(ids, dead)
            self._unsettled.pop(0)

    def _write_settlement(self, ids: list[str], dead: list[tuple[_Entry, str]]) -> None:
        pipe = self.client.pipeline(transaction=True)
        for entry, reason in dead:
            pipe.xadd(self.dead_letter_stream, {
                "type": entry.type, "message": entry.message, "reason": reason,
                "source_stream": self.stream, "source_id": entry.id,
                "group": self.group, "consumer": self.name,
            })
        pipe.xack(self.stream, self.group, *ids)
        pipe.execute()
        self.counters["dead_lettered"] += len(dead)
        for entry, reason in dead:
            log.warning("dead-lettered entry %s to %r: %s", entry.id, self.dead_letter_stream,
                        reason)

    def _recovered(self) -> None:
        self._backoff = 0.0
        self._retry_at = 0.0
        if self._failing_since is not None:
            log.info("%r working again", self)
        self._failing_since = None

    def _fail(self, text: str, held: Optional[float] = None) -> None:
        if self._failing_since is None:
            self._failing_since = time.monotonic()
        self.counters["failures"] += 1
        self.last_error = text
        # the first failure after a success is news; the retries of one outage are not
        level = logging.WARNING if self._backoff == 0.0 else logging.DEBUG
        self._backoff = min(self.backoff_max, max(self.backoff_initial, self._backoff * 2))
        delay = self._backoff * (0.5 + random.random() / 2)
        if held is not None and held > time.monotonic():  # the service said how long
            delay = held - time.monotonic()
        self._retry_at = time.monotonic() + delay
        log.log(level, "%s; retrying in %.1f s", text, delay)

    def _finish(self) -> None:
        try:
            self._settle_leftovers()
        except self._redis.RedisError as exc:
            log.warning("could not ack %d delivered entries before stopping (%s); they "
                        "will be delivered again", sum(len(i) for i, _ in self._unsettled), exc)
        left = self._take_pending()
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


def _entries_of(reply: Any) -> list[tuple[Any, Any]]:
    """The entries of a one-stream XREADGROUP reply (RESP2 list or RESP3 map)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        streams = list(reply.values())
        return list(streams[0][0]) if streams and streams[0] else []
    return list(reply[0][1])


def _parse(entry_id: str, fields: dict[Any, Any]) -> tuple[_Entry, Optional[str]]:
    decoded: dict[str, str] = {}
    try:
        for key, value in fields.items():
            decoded[_text(key)] = _text(value)
    except UnicodeDecodeError:
        raw = {_text_lossy(k): _text_lossy(v) for k, v in fields.items()}
        return _Entry(entry_id, raw.get("type", ""), raw.get("message", "")), "not UTF-8"
    type_ = decoded.get("type")
    message = decoded.get("message")
    if not type_ or message is None:
        missing = "type" if not type_ else "message"
        raw_text = json.dumps(decoded, ensure_ascii=False)[:2000]
        return _Entry(entry_id, type_ or "", message if message is not None else raw_text), (
            f"malformed entry: no {missing!r} field"
        )
    entry = _Entry(entry_id, type_, message)
    try:
        parsed = _json_loads(message)
    except ValueError as exc:
        return entry, f"malformed entry: message is not JSON ({exc})"
    if not isinstance(parsed, dict):
        return entry, "malformed entry: message is not a JSON object"
    return entry, None


def _text_lossy(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _reason(exc: DeliveryError) -> str:
    status = getattr(exc, "status", None)
    body = getattr(exc, "body", "") or ""
    head = f"refused with status {status}" if status is not None else "refused"
    return f"{head}: {exc}" + (f" -- {body[:500]}" if body and body not in str(exc) else "")


def _absorb(exc: DeliveryError, refused: dict[Message, str], suspects: set[Message]) -> bool:
    """Record a refusal that is about the messages; False for a failure to retry."""
    if isinstance(exc, RecordsRejectedError):
        for record in exc.failed_records:
            if record.record is not None:
                where = f" ({record.field})" if record.field else ""
                refused[record.record] = f"/import rejected the record{where}: {record.message}"
        return True
    if isinstance(exc, PayloadTooLargeError) or (
        isinstance(exc, RefusedError) and exc.status in _MESSAGE_STATUSES
    ):
        if len(exc.messages) == 1:
            refused[exc.messages[0]] = _reason(exc)
            return True
        if exc.messages:
            suspects.update(m for m in exc.messages if m not in refused)
            return True
    return False


def trim_delivered(client: redis.Redis, stream: str) -> int:
    """``XTRIM MINID`` below the oldest entry any group of ``stream`` still needs.

    An entry is needed while some group has it pending or has not read it.
    Returns how many entries were removed.
    """
    floor: Optional[str] = None
    try:
        groups = client.xinfo_groups(stream)
    except import_redis().ResponseError:
        return 0  # no such stream yet
    if not groups:
        return 0  # without a group nobody has read anything: keep it all
    for group in groups:
        if group["pending"]:
            summary = client.xpending(stream, _text(group["name"]))
            needed = _text(summary["min"])
        else:
            needed = _next_id(_text(group["last-delivered-id"]))
        if floor is None or _id_key(needed) < _id_key(floor):
            floor = needed
    if floor is None or floor == "0-1":
        return 0
    return int(client.xtrim(stream, minid=floor, approximate=False))


def stream_stats(
    client: redis.Redis, stream: str, group: str, dead_letter_stream: Optional[str] = None
) -> dict[str, Any]:
    """Length, pending, lag, dead letters and consumers of one group (JSON-ready)."""
    length = int(client.xlen(stream))
    dead_stream = dead_letter_stream or f"{stream}:dead"
    info: dict[str, Any] = {
        "stream": stream, "group": group, "length": length, "pending": 0, "lag": length,
        "last_delivered_id": None, "dead_letter_stream": dead_stream,
        "dead_lettered": int(client.xlen(dead_stream)), "consumers": [],
    }
    try:
        groups = client.xinfo_groups(stream)
    except import_redis().ResponseError:
        return info
    for g in groups:
        if _text(g["name"]) != group:
            continue
        info["pending"] = int(g["pending"])
        info["last_delivered_id"] = _text(g["last-delivered-id"])
        lag = g.get("lag")
        info["lag"] = int(lag) if lag is not None else _count_after(
            client, stream, info["last_delivered_id"])
        info["consumers"] = [
            {"name": _text(c["name"]), "pending": int(c["pending"]), "idle_ms": int(c["idle"])}
            for c in client.xinfo_consumers(stream, group)
        ]
    return info


def _count_after(client: redis.Redis, stream: str, last_id: str) -> int:
    # Redis < 7 reports no lag; count what the group has not read (capped).
    entries: Any = client.xrange(stream, min=f"({last_id}", count=100_000)
    return len(entries)
