"""Turning request bodies into lists of messages, as the ingestion service reads them.

Every function here raises only :class:`BodyError` or :class:`TooLargeError`
for bad input, whatever the bytes (deep nesting included).
"""

from __future__ import annotations

import binascii
import json
import zlib
from typing import Any, Callable, Optional
from urllib.parse import parse_qsl, unquote_plus

__all__ = [
    "TOO_DEEP",
    "BodyError",
    "Loads",
    "TooLargeError",
    "decode_data",
    "decompress",
    "fast_loads",
    "parse_form",
    "parse_json",
]

#: A JSON decoder: ``json.loads`` or :func:`fast_loads`.
Loads = Callable[[Any], Any]


def fast_loads() -> Optional[Loads]:
    """``orjson.loads`` falling back to ``json.loads`` on what orjson refuses, if installed.

    The fallback keeps exactly the standard library's acceptance (NaN,
    integers beyond 64 bits); orjson only makes the common case faster.
    """
    try:
        import orjson
    except ImportError:
        return None
    orjson_loads = orjson.loads
    orjson_dumps = orjson.dumps
    decode_error = orjson.JSONDecodeError

    def loads(text: Any) -> Any:
        try:
            value = orjson_loads(text)
        except decode_error:
            return json.loads(text)
        # orjson follows any depth of nesting, json only the recursion limit less the
        # stack in use: what json cannot decode must not be stored, or reading it back
        # fails.  Only a text with many brackets can nest that deep, and orjson.dumps
        # refuses more than 255 levels, cheaply: json decides on those texts.
        if len(text) > 2 * _SURELY_DECODABLE and _openers(text) > _SURELY_DECODABLE:
            try:
                orjson_dumps(value)
            except TypeError:
                return json.loads(text)
        return value

    return loads


#: json decodes this many levels of nesting from any stack a server is likely to have.
_SURELY_DECODABLE = 500


def _openers(text: Any) -> int:
    """How many ``[`` and ``{`` a JSON text holds (in strings too: an upper bound)."""
    if isinstance(text, str):
        return text.count("[") + text.count("{")
    data = bytes(text)  # the same object when it already is bytes
    return data.count(b"[") + data.count(b"{")


class BodyError(ValueError):
    """The body could not be read (bad gzip, bad base64, bad JSON)."""


class TooLargeError(ValueError):
    """The uncompressed body is larger than allowed."""


#: What a body nested deeper than the decoder can follow is refused with.
TOO_DEEP = "invalid JSON: nested too deeply"


def decompress(body: bytes, limit: int) -> bytes:
    """Gunzip ``body``; stop at ``limit`` uncompressed bytes (TooLargeError).

    Never holds more than ``limit + 1`` uncompressed bytes, however well the
    body compresses.
    """
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = decoder.decompress(body, limit + 1)
        if len(out) > limit:
            raise TooLargeError(f"uncompressed body exceeds {limit} bytes")
        # Output stopped short of the cap, so all input was consumed: this is a small tail.
        out += decoder.flush()
    except zlib.error as exc:
        raise BodyError(f"invalid gzip body: {exc}") from None
    if len(out) > limit:
        raise TooLargeError(f"uncompressed body exceeds {limit} bytes")
    if not decoder.eof:
        raise BodyError("invalid gzip body: truncated")
    return out


def parse_form(body: bytes) -> dict[str, str]:
    """The fields of an ``application/x-www-form-urlencoded`` body (last value wins)."""
    if body.startswith(b"data=") and b"&" not in body and body.isascii():
        return {"data": unquote_plus(body[5:].decode("ascii"))}
    try:
        text = body.decode("ascii") if body.isascii() else body.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError("form body is not UTF-8") from None
    return dict(parse_qsl(text, keep_blank_values=True))


def decode_data(data: str, loads: Loads = json.loads) -> tuple[Any, str]:
    """The ``data`` field (JSON, or base64 of JSON) decoded, and its JSON text."""
    first = data[:1]
    if first.isspace():
        data = data.strip()
        first = data[:1]
    if not first:
        raise BodyError("'data' is empty")
    if first in "[{":
        return _loads(data, loads), data
    if "-" in data or "_" in data:
        data = data.replace("-", "+").replace("_", "/")
    if len(data) % 4:
        data += "=" * (-len(data) % 4)
    try:
        decoded = binascii.a2b_base64(data)
    except (binascii.Error, ValueError):
        raise BodyError("'data' is neither JSON nor base64 of JSON") from None
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError("'data' is not UTF-8 JSON") from None
    return _loads(text, loads), text


def parse_json(body: bytes, *, ndjson: bool = False, loads: Loads = json.loads) -> Any:
    """A JSON document, or (``ndjson``, or when it is not one document) a list of lines."""
    if not ndjson:
        try:
            return loads(body)
        except RecursionError:
            raise BodyError(TOO_DEEP) from None
        except (ValueError, UnicodeDecodeError) as exc:
            if b"\n" not in body.strip():
                raise BodyError(f"invalid JSON: {exc}") from None
    return [_loads(line, loads) for line in body.splitlines() if line.strip()]


def _loads(text: Any, loads: Loads = json.loads) -> Any:
    try:
        return loads(text)
    except RecursionError:
        raise BodyError(TOO_DEEP) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BodyError(f"invalid JSON: {exc}") from None
