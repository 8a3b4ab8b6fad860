"""Reading one log line into the ``(type, message_json)`` tuples it holds."""

from __future__ import annotations

import json
import re
from typing import Any, Union

from consumers.endpoints import MESSAGE_TYPES

_orjson: Any
try:  # the "fast" extra: about 4x faster to read a line; json decides what it refuses
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson not installed
    _orjson = None

__all__ = ["LINE_TYPES", "CorruptLineError", "parse_line", "parse_messages", "redact"]

#: Tuple types replay accepts (the Mixpanel ones, and PostHog's).
LINE_TYPES = (*MESSAGE_TYPES, "posthog")

_REDACT = re.compile(r'(\\*"api_key\\*"\s*:\s*)(\\*"(?:[^"\\]|\\.)*?\\*"|[^,}\]\s]+)')

Message = tuple[str, str]


class CorruptLineError(ValueError):
    """A log line that is not a readable ``[type, message]`` tuple."""


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _is_ruby_wrapper(obj: dict[str, Any]) -> bool:
    return "data" in obj and isinstance(obj["data"], (dict, list)) and set(obj) <= {
        "data", "api_key"}


def _unwrap(message_type: str, data: Any) -> list[Message]:
    if isinstance(data, dict):
        return [(message_type, _compact(data))]
    if not data:
        raise CorruptLineError("the Ruby batch under \"data\" holds no messages")
    for n, item in enumerate(data):
        if not isinstance(item, dict):
            raise CorruptLineError(
                f"message {n} of the Ruby batch under \"data\" is a {type(item).__name__}, "
                "not a JSON object"
            )
    return [(message_type, _compact(item)) for item in data]


def _loads(text: Union[bytes, str]) -> Any:
    """Read JSON faster when orjson is installed; accepts exactly what ``json`` accepts.

    What orjson refuses (NaN, lone surrogates, ...) is read by ``json`` again,
    so what is accepted never depends on the extra.  Numbers may differ
    (orjson reads integers past 64 bits as floats): never re-encode its values.
    """
    if _orjson is not None:
        try:
            return _orjson.loads(text)
        except _orjson.JSONDecodeError:
            pass
    return json.loads(text)


def parse_messages(raw: Union[bytes, str]) -> list[Message]:
    """One log line -> the ``(type, message_json)`` tuples it holds; raises CorruptLineError.

    A line in this toolkit's form holds one message, returned unchanged (byte
    for byte).  The Ruby library's wrapped form, ``{"data": {...}}`` or, from
    its ``BufferedConsumer`` block, ``{"data": [m1, m2, ...]}`` (either with an
    ``api_key``, which is dropped), and a message given as a JSON object
    instead of a string, are unwrapped and re-encoded compactly.
    """
    try:
        item = _loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise CorruptLineError(f"not JSON: {e}") from None
    if not isinstance(item, list) or len(item) != 2:
        raise CorruptLineError("not a JSON array [type, message]")
    message_type, message = item
    if not isinstance(message_type, str) or message_type not in LINE_TYPES:
        raise CorruptLineError(f"unknown message type {message_type!r}")
    if isinstance(message, str):
        try:
            obj = _loads(message)
        except (ValueError, RecursionError) as e:
            raise CorruptLineError(f"message is not JSON: {e}") from None
        if not isinstance(obj, dict):
            raise CorruptLineError("message is not a JSON object")
        if _is_ruby_wrapper(obj):  # re-encoded: from json's reading of the numbers
            return _unwrap(message_type, json.loads(message)["data"])
        return [(message_type, message)]
    if isinstance(message, dict):
        message = json.loads(raw)[1]  # re-encoded: from json's reading of the numbers
        if _is_ruby_wrapper(message):
            return _unwrap(message_type, message["data"])
        return [(message_type, _compact(message))]
    raise CorruptLineError(f"message is a {type(message).__name__}, not a JSON string or object")


def parse_line(raw: Union[bytes, str]) -> Message:
    """One log line holding one message -> ``(type, message_json)``; raises CorruptLineError.

    A Ruby batch line (several messages under ``"data"``) raises too: read
    those with :func:`parse_messages`.
    """
    messages = parse_messages(raw)
    if len(messages) != 1:
        raise CorruptLineError(
            f"the line holds a batch of {len(messages)} messages: use parse_messages()"
        )
    return messages[0]


def redact(text: str) -> str:
    """``text`` with the value of every ``api_key`` replaced (for reject files and errors)."""
    return _REDACT.sub(r'\1"[redacted]"', text)
