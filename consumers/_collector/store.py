"""What the collector remembers: accepted records, request log, counters, fault plan.

Everything is guarded by one lock per object and kept as plain lists and
dicts; messages are never copied.
"""

from __future__ import annotations

import gc
import json
import threading
from typing import Any, Optional, Union

from consumers._collector.validation import dedup_key

__all__ = ["ENDPOINTS", "Fault", "FaultPlan", "Store"]

#: Endpoint names used in records and stats.
ENDPOINTS = ("track", "engage", "groups", "import", "posthog", "segment")


class _Chunk:
    """The records one request added: decoded, or still the JSON text they came as."""

    __slots__ = ("count", "endpoint", "payload")

    def __init__(self, endpoint: str, payload: Union[list[Any], str, bytes], count: int) -> None:
        self.endpoint = endpoint
        self.payload = payload
        self.count = count

    def messages(self) -> list[Any]:
        payload = self.payload
        if not isinstance(payload, list):
            decoded = json.loads(payload)
            payload = self.payload = decoded if isinstance(decoded, list) else [decoded]
        return payload


class Store:
    """Accepted records (raw and deduplicated), the request log and counters.

    A request whose records were all accepted is kept as its JSON text and
    decoded again when first read: the decoded objects of a busy request
    stream would cost far more memory (and page faults) than the text.
    """

    #: Requests between two ``gc.freeze()`` calls when ``gc_freeze`` is on.
    FREEZE_EVERY = 256

    def __init__(self, *, gc_freeze: bool = False) -> None:
        self._lock = threading.Lock()
        # Stored records live until reset; letting the cyclic GC rescan them on
        # every full collection slows every request, so a dedicated process
        # moves them out of its reach (gc.freeze).
        self.gc_freeze = gc_freeze
        self._adds = 0
        #: Goes up by one on every reset, so a reader of ``chunks_since`` can tell.
        self.generation = 0
        self.reset()

    def reset(self) -> None:
        """Forget every record, request and counter."""
        with self._lock:
            self._chunks: list[_Chunk] = []
            self._raw_count: dict[str, int] = dict.fromkeys(ENDPOINTS, 0)
            # Dedup runs when asked for, over the chunks that arrived since.
            self._deduped = 0
            self._unique: dict[str, list[Any]] = {e: [] for e in ENDPOINTS}
            self._seen: dict[str, set[Any]] = {e: set() for e in ENDPOINTS}
            self._rejected: dict[str, int] = dict.fromkeys(ENDPOINTS, 0)
            self._requests_by_endpoint: dict[str, int] = dict.fromkeys(ENDPOINTS, 0)
            self._placeholder_ids: dict[str, int] = dict.fromkeys(ENDPOINTS, 0)
            self._requests: list[dict[str, Any]] = []
            self._faults = 0
            self._bytes = 0
            self.generation += 1

    def add(
        self,
        endpoint: str,
        accepted: list[Any],
        rejected: int,
        placeholder_ids: int = 0,
        *,
        source: Union[str, bytes, None] = None,
    ) -> None:
        """Store the accepted messages of one request and count the refused ones.

        ``source``, when given, is the JSON text ``accepted`` was decoded from
        (all of it accepted); it is kept instead of the objects.
        """
        with self._lock:
            self._requests_by_endpoint[endpoint] += 1
            self._rejected[endpoint] += rejected
            self._placeholder_ids[endpoint] += placeholder_ids
            if not accepted:
                return
            payload = accepted if source is None else source
            self._chunks.append(_Chunk(endpoint, payload, len(accepted)))
            self._raw_count[endpoint] += len(accepted)
            self._adds += 1
            freeze = self.gc_freeze and self._adds % self.FREEZE_EVERY == 0
        if freeze:
            gc.collect(1)
            gc.freeze()

    def _dedup(self) -> None:
        """Bring the unique lists up to date (lock held)."""
        for chunk in self._chunks[self._deduped:]:
            endpoint = chunk.endpoint
            seen = self._seen[endpoint]
            unique = self._unique[endpoint]
            for message in chunk.messages():
                key = _key(endpoint, message)
                if key is None:
                    unique.append(message)
                elif key not in seen:
                    seen.add(key)
                    unique.append(message)
        self._deduped = len(self._chunks)

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
            if endpoint is not None:
                endpoint = _endpoint(endpoint)
            return [
                {"endpoint": c.endpoint, "message": m}
                for c in self._chunks
                if endpoint is None or c.endpoint == endpoint
                for m in c.messages()
            ]

    def messages(self, endpoint: str) -> list[Any]:
        """The message dicts accepted on one endpoint (raw)."""
        endpoint = _endpoint(endpoint)
        with self._lock:
            return [m for c in self._chunks if c.endpoint == endpoint for m in c.messages()]

    def unique(self, endpoint: str) -> list[Any]:
        """The message dicts accepted on one endpoint, duplicates removed."""
        endpoint = _endpoint(endpoint)
        with self._lock:
            self._dedup()
            return list(self._unique[endpoint])

    def requests(self) -> list[dict[str, Any]]:
        """The request log."""
        with self._lock:
            return list(self._requests)

    def chunks_since(self, start: int) -> tuple[int, list[tuple[str, list[Any]]]]:
        """The generation, and (endpoint, messages) of each chunk after the first ``start``."""
        with self._lock:
            return self.generation, [(c.endpoint, c.messages()) for c in self._chunks[start:]]

    def requests_since(self, start: int) -> tuple[int, list[dict[str, Any]]]:
        """The generation, and the request log after its first ``start`` entries."""
        with self._lock:
            return self.generation, self._requests[start:]

    def stats(self) -> dict[str, Any]:
        """Counters: totals and per endpoint."""
        with self._lock:
            self._dedup()
            endpoints = {
                e: {
                    "requests": self._requests_by_endpoint[e],
                    "accepted": self._raw_count[e],
                    "raw": self._raw_count[e],
                    "unique": len(self._unique[e]),
                    "duplicates": self._raw_count[e] - len(self._unique[e]),
                    "rejected": self._rejected[e],
                    "placeholder_ids": self._placeholder_ids[e],
                }
                for e in ENDPOINTS
            }
            raw = sum(self._raw_count.values())
            return {
                "requests": len(self._requests),
                "bytes": self._bytes,
                "faults": self._faults,
                "accepted": raw,
                "raw": raw,
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
    if endpoint == "segment":
        return message.get("messageId")
    return None


class Fault:
    """One planned misbehaviour for the next ``count`` matching requests."""

    __slots__ = ("after_headers", "body", "count", "delay", "drop", "path", "retry_after",
                 "status")

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
        after_headers: bool = False,
    ) -> None:
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        if sum((status is not None, delay is not None, drop)) != 1:
            raise ValueError("a fault is exactly one of status, delay or drop")
        if after_headers and delay is None:
            raise ValueError("after_headers applies to a delay only")
        self.count = count
        self.status = status
        self.retry_after = retry_after
        self.body = body
        self.delay = delay
        self.drop = drop
        self.path = path
        self.after_headers = after_headers

    def matches(self, path: str) -> bool:
        return self.path is None or path.startswith(self.path)

    def describe(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "status": self.status,
            "retry_after": self.retry_after,
            "delay": self.delay,
            "after_headers": self.after_headers,
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
