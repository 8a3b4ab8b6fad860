"""Turning request bodies into lists of messages, as the ingestion service reads them."""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from typing import Any, Optional
from urllib.parse import parse_qsl

__all__ = ["BodyError", "TooLargeError", "decode_data", "decompress", "parse_form", "parse_json"]


class BodyError(ValueError):
    """The body could not be read (bad gzip, bad base64, bad JSON)."""


class TooLargeError(ValueError):
    """The uncompressed body is larger than allowed."""


def decompress(body: bytes, limit: Optional[int] = None) -> bytes:
    """Gunzip ``body``; stop at ``limit`` uncompressed bytes (TooLargeError)."""
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        if limit is None:
            out = decoder.decompress(body)
        else:
            out = decoder.decompress(body, limit + 1)
            if len(out) > limit:
                raise TooLargeError(f"uncompressed body exceeds {limit} bytes")
        out += decoder.flush()
    except zlib.error as exc:
        raise BodyError(f"invalid gzip body: {exc}") from None
    if not decoder.eof:
        raise BodyError("invalid gzip body: truncated")
    return out


def parse_form(body: bytes) -> dict[str, str]:
    """The fields of an ``application/x-www-form-urlencoded`` body (last value wins)."""
    try:
        text = body.decode("ascii") if body.isascii() else body.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError("form body is not UTF-8") from None
    return dict(parse_qsl(text, keep_blank_values=True))


def decode_data(data: str) -> Any:
    """The ``data`` field: JSON, or base64 (standard or URL-safe) of JSON."""
    text = data.strip()
    if not text:
        raise BodyError("'data' is empty")
    if text[0] in "[{":
        return _loads(text)
    raw = text.encode("ascii", "replace")
    raw += b"=" * (-len(raw) % 4)
    try:
        if b"-" in raw or b"_" in raw:
            decoded = base64.urlsafe_b64decode(raw)
        else:
            decoded = base64.b64decode(raw)
    except (binascii.Error, ValueError):
        raise BodyError("'data' is neither JSON nor base64 of JSON") from None
    return _loads(decoded)


def parse_json(body: bytes, *, ndjson: bool = False) -> Any:
    """A JSON document, or (``ndjson``, or when it is not one document) a list of lines."""
    if not ndjson:
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            if b"\n" not in body.strip():
                raise BodyError(f"invalid JSON: {exc}") from None
    return [_loads(line) for line in body.splitlines() if line.strip()]


def _loads(text: Any) -> Any:
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BodyError(f"invalid JSON: {exc}") from None
