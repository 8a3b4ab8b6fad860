"""HTTP/1.1 bytes, shared by both servers: a request's head and chunked body, an answer's bytes.

No sockets here: the servers read bytes, hand them to these functions, and
send the bytes that come out.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any, Optional

from consumers._collector.app import App, Request, Response

__all__ = ["MAX_HEAD", "FramingError", "answer", "dechunk", "parse_head", "peer", "refusal",
           "render", "render_head"]

# the servers' logger, under the name docs/logging.md gives it
logger = logging.getLogger("consumers._collector.servers")

_PHRASES = {s.value: s.phrase for s in HTTPStatus}
#: A request head longer than this is refused (431).
MAX_HEAD = 64 * 1024
#: A chunk-size line longer than this is not one (the size itself is at most 16 hex digits).
_MAX_CHUNK_LINE = 4096
_HEX = frozenset(b"0123456789abcdefABCDEF")


class FramingError(ValueError):
    """The request's body framing (chunked encoding) is malformed; the connection is lost."""


def answer(app: App, request: Request) -> Response:
    """The App's answer; a bug in it becomes a 500, never a connection closed unanswered."""
    try:
        return app.handle(request)
    except Exception as exc:
        logger.exception("collector: error answering %s %s", request.method, request.path)
        error = f"internal error in the collector: {type(exc).__name__}"
        return Response(500, json.dumps({"error": error, "status": 0}).encode())


def refusal(status: int, reason: str = "") -> Response:
    """A plain-text refusal of a request that could not be read."""
    return Response(status, reason.encode("latin-1", "replace"), "text/plain")


def render(response: Response, close: bool) -> bytes:
    """The response's bytes on the wire."""
    return render_head(response, close) + response.body


def render_head(response: Response, close: bool) -> bytes:
    """The status line and headers, up to the blank line before the body."""
    lines = [
        f"HTTP/1.1 {response.status} {_PHRASES.get(response.status, 'Unknown')}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
    ]
    lines.extend(f"{name}: {value}" for name, value in response.headers)
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def peer(address: Any) -> str:
    """``host:port`` of a client address (``""`` when unknown)."""
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return ""


def parse_head(
    head: bytes,
) -> Optional[tuple[str, str, list[tuple[str, str]], int, bool, bool, bool]]:
    """``(method, target, headers, length, chunked, close, expect)`` of a request head
    (without its blank line), or None when it is not HTTP/1.x."""
    try:
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers: list[tuple[str, str]] = []
        length = 0
        chunked = False
        close = version == "HTTP/1.0"
        expect = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            value = value.strip()
            headers.append((name, value))
            lower = name.lower()
            if lower == "content-length":
                length = int(value)
            elif lower == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif lower == "connection":
                close = value.lower() == "close" or (
                    version == "HTTP/1.0" and value.lower() != "keep-alive"
                )
            elif lower == "expect":
                expect = value.lower() == "100-continue"
    except ValueError:
        return None
    if length < 0 or not version.startswith("HTTP/1."):
        return None
    return method, target, headers, length, chunked, close, expect


def dechunk(buffer: bytes, start: int) -> Optional[tuple[bytes, int]]:
    """The chunked body starting at ``start`` and where it ends, or None if incomplete.

    Raises FramingError when the bytes cannot be a chunked body.
    """
    chunks: list[bytes] = []
    pos = start
    while True:
        eol = buffer.find(b"\r\n", pos, pos + _MAX_CHUNK_LINE)
        if eol < 0:
            if len(buffer) - pos >= _MAX_CHUNK_LINE:
                raise FramingError("malformed chunked body: chunk-size line too long")
            return None
        size = _chunk_size(buffer[pos:eol])
        pos = eol + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n", pos)
            while trailer_end > pos:
                pos = trailer_end + 2
                trailer_end = buffer.find(b"\r\n", pos)
            if trailer_end < 0:
                return None
            return b"".join(chunks), trailer_end + 2
        if len(buffer) < pos + size + 2:
            return None
        if buffer[pos + size:pos + size + 2] != b"\r\n":
            raise FramingError("malformed chunked body: chunk data not followed by CRLF")
        chunks.append(buffer[pos:pos + size])
        pos += size + 2


def _chunk_size(line: bytes) -> int:
    digits = line.split(b";", 1)[0].strip()
    if not digits or len(digits) > 16 or not _HEX.issuperset(digits):
        raise FramingError(f"malformed chunked body: invalid chunk size {line[:40]!r}")
    return int(digits, 16)

