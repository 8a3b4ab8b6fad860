"""Consumers' own health as OpenTelemetry metrics (the optional extra ``otel``).

::

    from consumers.metrics import ConsumerMetrics

    metrics = ConsumerMetrics()              # the global meter provider, or meter=...
    metrics.watch(background, name="events")

Each watched consumer's counters become observable instruments named
``tracking.consumer.<counter>`` (a nested counter: ``<group>.<counter>``),
with the attributes ``consumer`` (the name given) and ``consumer.kind`` (its
class).  The counters are read when the meter's reader collects, from what
the consumer already counts (``stats()``, or ``pending()``); nothing is
added to the delivery path.  A number ``stats()`` gains later is exported
too, as a gauge, unless :data:`COUNTERS` names it a counter.

A consumer that counts nothing itself (``Consumer``, ``FileConsumer``, a
plain callable) is watched through :class:`Counted`, a sink that counts what
passes through it.  Needs ``opentelemetry-api`` (``pip install
'tracking-toolkit[otel]'``), imported only by this module.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Callable, Optional

from consumers.errors import DeliveryError, Message

try:
    from opentelemetry import metrics as otel_metrics
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "consumers.metrics needs the OpenTelemetry API: pip install 'tracking-toolkit[otel]' "
        "(or opentelemetry-api)") from error

__all__ = ["COUNTERS", "PREFIX", "UNITS", "ConsumerMetrics", "Counted"]

#: Every instrument's name starts with this.
PREFIX = "tracking.consumer"

#: Counters that only go up (observable counters); every other number is a gauge.
COUNTERS = frozenset({
    # BackgroundConsumer.stats()
    "enqueued", "delivered", "failed", "dropped", "spilled", "replayed", "refused", "retried",
    "rate_limited", "held_ms", "held_capped",
    # RedisWorker.stats()["worker"]
    "worker.delivered", "worker.dead_lettered", "worker.reclaimed", "worker.batches",
    "worker.failures", "worker.trimmed",
    # Counted.stats()
    "sent", "errors",
})

#: Units by counter (messages where not named here).
UNITS: Mapping[str, str] = {
    "queued_bytes": "By", "spool_bytes": "By", "delivery_lag_ms": "ms", "held_ms": "ms",
    "rate_limited": "{hold}", "held_capped": "{hold}", "retried": "{request}",
    "stalled": "s", "last_error_time": "s", "errors": "{error}",
    "worker.batches": "{batch}", "worker.failures": "{error}", "worker.trimmed": "{entry}",
    "length": "{entry}", "lag": "{entry}", "pending_entries": "{entry}",
}

#: Counters that say how many messages wait, and the one that says how many got through:
#: ``stalled`` is derived from them.
_WAITING = ("queued", "in_flight", "held_back", "spooled", "pending", "lag")
_DELIVERED = ("delivered", "worker.delivered")


def _numbers(stats: Mapping[str, Any], group: str = "") -> Iterator[tuple[str, float]]:
    for key, value in stats.items():
        name = f"{group}{key}"
        if isinstance(value, Mapping):
            yield from _numbers(value, f"{name}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield name, value


class _Watched:
    """One consumer, its attributes, and its last read (counters plus ``stalled``)."""

    def __init__(self, source: Any, read: Callable[[], Mapping[str, Any]],
                 attributes: dict[str, str]) -> None:
        self.source = source
        self.read = read
        self.attributes = attributes
        self.lock = threading.Lock()
        self.values: dict[str, float] = {}
        self.served: Optional[set[str]] = None  # the keys answered from ``values``
        self.delivered: Optional[float] = None
        self.progress_at = time.monotonic()

    def keys(self) -> list[str]:
        with self.lock:
            self._refresh()
            self.served = None
            return list(self.values)

    def value(self, key: str) -> Optional[float]:
        """One counter, from one read of them all per collection.

        A collection asks each instrument once: a key asked again means the
        next collection, which reads the consumer again.
        """
        with self.lock:
            if self.served is None or key in self.served:
                self._refresh()
                self.served = set()
            self.served.add(key)
            return self.values.get(key)

    def _refresh(self) -> None:
        values = dict(_numbers(self.read()))
        self._stall(values, time.monotonic())
        self.values = values

    def _stall(self, values: dict[str, float], now: float) -> None:
        """``stalled``: seconds messages have waited with nothing delivered since."""
        delivered = next((values[k] for k in _DELIVERED if k in values), None)
        waiting = [values[k] for k in _WAITING if k in values]
        if delivered is None or not waiting:
            return
        if not any(waiting) or delivered != self.delivered:
            self.progress_at = now
        self.delivered = delivered
        values["stalled"] = round(now - self.progress_at, 3)


def _reader(source: Any) -> Callable[[], Mapping[str, Any]]:
    stats = getattr(source, "stats", None)
    if callable(stats):
        return stats  # type: ignore[no-any-return]
    pending = getattr(source, "pending", None)
    if callable(pending):
        return lambda: {"pending": pending()}
    raise TypeError(
        f"{type(source).__name__} counts nothing that can be exported (no stats() or "
        "pending()); watch Counted(it) and send through that instead")


class ConsumerMetrics:
    """Observable instruments on one meter, reporting every watched consumer's counters.

    ``meter``: an OpenTelemetry ``Meter``; by default the global meter
    provider's meter named ``consumers``.
    """

    def __init__(self, meter: Optional[otel_metrics.Meter] = None) -> None:
        self._meter = meter if meter is not None else otel_metrics.get_meter("consumers")
        self._lock = threading.Lock()
        self._watched: dict[str, _Watched] = {}
        self._instruments: set[str] = set()

    def watch(self, consumer: Any, name: Optional[str] = None) -> None:
        """Export ``consumer``'s counters, with the attribute ``consumer=name``.

        ``name`` defaults to the class name; two consumers watched on one
        meter need different names.  TypeError for a consumer that counts
        nothing (wrap it in :class:`Counted`).
        """
        read = _reader(consumer)
        kind = type(consumer).__name__
        name = kind if name is None else name
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        watched = _Watched(consumer, read, {"consumer": name, "consumer.kind": kind})
        keys = watched.keys()
        with self._lock:
            if name in self._watched:
                raise ValueError(f"a consumer named {name!r} is already watched on this meter; "
                                 "give each one its own name=")
            self._watched[name] = watched
            for key in keys:
                if key not in self._instruments:
                    self._instruments.add(key)
                    self._create(key)

    def unwatch(self, name: str) -> None:
        """Stop exporting the consumer watched as ``name`` (KeyError if none)."""
        with self._lock:
            del self._watched[name]

    def _create(self, key: str) -> None:
        callback = self._callback(key)
        name, unit = f"{PREFIX}.{key}", UNITS.get(key, "{message}")
        description = f"The consumer's {key!r} counter"
        if key in COUNTERS:
            self._meter.create_observable_counter(name, [callback], unit, description)
        else:
            self._meter.create_observable_gauge(name, [callback], unit, description)

    def _callback(self, key: str) -> Callable[[otel_metrics.CallbackOptions],
                                              Iterable[otel_metrics.Observation]]:
        def observe(options: otel_metrics.CallbackOptions) -> Iterable[otel_metrics.Observation]:
            with self._lock:
                watched = list(self._watched.values())
            observations = []
            for one in watched:
                value = one.value(key)
                if value is not None:
                    observations.append(otel_metrics.Observation(value, one.attributes))
            return observations
        return observe


class Counted:
    """A sink that counts what passes through it to ``sink``, for :meth:`ConsumerMetrics.watch`.

    ``stats()``: ``sent`` (messages ``sink`` took), ``failed`` (messages
    lost: refused, or not delivered by a sink that keeps nothing),
    ``delivered`` (sent, not failed, not pending), ``errors`` (delivery
    errors raised through it, and the refusals they report),
    ``last_error_time`` (Unix seconds, 0 before any) and, when ``sink``
    buffers (has ``pending()``), ``pending``.  Errors are counted, then
    raised again.
    """

    def __init__(self, sink: Any) -> None:
        self._send = getattr(sink, "send", sink)
        if not callable(self._send):
            raise TypeError(f"sink must be callable or have send(), got {type(sink).__name__}")
        self.sink = sink
        self._lock = threading.Lock()
        self._sent = self._failed = self._errors = 0
        self._last_error_time = 0.0

    def __repr__(self) -> str:
        return f"Counted({self.sink!r})"

    def send(self, message_type: str, message_json: str) -> None:
        """Hand one message on, counting it, and the error if one is raised."""
        try:
            self._call(self._send, message_type, message_json)
        except DeliveryError:
            self._add_sent()
            raise
        self._add_sent()

    def _add_sent(self) -> None:
        with self._lock:
            self._sent += 1

    __call__ = send

    def flush(self) -> None:
        """Flush ``sink`` (when it has ``flush()``), counting an error raised."""
        flush = getattr(self.sink, "flush", None)
        if callable(flush):
            self._call(flush)

    def close(self) -> None:
        """Close ``sink`` (when it has ``close()``), counting an error raised."""
        close = getattr(self.sink, "close", None)
        if callable(close):
            self._call(close)

    def _call(self, function: Callable[..., Any], *args: Any) -> None:
        try:
            function(*args)
        except DeliveryError as error:
            self._count(error)
            raise

    def _count(self, error: DeliveryError) -> None:
        lost: list[Message] = [m for refusal in error.refusals for m in refusal.messages]
        if not (callable(getattr(self.sink, "pending", None)) and error.pending):
            lost.extend(error.messages)  # else they stay buffered, for the next flush
        with self._lock:
            self._errors += 1 + len(error.refusals)
            self._failed += len(lost)
            self._last_error_time = time.time()

    def stats(self) -> dict[str, Any]:
        """The counters (see the class docstring)."""
        with self._lock:
            sent, failed = self._sent, self._failed
            out: dict[str, Any] = {"sent": sent, "failed": failed, "errors": self._errors,
                                   "last_error_time": self._last_error_time}
        pending = getattr(self.sink, "pending", None)
        waiting = pending() if callable(pending) else 0
        if callable(pending):
            out["pending"] = waiting
        out["delivered"] = max(0, sent - failed - waiting)
        return out
