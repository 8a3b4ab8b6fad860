"""The collector's read API under ``/_collector/``: records, requests, stats, reset,
the fault plan and the inspector."""

from __future__ import annotations

import json

from consumers._collector.bodies import TOO_DEEP
from consumers._collector.faults import fault_from_json
from consumers._collector.inspector import Inspector
from consumers._collector.messages import Request, Response, json_response
from consumers._collector.store import FaultPlan, Store

__all__ = ["admin"]


def admin(store: Store, faults: FaultPlan, inspector: Inspector, request: Request) -> Response:
    """Answer one ``/_collector/...`` request."""
    action = request.path[len("/_collector/"):].rstrip("/")
    if action == "inspector" or action.startswith("inspector/"):
        return Response(*inspector.answer(action, request.method, request.query))
    try:
        if action == "records" and request.method == "GET":
            endpoint = request.query.get("endpoint") or None
            if endpoint is not None and request.query.get("unique") == "1":
                return json_response(200, store.unique(endpoint))
            return json_response(200, store.records(endpoint))
        if action == "requests" and request.method == "GET":
            return json_response(200, store.requests())
        if action == "stats" and request.method == "GET":
            return json_response(200, store.stats())
        if action == "reset" and request.method == "POST":
            store.reset()
            faults.clear()
            return json_response(200, {"status": "ok"})
        if action == "faults" and request.method == "GET":
            return json_response(200, faults.pending())
        if action == "faults" and request.method == "POST":
            try:
                spec = json.loads(request.body or b"{}")
            except RecursionError:
                raise ValueError(TOO_DEEP) from None
            if not isinstance(spec, dict):
                raise ValueError("expected a JSON object")
            faults.add(fault_from_json(spec))
            return json_response(200, {"status": "ok", "faults": faults.pending()})
    except (ValueError, TypeError) as exc:
        return json_response(400, {"error": str(exc), "status": 0})
    error = f"unknown read API call {request.method} {request.path}"
    return json_response(404, {"error": error, "status": 0})
