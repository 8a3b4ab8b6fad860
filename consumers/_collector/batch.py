"""The PostHog and Segment batch APIs: ``{"batch": [...]}`` plus a project key."""

from __future__ import annotations

from typing import Any, Optional

from consumers._collector.bodies import BodyError, Loads, TooLargeError, decompress, parse_json
from consumers._collector.credentials import basic
from consumers._collector.messages import Request, Response, json_response
from consumers._collector.store import Store

__all__ = ["MAX_BATCH_BYTES", "batch_api"]

#: PostHog's capture service refuses batch bodies over 20 MB (uncompressed).
MAX_BATCH_BYTES = 20 * 1024 * 1024


def batch_api(
    store: Store, loads: Loads, request: Request, route: str, entry: dict[str, Any]
) -> Response:
    """PostHog's ``/batch/`` and Segment's ``/v1/batch``: ``{"batch": [...]}`` plus a key."""
    try:
        body = request.body
        compression = request.query.get("compression", "")
        if request.headers.get("content-encoding", "") == "gzip" or "gzip" in compression:
            body = decompress(body, MAX_BATCH_BYTES)
        elif len(body) > MAX_BATCH_BYTES:
            raise TooLargeError(f"body exceeds {MAX_BATCH_BYTES} bytes")
        payload = parse_json(body, loads=loads) if body.strip() else None
    except TooLargeError as exc:
        store.add(route, [], 0)
        return _posthog_error(413, "validation_error", "payload_too_large", str(exc))
    except BodyError as exc:
        store.add(route, [], 0)
        return _posthog_error(
            400, "validation_error", "invalid_payload", f"Malformed request data: {exc}"
        )
    if isinstance(payload, list):
        payload = {"batch": payload}
    batch = payload.get("batch") if isinstance(payload, dict) else None
    if not isinstance(batch, list) or not all(isinstance(m, dict) for m in batch):
        store.add(route, [], 0)
        return _posthog_error(
            400, "validation_error", "invalid_payload",
            "Malformed request data: expected {'api_key': ..., 'batch': [object, ...]}",
        )
    if not _batch_key(route, payload, batch, request):  # type: ignore[arg-type]
        store.add(route, [], 0)
        return _posthog_error(
            401, "authentication_error", "invalid_api_key",
            "API key not found. You must pass your project API key with every request.",
        )
    entry["n_records"] = entry["accepted"] = len(batch)
    if route == "posthog" and payload.get("historical_migration") is True:  # type: ignore[union-attr]
        entry["historical_migration"] = True  # an import, kept apart from live events
    store.add(route, batch, 0)
    return json_response(200, {"status": "Ok"} if route == "posthog" else {"success": True})


def _batch_key(
    route: str, payload: dict[str, Any], batch: list[dict[str, Any]], request: Request
) -> Optional[str]:
    """The project key of a batch: in the body (PostHog) or as the Basic user (Segment)."""
    if route == "segment":
        user, _ = basic(request.headers.get("authorization"))
        return user or payload.get("writeKey") or None
    key = payload.get("api_key") or payload.get("token")
    if not key and batch:
        key = batch[0].get("api_key") or batch[0].get("token")
    return key or None


def _posthog_error(status: int, kind: str, code: str, detail: str) -> Response:
    return json_response(status, {"type": kind, "code": code, "detail": detail, "attr": None})
