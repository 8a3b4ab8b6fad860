"""Mixpanel's ingestion endpoints: ``/track``, ``/engage``, ``/groups`` and ``/import``.

Each reads the payload (JSON, NDJSON, form-encoded ``data=``, gzip), validates
every record as the service does and answers in that endpoint's format.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Optional, Union

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
from consumers._collector.credentials import Credentials
from consumers._collector.faults import TOO_LARGE
from consumers._collector.messages import TEXT, Request, Response, json_response
from consumers._collector.store import Store
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

__all__ = ["PIXEL", "import_", "track_like"]

#: What ``/track?img=1`` answers: a 1x1 transparent GIF, as the real service serves.
PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff"
    b"!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)

_CHECKS: dict[str, Callable[[Any], Optional[Problem]]] = {
    "engage": check_engage,
    "groups": check_group,
}


def track_like(
    store: Store, loads: Loads, request: Request, route: str, entry: dict[str, Any]
) -> Response:
    """Answer ``/track``, ``/engage`` or ``/groups`` (``route``)."""
    response = _track_answer(store, loads, request, route, entry)
    if route == "track" and request.query.get("img") == "1" and response.status == 200:
        return Response(200, PIXEL, "image/gif", [("Cache-Control", "no-cache, no-store")])
    return response


def _track_answer(
    store: Store, loads: Loads, request: Request, route: str, entry: dict[str, Any]
) -> Response:
    verbose = request.query.get("verbose") == "1"
    try:
        payload, form, source = _read_payload(request, MAX_REQUEST_BYTES, loads)
        verbose = verbose or form.get("verbose") == "1"
    except TooLargeError:
        store.add(route, [], 0)
        return _too_large()
    except BodyError as exc:
        store.add(route, [], 0)
        return _status_answer(False, str(exc), verbose)
    records = payload if isinstance(payload, list) else [payload]
    entry["n_records"] = len(records)
    if not records:
        store.add(route, [], 0)
        return _status_answer(False, "no data objects in the request", verbose)
    if len(records) > MAX_RECORDS:
        store.add(route, [], len(records))
        entry["rejected"] = len(records)
        return _status_answer(
            False, f"too many records: {len(records)} (max {MAX_RECORDS})", verbose
        )
    accepted, problems, placeholders = _validate(
        records, route, time.time_ns() // 1_000_000, request
    )
    store.add(
        route, accepted, len(problems), placeholders, source=None if problems else source
    )
    entry["accepted"] = len(accepted)
    entry["rejected"] = len(problems)
    if accepted:
        return _status_answer(True, problems[0][1].message if problems else None, verbose)
    return _status_answer(False, problems[0][1].message, verbose)


def import_(
    store: Store, loads: Loads, credentials: Credentials, request: Request,
    entry: dict[str, Any],
) -> Response:
    """Answer ``/import`` (strict or not, and the form-encoded legacy request)."""
    reason = credentials.check(
        request.headers.get("authorization"), request.query.get("project_id")
    )
    if reason is not None:
        store.add("import", [], 0)
        return json_response(401, {"code": 401, "error": reason, "status": "Unauthorized"})
    if len(request.body) > MAX_IMPORT_BYTES:
        store.add("import", [], 0)
        return _too_large()
    strict = request.query.get("strict") == "1"
    try:
        payload, form, source = _read_payload(request, MAX_IMPORT_BYTES, loads)
    except TooLargeError:
        store.add("import", [], 0)
        return _too_large()
    except BodyError as exc:
        store.add("import", [], 0)
        return _bad_request(str(exc))
    strict = strict or form.get("strict") == "1"
    # The form-encoded legacy request (as older libraries send it) gets /track's answer.
    legacy = bool(form) and not strict
    verbose = request.query.get("verbose") == "1" or form.get("verbose") == "1"
    records = payload if isinstance(payload, list) else [payload]
    entry["n_records"] = len(records)
    if not records or len(records) > MAX_RECORDS:
        store.add("import", [], len(records))
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
    store.add("import", accepted, len(problems), source=None if problems else source)
    entry["accepted"] = len(accepted)
    entry["rejected"] = len(problems)
    if legacy:
        if accepted:
            return _status_answer(True, None, verbose)
        return _status_answer(False, problems[0][1].message, verbose)
    if strict and problems:
        return json_response(
            400,
            {
                "code": 400,
                "error": "some data points in the request failed validation",
                "status": "Bad Request",
                "num_records_imported": len(accepted),
                "failed_records": [_failed_record(i, records[i], p) for i, p in problems],
            },
        )
    return json_response(
        200, {"code": 200, "num_records_imported": len(accepted), "status": "OK"}
    )


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
        response = json_response(200, {"status": 1 if ok else 0, "error": None if ok else error})
    else:
        response = Response(200, b"1" if ok else b"0", TEXT)
    response.reason = error
    return response


def _bad_request(error: str) -> Response:
    return json_response(
        400, {"code": 400, "error": error, "status": "Bad Request", "num_records_imported": 0}
    )


def _too_large() -> Response:
    return json_response(
        413, {"code": 413, "error": TOO_LARGE, "status": "Request Entity Too Large"}
    )
