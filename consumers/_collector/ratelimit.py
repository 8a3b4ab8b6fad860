"""The collector's rate limit: admit N requests per second per endpoint, answer the rest 429.

A sliding window of one second per endpoint path (``/track``, ``/import``,
...): a request is admitted when fewer than ``per_second`` were admitted on
its endpoint in the last second, else refused with 429 and a ``Retry-After``
saying when the next one would be admitted (whole seconds, at least 1, as
services send it), or the fixed value given.  Refused requests store nothing.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import Any, Callable, Optional, Union

from consumers._collector.store import Fault

__all__ = ["RateLimiter"]

#: The window the limit is counted over, in seconds.
WINDOW = 1.0


class RateLimiter:
    """Per-endpoint admission; :meth:`take` is the fault a request suffers, or None."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._per_second: Optional[int] = None
        self._retry_after: Union[int, float, str, None] = None
        self._path: Optional[str] = None
        self._admitted: dict[str, deque[float]] = {}
        self.refused = 0

    def configure(
        self,
        per_second: Optional[int],
        *,
        retry_after: Union[int, float, str, None] = None,
        path: Optional[str] = None,
    ) -> None:
        """Admit ``per_second`` requests per endpoint (None: no limit); see the module."""
        if per_second is not None and (
                isinstance(per_second, bool) or not isinstance(per_second, int)
                or per_second < 1):
            raise ValueError(f"per_second must be a positive int or None, got {per_second!r}")
        with self._lock:
            self._per_second = per_second
            self._retry_after = retry_after
            self._path = path
            self._admitted = {}
            self.refused = 0

    def describe(self) -> dict[str, Any]:
        """The limit as JSON: ``per_second``, ``retry_after``, ``path``, ``refused``."""
        with self._lock:
            return {"per_second": self._per_second, "retry_after": self._retry_after,
                    "path": self._path, "refused": self.refused}

    def take(self, path: str) -> Optional[Fault]:
        """Admit this request (None), or the 429 it gets instead."""
        limit = self._per_second
        if limit is None or (self._path is not None and not path.startswith(self._path)):
            return None
        key = path.rstrip("/") or "/"
        now = self._clock()
        with self._lock:
            admitted = self._admitted.setdefault(key, deque())
            while admitted and admitted[0] <= now - WINDOW:
                admitted.popleft()
            if len(admitted) < limit:
                admitted.append(now)
                return None
            self.refused += 1
            retry_after = self._retry_after
            if retry_after is None:
                retry_after = max(1, math.ceil(admitted[0] + WINDOW - now))
        return Fault(1, status=429, retry_after=retry_after)
