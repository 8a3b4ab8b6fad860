"""Endpoints the service has put on hold: their messages wait aside, the others keep flowing.

The wrapped sink's transport remembers each endpoint's hold (its
:class:`~consumers._pace.Pace`).  The worker asks :class:`Holds` which
message types go to a held endpoint, sets their messages aside
(:meth:`Holds.defer`, bounded by bytes) and hands them back to the sink
once the hold has ended (:meth:`Holds.release`).

A hold begins inside a request: the transport would then wait it out
before returning, and the one worker thread with it.  While the worker is
in the sink (:meth:`Holds.watching`), a guard thread looks whether a new
hold began; if one did, it ends the transport's retries at once
(``end_retries_at(now)``), so the request returns a
:class:`~consumers.retry.RetryableRefusal` carrying the hold, and the
worker goes on with the other endpoints.  The retry deadline a shutdown
set is put back afterwards.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, Optional

from consumers import local
from consumers._background.queue import size_of
from consumers._pace import Pace, _find_pace, endpoint_key
from consumers.errors import Message

__all__ = ["CUT_AFTER", "Holds"]

#: A hold shorter than this (seconds) is waited out in the request, not set aside.
CUT_AFTER = 0.5
#: How often the guard looks at the pace while the worker is in the sink.
GUARD_POLL = 0.02


class Holds:
    """Which message types are held now, and what waits for them (worker only, but the guard)."""

    def __init__(self, inner: Any, max_bytes: int) -> None:
        self.inner = inner
        self.pace: Optional[Pace] = _find_pace(inner.sink)
        self.max_bytes = max_bytes
        self.deferred: dict[str, list[Message]] = {}
        self.nbytes = 0
        self.count = 0
        self.keys: dict[str, Optional[str]] = {}
        self.deferred_total = 0  # messages ever set aside for a hold
        # the guard
        self.retry_end: Optional[float] = None  # what close() asked of the transport
        self._lock = threading.Lock()
        self._armed = threading.Event()
        self._holds_at_arm = 0
        self._cut = False
        self._stopped = False
        self._guard: Optional[threading.Thread] = None

    # -- which types are held ----------------------------------------------------------
    def _key(self, message_type: str) -> Optional[str]:
        if message_type in self.keys:
            return self.keys[message_type]
        key: Optional[str] = None
        endpoints = getattr(self.inner.sink, "endpoints", None)
        if endpoints is not None:
            try:
                url, _ = local.redirect(endpoints.url_for(message_type), {})
                key = endpoint_key(url)
            except Exception:  # a type or a setting it cannot route: never held here
                key = None
        self.keys[message_type] = key
        return key

    def remaining(self, message_type: str) -> float:
        """Seconds left on the hold of ``message_type``'s endpoint (0 when free)."""
        if self.pace is None:
            return 0.0
        key = self._key(message_type)
        return self.pace.remaining(key) if key is not None else 0.0

    def active(self) -> bool:
        """Whether some endpoint of the sink is held now."""
        return self.pace is not None and bool(self.pace.held_now())

    def split(self, messages: Sequence[Message]) -> tuple[list[Message], list[Message]]:
        """``messages`` as (for free endpoints, for held ones), each in order."""
        if self.pace is None or not self.pace.held_now():
            return list(messages), []
        held_types = {t for t in {m[0] for m in messages} if self.remaining(t) > 0}
        if not held_types:
            return list(messages), []
        free = [m for m in messages if m[0] not in held_types]
        held = [m for m in messages if m[0] in held_types]
        return free, held

    # -- what waits ------------------------------------------------------------------------
    @property
    def full(self) -> bool:
        return self.nbytes >= self.max_bytes

    def defer(self, messages: Sequence[Message]) -> None:
        for message in messages:
            self.deferred.setdefault(message[0], []).append(message)
            self.nbytes += size_of(message)
        self.count += len(messages)
        self.deferred_total += len(messages)

    def release(self, *, everything: bool = False) -> list[Message]:
        """The messages whose endpoint is free again (all of them with ``everything``)."""
        if not self.deferred:
            return []
        out: list[Message] = []
        for message_type in list(self.deferred):
            if everything or self.remaining(message_type) <= 0:
                out.extend(self.deferred.pop(message_type))
        if out:
            self.count -= len(out)
            self.nbytes -= sum(map(size_of, out))
        if not self.deferred:
            self.count = self.nbytes = 0
        return out

    def next_end(self) -> Optional[float]:
        """Seconds until the first hold with messages waiting ends (None: nothing waits)."""
        if not self.deferred:
            return None
        return min(self.remaining(t) for t in self.deferred)

    def ends_after(self, deadline: float) -> bool:
        """Whether every message waiting aside waits past ``deadline`` (``time.monotonic()``)."""
        left = self.next_end()
        return left is not None and time.monotonic() + left > deadline

    # -- the guard -------------------------------------------------------------------------
    def end_retries_at(self, deadline: Optional[float]) -> None:
        """Set the transport's retry deadline (close()); kept through the guard's cuts."""
        with self._lock:
            self.retry_end = deadline
            self.inner.end_retries_at(deadline)

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """Around a call into the sink: a hold that begins meanwhile ends its wait at once."""
        pace = self.pace
        if pace is None:
            yield
            return
        if self._guard is None and not self._stopped:
            self._guard = threading.Thread(target=self._watch, name="tracking-hold-guard",
                                           daemon=True)
            self._guard.start()
        with self._lock:
            self._holds_at_arm = pace.holds
            self._cut = False
            self._armed.set()
        try:
            yield
        finally:
            with self._lock:
                self._armed.clear()
                if self._cut:
                    self._cut = False
                    self.inner.end_retries_at(self.retry_end)

    def stop(self) -> None:
        """End the guard thread (delivery is over)."""
        self._stopped = True
        self._armed.set()

    def _watch(self) -> None:
        pace = self.pace
        assert pace is not None
        while not self._stopped:
            self._armed.wait()
            time.sleep(GUARD_POLL)
            with self._lock:
                if not self._armed.is_set() or self._cut or pace.holds == self._holds_at_arm:
                    continue
                if not any(pace.remaining(k) > CUT_AFTER for k in pace.held_now()):
                    continue
                self._cut = True
                now = time.monotonic()
                end = now if self.retry_end is None else min(now, self.retry_end)
                self.inner.end_retries_at(end)
