"""Stream entries: ids, XREADGROUP replies, and telling good entries from bad ones."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Optional

import attrs

from consumers.errors import Message

try:
    import orjson as _fast_json
except ImportError:  # pragma: no cover - orjson is the optional "fast" extra
    _fast_json = None  # type: ignore[assignment]


def _json_loads(text: str) -> Any:
    return _fast_json.loads(text) if _fast_json is not None else json.loads(text)


@attrs.frozen
class Entry:
    """One stream entry: its id and the tuple it carries."""

    id: str
    type: str
    message: str

    @property
    def tuple(self) -> Message:
        return (self.type, self.message)


def text(value: Any) -> str:
    """``value`` as a str (Redis replies are bytes unless decoded)."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def id_key(entry_id: str) -> tuple[int, int]:
    """A sort key for stream ids."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def next_id(entry_id: str) -> str:
    """The smallest id after ``entry_id``."""
    ms, seq = id_key(entry_id)
    return f"{ms}-{seq + 1}"


def entries_of(reply: Any) -> list[tuple[Any, Any]]:
    """The entries of a one-stream XREADGROUP reply (RESP2 list or RESP3 map)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        streams = list(reply.values())
        return list(streams[0][0]) if streams and streams[0] else []
    return list(reply[0][1])


def triage(
    raw: Sequence[tuple[Any, Any]], worn: dict[str, int], max_deliveries: int
) -> tuple[list[Entry], list[tuple[Entry, str]], list[str]]:
    """Sort a batch: entries to deliver, entries to dead-letter (with the reason), and
    the ids of entries deleted from the stream while pending.

    ``worn`` maps the ids of entries handed out too often to how often.
    """
    good: list[Entry] = []
    dead: list[tuple[Entry, str]] = []
    gone: list[str] = []
    for raw_id, fields in raw:
        entry_id = text(raw_id)
        if fields is None:
            gone.append(entry_id)
            continue
        entry, reason = parse(entry_id, fields)
        if reason is None and worn and entry_id in worn:
            # Entries that keep coming back from dead workers may be what kills them.
            reason = (f"handed to workers {worn[entry_id]} times without an ack "
                      f"(max_deliveries={max_deliveries})")
        if reason is None:
            good.append(entry)
        else:
            dead.append((entry, reason))
    return good, dead, gone


def parse(entry_id: str, fields: dict[Any, Any]) -> tuple[Entry, Optional[str]]:
    """The entry, and why it must be dead-lettered (None when it is well formed)."""
    decoded: dict[str, str] = {}
    try:
        for key, value in fields.items():
            decoded[text(key)] = text(value)
    except UnicodeDecodeError:
        raw = {_text_lossy(k): _text_lossy(v) for k, v in fields.items()}
        return Entry(entry_id, raw.get("type", ""), raw.get("message", "")), "not UTF-8"
    type_ = decoded.get("type")
    message = decoded.get("message")
    if not type_ or message is None:
        missing = "type" if not type_ else "message"
        raw_text = json.dumps(decoded, ensure_ascii=False)[:2000]
        return Entry(entry_id, type_ or "", message if message is not None else raw_text), (
            f"malformed entry: no {missing!r} field"
        )
    entry = Entry(entry_id, type_, message)
    try:
        parsed = _json_loads(message)
    except ValueError as exc:
        return entry, f"malformed entry: message is not JSON ({exc})"
    if not isinstance(parsed, dict):
        return entry, "malformed entry: message is not a JSON object"
    return entry, None


def _text_lossy(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
