"""The collector's inspector: a live page of what arrived and what was refused, and its JSON API.

``GET /_collector/inspector`` serves the page (one file, no external
assets); the page polls the JSON calls below with a cursor, so it shows
new messages without reloading and the server stays standard library:

* ``GET /_collector/inspector/messages``: one page of stored messages,
  newest first, as summaries.  ``after=SEQ`` (only newer than that),
  ``before=SEQ`` (only older), ``limit`` (default 100, at most 1000) and
  the filters ``endpoint``, ``type`` (exact), ``event`` and
  ``distinct_id`` (case-insensitive substrings).
* ``GET /_collector/inspector/message?seq=SEQ``: one message, whole.
* ``GET /_collector/inspector/state``: the counters, the fault plan in
  force and the refused requests (``after=INDEX`` for the newer ones only).

Every answer carries ``generation``, which changes when the collector is
reset: a client holding a cursor from before starts again.
"""

from __future__ import annotations

import json
import threading
from importlib import resources
from typing import TYPE_CHECKING, Any, Callable, Optional

from consumers._collector.store import ENDPOINTS, FaultPlan, Store, _key

if TYPE_CHECKING:
    from consumers._collector.messages import Response

__all__ = ["MAX_LIMIT", "Inspector", "refusal"]

#: The most message summaries one call returns.
MAX_LIMIT = 1000
#: The most refused requests one ``state`` call returns (newest first).
MAX_REFUSED = 200

_JSON = "application/json"
_OPERATIONS = ("$set", "$set_once", "$add", "$append", "$union", "$remove", "$unset", "$delete")
_TYPES = {"track": "event", "import": "import", "engage": "profile_update",
          "groups": "group_update"}

#: (endpoint, type, event or operation, distinct_id, time, duplicate, message)
_Row = tuple[str, str, str, str, Any, bool, Any]
_Answer = tuple[int, bytes, str]


def refusal(response: Response) -> Optional[str]:
    """The reason the collector gave for refusing (all or part of) a request, else None."""
    if response.drop:
        return "connection dropped without an answer (fault plan)"
    status, body = response.status, response.body
    if response.reason is not None:
        return response.reason
    # A 200 refuses only as {"status": 0} (the collector's own, or a fault's body).
    if status < 400 and not (b'"status": 0' in body or b'"status":0' in body):
        return None
    if response.content_type == _JSON and len(body) < 65536:
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if isinstance(answer, dict) and (status >= 400 or answer.get("status") == 0):
            reason = str(answer.get("error") or answer.get("detail") or f"status {status}")
            failed = answer.get("failed_records")
            if isinstance(failed, list) and failed and isinstance(failed[0], dict):
                reason += f": record {failed[0].get('index')}: {failed[0].get('message')}"
            return reason
    if status < 400:
        return None
    return body[:500].decode("utf-8", "replace") or f"status {status}"


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _summary(endpoint: str, message: Any) -> tuple[str, str, str, Any]:
    """(type, event or operation, distinct_id, time) of one stored message."""
    if not isinstance(message, dict):
        return "?", "", "", None
    if endpoint in ("track", "import"):
        props = message.get("properties")
        props = props if isinstance(props, dict) else {}
        return (_TYPES[endpoint], _text(message.get("event")), _text(props.get("distinct_id")),
                props.get("time"))
    if endpoint in ("engage", "groups"):
        operation = next((k for k in _OPERATIONS if k in message), "")
        if endpoint == "engage":
            who = message.get("$distinct_id")
        else:
            who = f"{_text(message.get('$group_key'))}={_text(message.get('$group_id'))}"
        return _TYPES[endpoint], operation, _text(who), message.get("$time")
    props = message.get("properties")
    props = props if isinstance(props, dict) else {}
    who = message.get("distinct_id") or message.get("userId") or message.get("anonymousId") \
        or props.get("distinct_id")
    kind = message.get("type") or ("capture" if endpoint == "posthog" else "")
    return _text(kind), _text(message.get("event")), _text(who), message.get("timestamp")


def _row_json(seq: int, row: _Row) -> dict[str, Any]:
    return {"seq": seq, "endpoint": row[0], "type": row[1], "name": row[2],
            "distinct_id": row[3], "time": row[4], "duplicate": row[5]}


def _predicate(query: dict[str, str]) -> Optional[Callable[[_Row], bool]]:
    endpoint = query.get("endpoint", "")
    kind = query.get("type", "")
    event = query.get("event", "").lower()
    who = query.get("distinct_id", "").lower()
    if endpoint and endpoint not in ENDPOINTS:
        raise ValueError(f"endpoint must be one of {ENDPOINTS}, got {endpoint!r}")
    if not (endpoint or kind or event or who):
        return None

    def matches(row: _Row) -> bool:
        return ((not endpoint or row[0] == endpoint) and (not kind or row[1] == kind)
                and (not event or event in row[2].lower())
                and (not who or who in row[3].lower()))
    return matches


def _int(query: dict[str, str], name: str, default: Optional[int]) -> Optional[int]:
    text = query.get(name, "")
    if text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {text!r}") from None


def _refused_json(index: int, entry: dict[str, Any]) -> dict[str, Any]:
    keys = ("time", "method", "path", "endpoint", "status", "fault", "error", "n_records",
            "accepted", "rejected", "peer")
    return {"index": index, **{k: entry.get(k) for k in keys}}


class Inspector:
    """Summaries of the store's messages, built as they are asked for, and the calls over them.

    The ingestion path does no extra work: each call first summarises the
    requests stored since the previous call.
    """

    def __init__(self, store: Store, faults: FaultPlan) -> None:
        self._store = store
        self._faults = faults
        self._lock = threading.Lock()
        self._forget(-1)

    def _forget(self, generation: int) -> None:
        self._generation = generation
        self._rows: list[_Row] = []
        self._chunks = 0
        self._seen: dict[str, set[Any]] = {e: set() for e in ENDPOINTS}
        self._counts: dict[tuple[str, ...], tuple[int, int]] = {}
        self._requests = 0
        self._refused: list[tuple[int, dict[str, Any]]] = []

    def _catch_up(self) -> None:
        """Summarise what arrived since the last call (lock held)."""
        generation, chunks = self._store.chunks_since(self._chunks)
        if generation != self._generation:
            self._forget(generation)
            generation, chunks = self._store.chunks_since(0)
        self._chunks += len(chunks)
        rows = self._rows
        for endpoint, messages in chunks:
            seen = self._seen[endpoint]
            for message in messages:
                key = _key(endpoint, message)
                duplicate = key is not None and key in seen
                if key is not None:
                    seen.add(key)
                rows.append((endpoint, *_summary(endpoint, message), duplicate, message))
        requests_generation, entries = self._store.requests_since(self._requests)
        if requests_generation == generation:
            for offset, entry in enumerate(entries):
                status = entry.get("status")
                if entry.get("error") or status is None or status >= 400:
                    self._refused.append((self._requests + offset, entry))
            self._requests += len(entries)

    def answer(self, action: str, method: str, query: dict[str, str]) -> _Answer:
        """(status, body, content type) for a ``/_collector/inspector...`` call."""
        if method != "GET":
            return _error(405, f"method {method} not allowed on /_collector/{action}")
        if action == "inspector":
            page = resources.files("consumers._collector").joinpath("inspector.html")
            return 200, page.read_bytes(), "text/html; charset=utf-8"
        call = action[len("inspector/"):]
        try:
            with self._lock:
                self._catch_up()
                if call == "messages":
                    return _ok(self._messages(query))
                if call == "message":
                    return self._message(query)
                if call == "state":
                    return _ok(self._state(query))
        except ValueError as exc:
            return _error(400, str(exc))
        return _error(404, f"unknown inspector call {action!r}")

    def _messages(self, query: dict[str, str]) -> dict[str, Any]:
        rows = self._rows
        limit = min(MAX_LIMIT, max(1, _int(query, "limit", 100) or 100))
        after = _int(query, "after", None)
        before = _int(query, "before", None)
        low = 0 if after is None else max(0, after + 1)
        high = len(rows) if before is None else max(0, min(before, len(rows)))
        matches = _predicate(query)
        page: list[dict[str, Any]] = []
        seq = high - 1
        while seq >= low and len(page) < limit:
            if matches is None or matches(rows[seq]):
                page.append(_row_json(seq, rows[seq]))
            seq -= 1
        more = any(matches is None or matches(rows[s]) for s in range(seq, low - 1, -1))
        return {"generation": self._generation, "last": len(rows) - 1, "total": len(rows),
                "matching": self._matching(query, matches), "rows": page, "more": more}

    def _matching(self, query: dict[str, str], matches: Optional[Callable[[_Row], bool]]) -> int:
        """How many rows match, counted on from the last call with the same filters."""
        if matches is None:
            return len(self._rows)
        key = tuple(query.get(k, "") for k in ("endpoint", "type", "event", "distinct_id"))
        upto, count = self._counts.get(key, (0, 0))
        count += sum(1 for row in self._rows[upto:] if matches(row))
        if len(self._counts) > 64:
            self._counts.clear()
        self._counts[key] = (len(self._rows), count)
        return count

    def _message(self, query: dict[str, str]) -> _Answer:
        seq = _int(query, "seq", None)
        if seq is None or not 0 <= seq < len(self._rows):
            return _error(404, f"no stored message with seq {query.get('seq', '')!r}")
        row = self._rows[seq]
        return _ok({"generation": self._generation, **_row_json(seq, row), "message": row[6]})

    def _state(self, query: dict[str, str]) -> dict[str, Any]:
        after = _int(query, "after", -1)
        newer = [r for r in reversed(self._refused[-MAX_REFUSED:]) if r[0] > (after or -1)]
        return {
            "generation": self._generation,
            "stats": self._store.stats(),
            "faults": self._faults.pending(),
            "refused_total": len(self._refused),
            "refused": [_refused_json(i, e) for i, e in newer],
        }


def _ok(payload: dict[str, Any]) -> _Answer:
    return 200, json.dumps(payload, default=str).encode(), _JSON


def _error(status: int, error: str) -> _Answer:
    return status, json.dumps({"error": error, "status": 0}).encode(), _JSON
