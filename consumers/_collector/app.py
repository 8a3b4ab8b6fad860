"""The collector's protocol: one request in, one answer out, whatever server carries it.

:class:`App` never blocks and never touches sockets: a delay or a dropped
connection is returned as data in the :class:`Response` and carried out by
the server.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, Callable, Optional, Union
from urllib.parse import parse_qsl

from consumers._collector.bodies import (
    TOO_DEEP,
    BodyError,
    Loads,
    TooLargeError,
    decode_data,
    decompress,
    parse_form,
    parse_json,
)
from consumers._collector.inspector import Inspector, refusal
from consumers._collector.ratelimit import RateLimiter
from consumers._collector.store import Fault, FaultPlan, Store
from consumers._collector.validation import (
    DISALLOWED_IDS,
    MAX_EVENT_BYTES,
    MAX_IMPORT_BYTES,
    MAX_RECORDS,
    MAX_REQUEST_BYTES,
    Problem,
    all_events_valid,
    check_engage,
    check_event,
    check_group,
)

__all__ = ["App", "Credentials", "Request", "Response"]

_JSON = "application/json"
_TEXT = "text/plain"
_RATE_LIMITED = "Project exceeded rate limits. Please retry the request with exponential backoff."
_TOO_LARGE = f"request exceeds max limit of {MAX_IMPORT_BYTES} bytes"
#: PostHog's capture service refuses batch bodies over 20 MB (uncompressed).
MAX_BATCH_BYTES = 20 * 1024 * 1024
#: What ``/track?img=1`` answers: a 1x1 transparent GIF, as the real service serves.
PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff"
    b"!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


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
        content_type: str = _JSON,
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


def _json_response(
    status: int, payload: Any, headers: Optional[list[tuple[str, str]]] = None
) -> Response:
    return Response(status, json.dumps(payload).encode(), _JSON, headers)


class Credentials:
    """Which /import credentials to accept. Nothing configured: any well-formed credentials."""

    def __init__(
        self,
        service_accounts: Optional[Mapping[str, str]] = None,
        project_id: Optional[str] = None,
        project_token: Optional[str] = None,
        api_secret: Optional[str] = None,
    ) -> None:
        self._service_accounts = dict(service_accounts or {})
        self._project_id = None if project_id is None else str(project_id)
        self._tokens = {t for t in (project_token, api_secret) if t}
        self._open = not (self._service_accounts or self._tokens)

    def __repr__(self) -> str:
        return f"Credentials(service_accounts={sorted(self._service_accounts)}, open={self._open})"

    def check(self, authorization: Optional[str], project_id: Optional[str]) -> Optional[str]:
        """None if allowed, else the reason for a 401."""
        user, password = _basic(authorization)
        if user is None or password is None or not user:
            return "Invalid credentials"
        if password:
            if not project_id:
                return "project_id is required for service account authentication"
            if self._open:
                return None
            if self._service_accounts.get(user) != password:
                return "Invalid credentials"
            if self._project_id is not None and project_id != self._project_id:
                return "Invalid credentials"
            return None
        if self._open or user in self._tokens:
            return None
        return "Invalid credentials"


def _basic(header: Optional[str]) -> tuple[Optional[str], Optional[str]]:
    if not header or not header[:6].lower() == "basic ":
        return None, None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else (None, None)


class App:
    """Routes requests to the ingestion endpoints, the read API and the fault plan."""

    def __init__(
        self,
        store: Store,
        faults: FaultPlan,
        credentials: Credentials,
        on_request: Optional[Callable[[dict[str, Any]], None]] = None,
        loads: Loads = json.loads,
    ) -> None:
        self.loads = loads
        self.store = store
        self.faults = faults
        self.limiter = RateLimiter()
        self.credentials = credentials
        self.on_request = on_request
        self.inspector = Inspector(store, faults)

    def handle(self, request: Request) -> Response:
        """Answer one request (never raises for bad input)."""
        path = request.path
        if path.startswith("/_collector/"):
            return self._admin(request)
        route = _ROUTES.get(path.rstrip("/") or "/")
        fault = self.faults.take(path)
        if fault is None and route is not None:
            fault = self.limiter.take(path)
        entry: dict[str, Any] = {
            "method": request.method,
            "path": path,
            "query": request.query,
            "headers": _redacted(request.raw_headers),
            "status": None,
            "n_records": 0,
            "accepted": 0,
            "rejected": 0,
            "bytes": len(request.body),
            "endpoint": route,
            "fault": None,
            "peer": request.peer,
            "time": time.time(),
        }
        if fault is not None and fault.delay is None:
            entry["fault"] = "drop" if fault.drop else "status"
            response = self._fault_response(fault, route)
        else:
            response = self._serve(request, route, entry)
            if fault is not None:
                entry["fault"] = "delay after headers" if fault.after_headers else "delay"
                response.delay = fault.delay or 0.0
                response.delay_after_headers = fault.after_headers
        entry["status"] = None if response.drop else response.status
        entry["error"] = refusal(response)
        self.store.log_request(entry, fault=fault is not None)
        if self.on_request is not None:
            self.on_request(entry)
        return response

    # -- ingestion ---------------------------------------------------------------

    def _serve(self, request: Request, route: Optional[str], entry: dict[str, Any]) -> Response:
        if route is None:
            return _json_response(404, {"error": f"unknown path {request.path}", "status": 0})
        if request.method not in ("POST", "GET"):
            error = f"method {request.method} not allowed"
            return _json_response(405, {"error": error, "status": 0})
        if route in ("posthog", "segment"):
            return self._batch_api(request, route, entry)
        if route == "import":
            return self._import(request, entry)
        return self._track_like(request, route, entry)

    def _track_like(self, request: Request, route: str, entry: dict[str, Any]) -> Response:
        response = self._track_answer(request, route, entry)
        if route == "track" and request.query.get("img") == "1" and response.status == 200:
            return Response(200, PIXEL, "image/gif", [("Cache-Control", "no-cache, no-store")])
        return response

    def _track_answer(self, request: Request, route: str, entry: dict[str, Any]) -> Response:
        verbose = request.query.get("verbose") == "1"
        try:
            payload, form, source = _read_payload(request, MAX_REQUEST_BYTES, self.loads)
            verbose = verbose or form.get("verbose") == "1"
        except TooLargeError:
            self.store.add(route, [], 0)
            return _too_large()
        except BodyError as exc:
            self.store.add(route, [], 0)
            return _status_answer(False, str(exc), verbose)
        records = payload if isinstance(payload, list) else [payload]
        entry["n_records"] = len(records)
        if not records:
            self.store.add(route, [], 0)
            return _status_answer(False, "no data objects in the request", verbose)
        if len(records) > MAX_RECORDS:
            self.store.add(route, [], len(records))
            entry["rejected"] = len(records)
            return _status_answer(
                False, f"too many records: {len(records)} (max {MAX_RECORDS})", verbose
            )
        accepted, problems, placeholders = _validate(
            records, route, time.time_ns() // 1_000_000, request
        )
        self.store.add(
            route, accepted, len(problems), placeholders, source=None if problems else source
        )
        entry["accepted"] = len(accepted)
        entry["rejected"] = len(problems)
        if accepted:
            return _status_answer(True, problems[0][1].message if problems else None, verbose)
        return _status_answer(False, problems[0][1].message, verbose)

    def _import(self, request: Request, entry: dict[str, Any]) -> Response:
        reason = self.credentials.check(
            request.headers.get("authorization"), request.query.get("project_id")
        )
        if reason is not None:
            self.store.add("import", [], 0)
            return _json_response(401, {"code": 401, "error": reason, "status": "Unauthorized"})
        if len(request.body) > MAX_IMPORT_BYTES:
            self.store.add("import", [], 0)
            return _too_large()
        strict = request.query.get("strict") == "1"
        try:
            payload, form, source = _read_payload(request, MAX_IMPORT_BYTES, self.loads)
        except TooLargeError:
            self.store.add("import", [], 0)
            return _too_large()
        except BodyError as exc:
            self.store.add("import", [], 0)
            return _bad_request(str(exc))
        strict = strict or form.get("strict") == "1"
        # The form-encoded legacy request (as older libraries send it) gets /track's answer.
        legacy = bool(form) and not strict
        verbose = request.query.get("verbose") == "1" or form.get("verbose") == "1"
        records = payload if isinstance(payload, list) else [payload]
        entry["n_records"] = len(records)
        if not records or len(records) > MAX_RECORDS:
            self.store.add("import", [], len(records))
            entry["rejected"] = len(records)
            error = (
                "no records in the request"
                if not records
                else f"request contains {len(records)} records, max is {MAX_RECORDS}"
            )
            if legacy:
                return _status_answer(False, error, verbose)
            return _bad_request(error)
        accepted, problems, _ = _validate(
            records, "import", time.time_ns() // 1_000_000, request
        )
        self.store.add("import", accepted, len(problems), source=None if problems else source)
        entry["accepted"] = len(accepted)
        entry["rejected"] = len(problems)
        if legacy:
            if accepted:
                return _status_answer(True, None, verbose)
            return _status_answer(False, problems[0][1].message, verbose)
        if strict and problems:
            return _json_response(
                400,
                {
                    "code": 400,
                    "error": "some data points in the request failed validation",
                    "status": "Bad Request",
                    "num_records_imported": len(accepted),
                    "failed_records": [_failed_record(i, records[i], p) for i, p in problems],
                },
            )
        return _json_response(
            200, {"code": 200, "num_records_imported": len(accepted), "status": "OK"}
        )

    def _batch_api(self, request: Request, route: str, entry: dict[str, Any]) -> Response:
        """PostHog's ``/batch/`` and Segment's ``/v1/batch``: ``{"batch": [...]}`` plus a key."""
        try:
            body = request.body
            compression = request.query.get("compression", "")
            if request.headers.get("content-encoding", "") == "gzip" or "gzip" in compression:
                body = decompress(body, MAX_BATCH_BYTES)
            elif len(body) > MAX_BATCH_BYTES:
                raise TooLargeError(f"body exceeds {MAX_BATCH_BYTES} bytes")
            payload = parse_json(body, loads=self.loads) if body.strip() else None
        except TooLargeError as exc:
            self.store.add(route, [], 0)
            return _posthog_error(413, "validation_error", "payload_too_large", str(exc))
        except BodyError as exc:
            self.store.add(route, [], 0)
            return _posthog_error(
                400, "validation_error", "invalid_payload", f"Malformed request data: {exc}"
            )
        if isinstance(payload, list):
            payload = {"batch": payload}
        batch = payload.get("batch") if isinstance(payload, dict) else None
        if not isinstance(batch, list) or not all(isinstance(m, dict) for m in batch):
            self.store.add(route, [], 0)
            return _posthog_error(
                400, "validation_error", "invalid_payload",
                "Malformed request data: expected {'api_key': ..., 'batch': [object, ...]}",
            )
        if not _batch_key(route, payload, batch, request):  # type: ignore[arg-type]
            self.store.add(route, [], 0)
            return _posthog_error(
                401, "authentication_error", "invalid_api_key",
                "API key not found. You must pass your project API key with every request.",
            )
        entry["n_records"] = entry["accepted"] = len(batch)
        if route == "posthog" and payload.get("historical_migration") is True:  # type: ignore[union-attr]
            entry["historical_migration"] = True  # an import, kept apart from live events
        self.store.add(route, batch, 0)
        return _json_response(200, {"status": "Ok"} if route == "posthog" else {"success": True})

    # -- faults ------------------------------------------------------------------

    def _fault_response(self, fault: Fault, route: Optional[str]) -> Response:
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
            return _json_response(status, _status_body(status, route), headers)
        if isinstance(body, dict):
            return _json_response(status, body, headers)
        raw = body.encode() if isinstance(body, str) else body
        return Response(status, raw, _JSON if raw[:1] in (b"{", b"[") else _TEXT, headers)

    # -- read API ----------------------------------------------------------------

    def _admin(self, request: Request) -> Response:
        action = request.path[len("/_collector/"):].rstrip("/")
        if action == "inspector" or action.startswith("inspector/"):
            return Response(*self.inspector.answer(action, request.method, request.query))
        try:
            if action == "records" and request.method == "GET":
                endpoint = request.query.get("endpoint") or None
                if endpoint is not None and request.query.get("unique") == "1":
                    return _json_response(200, self.store.unique(endpoint))
                return _json_response(200, self.store.records(endpoint))
            if action == "requests" and request.method == "GET":
                return _json_response(200, self.store.requests())
            if action == "stats" and request.method == "GET":
                return _json_response(200, self.store.stats())
            if action == "reset" and request.method == "POST":
                self.store.reset()
                self.faults.clear()
                return _json_response(200, {"status": "ok"})
            if action == "faults" and request.method == "GET":
                return _json_response(200, self.faults.pending())
            if action == "faults" and request.method == "POST":
                try:
                    spec = json.loads(request.body or b"{}")
                except RecursionError:
                    raise ValueError(TOO_DEEP) from None
                if not isinstance(spec, dict):
                    raise ValueError("expected a JSON object")
                self.faults.add(fault_from_json(spec))
                return _json_response(200, {"status": "ok", "faults": self.faults.pending()})
        except (ValueError, TypeError) as exc:
            return _json_response(400, {"error": str(exc), "status": 0})
        error = f"unknown read API call {request.method} {request.path}"
        return _json_response(404, {"error": error, "status": 0})


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


_ROUTES = {
    "/track": "track",
    "/engage": "engage",
    "/groups": "groups",
    "/import": "import",
    "/batch": "posthog",
    "/v1/batch": "segment",
}

_CHECKS: dict[str, Callable[[Any], Optional[Problem]]] = {
    "engage": check_engage,
    "groups": check_group,
}


def _read_payload(
    request: Request, limit: int, loads: Loads
) -> tuple[Any, dict[str, str], Union[str, bytes, None]]:
    """The decoded payload, the form fields (empty unless a form), and the JSON text.

    ``limit`` bounds the uncompressed body (TooLargeError beyond it).
    """
    body = request.body
    if request.headers.get("content-encoding", "").lower() == "gzip":
        body = decompress(body, limit)
    elif len(body) > limit:
        raise TooLargeError(f"body exceeds {limit} bytes")
    content_type = request.headers.get("content-type", "").lower()
    form: dict[str, str] = {}
    if request.method == "GET" or "x-www-form-urlencoded" in content_type or (
        not content_type and body.startswith(b"data=")
    ):
        form = parse_form(body) if request.method != "GET" else {}
        if "data" not in form and "data" in request.query:
            form["data"] = request.query["data"]
        if "data" not in form:
            raise BodyError("missing 'data' field")
        payload, text = decode_data(form["data"], loads)
        return payload, form, text
    if not body.strip():
        raise BodyError("empty body")
    if "ndjson" in content_type:
        return parse_json(body, ndjson=True, loads=loads), form, None
    payload = parse_json(body, loads=loads)
    return payload, form, body if isinstance(payload, (list, dict)) else None


def _validate(
    records: list[Any], route: str, now_ms: int, request: Request
) -> tuple[list[Any], list[tuple[int, Problem]], int]:
    """Accepted records, (index, problem) for refused ones, and placeholder distinct_ids."""
    imported = route == "import"
    # Only a body over the per-event limit can hold an event over it.
    sized = len(request.body) > MAX_EVENT_BYTES or "content-encoding" in request.headers
    check = _CHECKS.get(route)
    if check is None and not sized:
        placeholders = all_events_valid(records, imported=imported, now_ms=now_ms)
        if placeholders is not None:
            return records, [], placeholders
    accepted: list[Any] = []
    problems: list[tuple[int, Problem]] = []
    placeholders = 0
    for index, message in enumerate(records):
        if check is not None:
            problem = check(message)
        else:
            problem = check_event(message, imported=imported, now_ms=now_ms)
        if problem is None and sized:
            problem = _size_problem(message)
        if problem is None:
            accepted.append(message)
            if route == "track" and _placeholder(message):
                placeholders += 1
        else:
            problems.append((index, problem))
    return accepted, problems, placeholders


def _size_problem(message: Any) -> Optional[Problem]:
    try:
        size = len(json.dumps(message, separators=(",", ":")).encode())
    except RecursionError:  # it decoded, but only just: refused like a body nested deeper
        return Problem("", TOO_DEEP)
    if size > MAX_EVENT_BYTES:
        return Problem("", f"event exceeds max size of {MAX_EVENT_BYTES} bytes")
    return None


def _placeholder(message: dict[str, Any]) -> bool:
    distinct_id = message["properties"].get("distinct_id")
    return isinstance(distinct_id, str) and distinct_id.lower() in DISALLOWED_IDS


def _failed_record(index: int, message: Any, problem: Problem) -> dict[str, Any]:
    insert_id = ""
    if isinstance(message, dict) and isinstance(message.get("properties"), dict):
        value = message["properties"].get("$insert_id")
        insert_id = value if isinstance(value, str) else ""
    return {
        "index": index,
        "insert_id": insert_id,
        "field": problem.field,
        "message": problem.message,
    }


def _status_answer(ok: bool, error: Optional[str], verbose: bool) -> Response:
    if verbose:
        response = _json_response(200, {"status": 1 if ok else 0, "error": None if ok else error})
    else:
        response = Response(200, b"1" if ok else b"0", _TEXT)
    response.reason = error
    return response


def _bad_request(error: str) -> Response:
    return _json_response(
        400, {"code": 400, "error": error, "status": "Bad Request", "num_records_imported": 0}
    )


def _too_large() -> Response:
    return _json_response(
        413, {"code": 413, "error": _TOO_LARGE, "status": "Request Entity Too Large"}
    )


def _status_body(status: int, route: Optional[str]) -> dict[str, Any]:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    if route in ("posthog", "segment"):
        return {"type": "server_error", "code": str(status), "detail": phrase, "attr": None}
    if route != "import" and status in (401, 403):
        return {"error": phrase, "status": "error"}
    error = {429: _RATE_LIMITED, 413: _TOO_LARGE, 401: "Invalid credentials"}.get(status, phrase)
    return {"code": status, "error": error, "status": phrase}


def _batch_key(
    route: str, payload: dict[str, Any], batch: list[dict[str, Any]], request: Request
) -> Optional[str]:
    """The project key of a batch: in the body (PostHog) or as the Basic user (Segment)."""
    if route == "segment":
        user, _ = _basic(request.headers.get("authorization"))
        return user or payload.get("writeKey") or None
    key = payload.get("api_key") or payload.get("token")
    if not key and batch:
        key = batch[0].get("api_key") or batch[0].get("token")
    return key or None


def _posthog_error(status: int, kind: str, code: str, detail: str) -> Response:
    return _json_response(status, {"type": kind, "code": code, "detail": detail, "attr": None})


def _redacted(raw_headers: list[tuple[str, str]]) -> dict[str, str]:
    """The headers for the log: credentials replaced, a service-account user name kept."""
    out: dict[str, str] = {}
    for name, value in raw_headers:
        if name.lower() == "authorization":
            scheme, _, credentials = value.partition(" ")
            user, password = _basic(value)
            value = f"{scheme} <redacted>" if credentials else "<redacted>"
            if user and password:
                out["X-Collector-Service-Account"] = user
        out[name] = value
    return out
