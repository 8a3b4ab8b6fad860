"""What the collector remembers: accepted records, request log, counters, fault plan.

Everything is guarded by one lock per object and kept as plain lists and
dicts; messages are stored as decoded (no copies).
"""

from __future__ import annotations

import threading
from typing import Any, Optional, Union

from consumers._collector.validation import dedup_key

__all__ = ["ENDPOINTS", "Fault", "FaultPlan", "Store"]

#: Endpoint names used in records and stats.
ENDPOINTS = ("track", "engage", "groups", "import", "posthog")


class Store:
    """Accepted records (raw and deduplicated), the request log and counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget every record, request and counter."""
        with self._lock:
            self._records: list[tuple[str, Any]] = []
            self._raw: dict[str, list[Any]] = {e: [] for e in ENDPOINTS}
            self._unique: dict[str, list[Any]] = {e: [] for e in ENDPOINTS}
            self._seen: dict[str, set[Any]] = {e: set() for e in ENDPOINTS}
            self._rejected: dict[str, int] = dict.fromkeys(ENDPOINTS, 0)
            self._requests_by_endpoint: dict[str, int] = dict.fromkeys(ENDPOINTS, 0)
            self._placeholder_ids: dict[str, int] = dict.fromkeys(ENDPOINTS, 0)
            self._requests: list[dict[str, Any]] = []
            self._faults = 0
            self._bytes = 0

    def add(
        self,
        endpoint: str,
        accepted: list[Any],
        rejected: int,
        placeholder_ids: int = 0,
    ) -> None:
        """Store the accepted messages of one request and count the refused ones."""
        with self._lock:
            self._requests_by_endpoint[endpoint] += 1
            self._rejected[endpoint] += rejected
            self._placeholder_ids[endpoint] += placeholder_ids
            if not accepted:
                return
            self._raw[endpoint].extend(accepted)
            self._records.extend((endpoint, m) for m in accepted)
            seen = self._seen[endpoint]
            unique = self._unique[endpoint]
            for message in accepted:
                key = _key(endpoint, message)
                if key is None:
                    unique.append(message)
                elif key not in seen:
                    seen.add(key)
                    unique.append(message)

    def log_request(self, entry: dict[str, Any], *, fault: bool = False) -> None:
        """Append one request summary to the log."""
        with self._lock:
            self._requests.append(entry)
            self._bytes += entry.get("bytes", 0)
            if fault:
                self._faults += 1

    def records(self, endpoint: Optional[str] = None) -> list[dict[str, Any]]:
        """Accepted records in arrival order, before dedup."""
        with self._lock:
            return [
                {"endpoint": e, "message": m}
                for e, m in self._records
                if endpoint is None or e == endpoint
            ]

    def messages(self, endpoint: str) -> list[Any]:
        """The message dicts accepted on one endpoint (raw)."""
        with self._lock:
            return list(self._raw[_endpoint(endpoint)])

    def unique(self, endpoint: str) -> list[Any]:
        """The message dicts accepted on one endpoint, duplicates removed."""
        with self._lock:
            return list(self._unique[_endpoint(endpoint)])

    def requests(self) -> list[dict[str, Any]]:
        """The request log."""
        with self._lock:
            return list(self._requests)

    def stats(self) -> dict[str, Any]:
        """Counters: totals and per endpoint."""
        with self._lock:
            endpoints = {
                e: {
                    "requests": self._requests_by_endpoint[e],
                    "accepted": len(self._raw[e]),
                    "raw": len(self._raw[e]),
                    "unique": len(self._unique[e]),
                    "duplicates": len(self._raw[e]) - len(self._unique[e]),
                    "rejected": self._rejected[e],
                    "placeholder_ids": self._placeholder_ids[e],
                }
                for e in ENDPOINTS
            }
            return {
                "requests": len(self._requests),
                "bytes": self._bytes,
                "faults": self._faults,
                "accepted": len(self._records),
                "raw": len(self._records),
                "unique": sum(v["unique"] for v in endpoints.values()),
                "rejected": sum(self._rejected.values()),
                "endpoints": endpoints,
            }


def _endpoint(name: str) -> str:
    name = name.strip("/")
    if name not in ENDPOINTS:
        raise ValueError(f"endpoint must be one of {ENDPOINTS}, got {name!r}")
    return name


def _key(endpoint: str, message: Any) -> Any:
    if not isinstance(message, dict):
        return None
    if endpoint in ("track", "import"):
        return dedup_key(message)
    if endpoint == "posthog":
        return message.get("uuid")
    return None


class Fault:
    """One planned misbehaviour for the next ``count`` matching requests."""

    __slots__ = ("body", "count", "delay", "drop", "path", "retry_after", "status")

    def __init__(
        self,
        count: int,
        *,
        status: Optional[int] = None,
        retry_after: Union[int, float, str, None] = None,
        body: Union[str, bytes, dict[str, Any], None] = None,
        delay: Optional[float] = None,
        drop: bool = False,
        path: Optional[str] = None,
    ) -> None:
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        if sum((status is not None, delay is not None, drop)) != 1:
            raise ValueError("a fault is exactly one of status, delay or drop")
        self.count = count
        self.status = status
        self.retry_after = retry_after
        self.body = body
        self.delay = delay
        self.drop = drop
        self.path = path

    def matches(self, path: str) -> bool:
        return self.path is None or path.startswith(self.path)

    def describe(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "status": self.status,
            "retry_after": self.retry_after,
            "delay": self.delay,
            "drop": self.drop,
            "path": self.path,
        }


class FaultPlan:
    """An ordered queue of faults; each request takes the first one matching its path."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.describe() for f in self._faults]

    def take(self, path: str) -> Optional[Fault]:
        """The fault this request must suffer, if any (uses up one of its count)."""
        if not self._faults:
            return None
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.matches(path):
                    fault.count -= 1
                    if fault.count == 0:
                        del self._faults[i]
                    return fault
        return None
