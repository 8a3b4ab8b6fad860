"""The service's pace: when each endpoint may be sent to again, remembered across requests.

A 429 or 503 with ``Retry-After`` (delta-seconds or an HTTP date), or a
rate-limit header saying nothing is left (``RateLimit-Remaining: 0`` /
``X-RateLimit-Remaining: 0`` with ``...-Reset``), *holds* the endpoint that
answered (scheme, host, port and path: one destination's ``/track``) until
the time given.  Every request through the same transport waits for its
endpoint's hold; other endpoints keep flowing, so a limit on ``/import``
does not stall ``/track`` (sentry-python keeps a ``_disabled_until`` per
category for the same reason).

A hold is capped at ``max_hold`` seconds (a hostile or broken
``Retry-After: 999999`` cannot stall a process for days); a capped hold is
logged once per endpoint.  The first hold of an endpoint is logged as a
warning, later ones at INFO, each with its length.  :meth:`Pace.stats`
counts holds and their total length.

An endpoint is *under pressure* while held, for :data:`PRESSURE_FOR` seconds
after a hold, and while its last answer took longer than :data:`SLOW`
seconds: then a buffered consumer fills each request up to the service's
limits instead of sending many small ones.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

from consumers.retry import parse_retry_after

__all__ = [
    "PRESSURE_FOR",
    "SLOW",
    "Pace",
    "endpoint_key",
    "held_last",
    "held_until",
    "hold_from",
    "pace_stats",
    "sink_pressed",
    "under_pressure",
]

log = logging.getLogger("consumers.pace")

#: Seconds after a hold during which an endpoint still counts as under pressure.
PRESSURE_FOR = 30.0
#: An answer slower than this (seconds) puts its endpoint under pressure.
SLOW = 1.0

#: Statuses whose ``Retry-After`` holds the endpoint.
_HOLDING_STATUSES = (429, 503)
_REMAINING = ("ratelimit-remaining", "x-ratelimit-remaining")
_RESET = ("ratelimit-reset", "x-ratelimit-reset")
#: A reset value above this is a Unix time, not a number of seconds.
_EPOCH_SECONDS = 1_000_000_000


def endpoint_key(url: str) -> str:
    """What a hold applies to: ``scheme://host:port/path`` (no query, no credentials)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = parts.path.rstrip("/") or "/"
    return f"{parts.scheme.lower()}://{host}:{port}{path}"


def _header(headers: Mapping[str, str], names: tuple[str, ...]) -> Optional[str]:
    for name in names:
        value = headers.get(name)
        if value is not None:
            return value
    return None


def hold_from(status: int, headers: Mapping[str, str], *,
              now: Optional[float] = None) -> Optional[float]:
    """Seconds this answer asks its endpoint to be left alone, or None.

    ``headers`` must look names up case-insensitively (``requests``' headers do).
    """
    if status in _HOLDING_STATUSES:
        seconds = parse_retry_after(headers.get("Retry-After"), now=now)
        if seconds is not None:
            return seconds
    remaining = _header(headers, _REMAINING)
    if status == 429 or (remaining is not None and remaining.strip() == "0"):
        reset = _header(headers, _RESET)
        try:
            seconds = float(reset) if reset is not None else None
        except ValueError:
            seconds = None
        if seconds is not None and seconds == seconds:  # not NaN
            if seconds > _EPOCH_SECONDS:
                seconds -= time.time() if now is None else now
            return max(0.0, seconds)
    return None


class Pace:
    """Holds per endpoint key; thread-safe, shared by everything using one transport."""

    def __init__(self, max_hold: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not max_hold >= 0:
            raise ValueError(f"max_hold must be >= 0, got {max_hold!r}")
        self.max_hold = max_hold
        self._clock = clock
        self._lock = threading.Lock()
        self._until: dict[str, float] = {}
        self._last_hold: dict[str, float] = {}
        self._slow: dict[str, bool] = {}
        self._warned: set[str] = set()
        self._capped_logged: set[str] = set()
        self.holds = 0
        self.capped = 0
        self.held_seconds = 0.0

    def __repr__(self) -> str:
        return f"Pace(max_hold={self.max_hold!r}, held={sorted(self.held_now())})"

    def hold(self, key: str, seconds: float, *, status: int) -> float:
        """Hold ``key`` for ``seconds`` (capped) from now; the ``clock()`` instant it ends."""
        asked = seconds
        seconds = min(max(0.0, seconds), self.max_hold)
        now = self._clock()
        with self._lock:
            until = now + seconds
            previous = self._until.get(key, 0.0)
            added = max(0.0, until - max(now, previous))
            if until > previous:
                self._until[key] = until
            self._last_hold[key] = now
            self.holds += 1
            self.held_seconds += added
            first = key not in self._warned
            self._warned.add(key)
            capped = asked > self.max_hold
            log_cap = capped and key not in self._capped_logged
            if capped:
                self.capped += 1
                self._capped_logged.add(key)
        if log_cap:
            log.warning("%s asked to wait %.0f s (status %d); waiting at most %.3g s "
                        "(logged once)", key, asked, status, self.max_hold)
        log.log(logging.WARNING if first else logging.INFO,
                "%s is rate limited (status %d): holding it for %.3g s%s", key, status,
                seconds, "; later holds are logged at INFO" if first else "")
        return max(until, previous)

    def until(self, key: str) -> float:
        """The ``clock()`` instant ``key``'s hold ends (in the past when it is free)."""
        return self._until.get(key, 0.0)

    def remaining(self, key: str) -> float:
        """Seconds left on ``key``'s hold (0 when free)."""
        return max(0.0, self._until.get(key, 0.0) - self._clock())

    def held_now(self) -> list[str]:
        """The keys held at this moment."""
        now = self._clock()
        with self._lock:
            return [key for key, until in self._until.items() if until > now]

    def took(self, key: str, seconds: float) -> None:
        """An answer from ``key`` came after ``seconds``."""
        slow = seconds > SLOW
        if self._slow.get(key, False) != slow:
            with self._lock:
                self._slow[key] = slow

    def pressed(self, key: str) -> bool:
        """Whether ``key`` is held, was held lately, or answers slowly."""
        if self._slow.get(key, False):
            return True
        last = self._last_hold.get(key)
        return last is not None and self._clock() - last < PRESSURE_FOR + self.remaining(key)

    def pressed_any(self) -> bool:
        """Whether some endpoint is under pressure."""
        return any(self.pressed(key) for key in list(self._slow) + list(self._last_hold))

    def stats(self) -> dict[str, int]:
        """``rate_limited``: holds since start; ``held_ms``: their length; ``held_capped``."""
        with self._lock:
            return {"rate_limited": self.holds, "held_ms": int(self.held_seconds * 1000),
                    "held_capped": self.capped}

    def reset_after_fork(self) -> None:
        """A fork child: the holds are the service's and still apply; the lock is new."""
        self._lock = threading.Lock()


def held_until(error: Optional[BaseException]) -> Optional[float]:
    """When the service said the endpoint may be tried again (``time.monotonic()``), if it did."""
    until = getattr(error, "held_until", None)
    return until if isinstance(until, float) else None


def _pace_of(consumer: Any) -> Optional[Pace]:
    transport = getattr(consumer, "transport", None)
    pace = getattr(transport, "pace", None)
    return pace if isinstance(pace, Pace) else None


def under_pressure(consumer: Any, message_type: str) -> bool:
    """Whether ``consumer`` (a :class:`~consumers.consumer.Consumer`) sends ``message_type``
    to an endpoint under pressure; False for any sink that cannot say."""
    pace = _pace_of(consumer)
    endpoints = getattr(consumer, "endpoints", None)
    if pace is None or endpoints is None:
        return False
    try:
        url = endpoints.url_for(message_type)
    except (KeyError, ValueError, AttributeError):
        return False
    return pace.pressed(endpoint_key(url))


def held_last(consumer: Any, message_types: Sequence[str]) -> list[str]:
    """``message_types`` with those whose endpoint is held now moved last (shortest hold first),
    so a flush delivers the free endpoints before it waits for a held one."""
    pace = _pace_of(consumer)
    endpoints = getattr(consumer, "endpoints", None)
    if pace is None or endpoints is None or not pace.held_now():
        return list(message_types)

    def remaining(message_type: str) -> float:
        try:
            return pace.remaining(endpoint_key(endpoints.url_for(message_type)))
        except (KeyError, ValueError, AttributeError):
            return 0.0

    return sorted(message_types, key=remaining)  # stable: the usual order otherwise


def _find_pace(sink: Any) -> Optional[Pace]:
    """The pace of the transport under ``sink``, through wrappers (``.consumer``)."""
    for _ in range(4):
        pace = _pace_of(sink)
        if pace is not None:
            return pace
        sink = getattr(sink, "consumer", None)
        if sink is None:
            break
    return None


def sink_pressed(sink: Any) -> bool:
    """Whether any endpoint of the transport under ``sink`` is under pressure."""
    pace = _find_pace(sink)
    return pace is not None and pace.pressed_any()


def pace_stats(sink: Any) -> dict[str, int]:
    """:meth:`Pace.stats` of the transport under ``sink`` (zeros when it has none)."""
    pace = _find_pace(sink)
    if pace is not None:
        return pace.stats()
    return {"rate_limited": 0, "held_ms": 0, "held_capped": 0}
