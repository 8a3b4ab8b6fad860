"""The collector's injected faults: what a planned failure answers, and reading a
fault from the read API's JSON."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, Optional

from consumers._collector.messages import JSON, TEXT, Response, json_response
from consumers._collector.store import Fault
from consumers._collector.validation import MAX_IMPORT_BYTES

__all__ = ["RATE_LIMITED", "TOO_LARGE", "fault_from_json", "fault_response"]

RATE_LIMITED = "Project exceeded rate limits. Please retry the request with exponential backoff."
TOO_LARGE = f"request exceeds max limit of {MAX_IMPORT_BYTES} bytes"


def fault_response(fault: Fault, route: Optional[str]) -> Response:
    """The answer of ``fault`` on an endpoint (``route``; None for an unknown path)."""
    if fault.drop:
        response = Response()
        response.drop = True
        return response
    status = fault.status or 503
    headers = []
    if fault.retry_after is not None:
        headers.append(("Retry-After", str(fault.retry_after)))
    body = fault.body
    if body is None:
        return json_response(status, _status_body(status, route), headers)
    if isinstance(body, dict):
        return json_response(status, body, headers)
    raw = body.encode() if isinstance(body, str) else body
    return Response(status, raw, JSON if raw[:1] in (b"{", b"[") else TEXT, headers)


def _status_body(status: int, route: Optional[str]) -> dict[str, Any]:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    if route in ("posthog", "segment"):
        return {"type": "server_error", "code": str(status), "detail": phrase, "attr": None}
    if route != "import" and status in (401, 403):
        return {"error": phrase, "status": "error"}
    error = {429: RATE_LIMITED, 413: TOO_LARGE, 401: "Invalid credentials"}.get(status, phrase)
    return {"code": status, "error": error, "status": phrase}


def fault_from_json(spec: Mapping[str, Any]) -> Fault:
    """A Fault from the read API's JSON.

    Keys: ``count`` (default 1), one of ``status`` / ``delay`` / ``drop``
    (default status 503), and optional ``retry_after``, ``body``, ``path``,
    ``after_headers`` (with ``delay``).
    """
    unknown = set(spec) - {"count", "status", "retry_after", "delay", "drop", "path", "body",
                           "after_headers"}
    if unknown:
        raise ValueError(f"unknown fault keys: {sorted(unknown)}")
    drop = bool(spec.get("drop", False))
    delay = spec.get("delay")
    status = spec.get("status")
    if status is None and delay is None and not drop:
        status = 503
    return Fault(
        int(spec.get("count", 1)),
        status=None if status is None else int(status),
        retry_after=spec.get("retry_after"),
        body=spec.get("body"),
        delay=None if delay is None else float(delay),
        drop=drop,
        path=spec.get("path"),
        after_headers=bool(spec.get("after_headers", False)),
    )
