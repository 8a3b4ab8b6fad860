"""One HTTP request and its answer, as the collector's :class:`~.app.App` sees them."""

from __future__ import annotations

import json
from typing import Any, Optional
from urllib.parse import parse_qsl

__all__ = ["JSON", "TEXT", "Request", "Response", "json_response"]

JSON = "application/json"
TEXT = "text/plain"


class Request:
    """One HTTP request, as the server read it (header names lower-cased).

    ``peer`` is the client's ``host:port``: requests on one keep-alive
    connection share it.
    """

    __slots__ = ("body", "headers", "method", "path", "peer", "query", "raw_headers")

    def __init__(
        self,
        method: str,
        target: str,
        raw_headers: list[tuple[str, str]],
        body: bytes,
        peer: str = "",
    ) -> None:
        path, _, query = target.partition("?")
        self.method = method
        self.path = path
        self.query = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
        self.raw_headers = raw_headers
        self.headers = {k.lower(): v for k, v in raw_headers}
        self.body = body
        self.peer = peer


class Response:
    """What to answer; ``drop`` closes the connection instead, ``delay`` waits first.

    With ``delay_after_headers`` the wait comes between the headers and the body.
    """

    __slots__ = ("body", "content_type", "delay", "delay_after_headers", "drop", "headers",
                 "reason", "status")

    def __init__(
        self,
        status: int = 200,
        body: bytes = b"",
        content_type: str = JSON,
        headers: Optional[list[tuple[str, str]]] = None,
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or []
        self.delay = 0.0
        self.delay_after_headers = False
        self.drop = False
        self.reason: Optional[str] = None  # why (part of) it was refused, if the body hides it


def json_response(
    status: int, payload: Any, headers: Optional[list[tuple[str, str]]] = None
) -> Response:
    """A JSON answer."""
    return Response(status, json.dumps(payload).encode(), JSON, headers)
