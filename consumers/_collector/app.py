"""The collector's protocol: one request in, one answer out, whatever server carries it.

:class:`App` never blocks and never touches sockets: a delay or a dropped
connection is returned as data in the :class:`Response` and carried out by
the server.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Optional

from consumers._collector.admin import admin
from consumers._collector.batch import MAX_BATCH_BYTES as MAX_BATCH_BYTES
from consumers._collector.batch import batch_api
from consumers._collector.bodies import Loads
from consumers._collector.credentials import Credentials as Credentials
from consumers._collector.credentials import redacted
from consumers._collector.faults import fault_from_json as fault_from_json
from consumers._collector.faults import fault_response
from consumers._collector.ingest import PIXEL as PIXEL
from consumers._collector.ingest import import_, track_like
from consumers._collector.inspector import Inspector, refusal
from consumers._collector.messages import Request as Request
from consumers._collector.messages import Response as Response
from consumers._collector.messages import json_response
from consumers._collector.ratelimit import RateLimiter
from consumers._collector.store import FaultPlan, Store

__all__ = ["App", "Credentials", "Request", "Response"]


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
            return admin(self.store, self.faults, self.inspector, request)
        route = _ROUTES.get(path.rstrip("/") or "/")
        fault = self.faults.take(path)
        if fault is None and route is not None:
            fault = self.limiter.take(path)
        entry: dict[str, Any] = {
            "method": request.method,
            "path": path,
            "query": request.query,
            "headers": redacted(request.raw_headers),
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
            response = fault_response(fault, route)
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

    # -- routing ------------------------------------------------------------------

    def _serve(self, request: Request, route: Optional[str], entry: dict[str, Any]) -> Response:
        if route is None:
            return json_response(404, {"error": f"unknown path {request.path}", "status": 0})
        if request.method not in ("POST", "GET"):
            error = f"method {request.method} not allowed"
            return json_response(405, {"error": error, "status": 0})
        if route in ("posthog", "segment"):
            return batch_api(self.store, self.loads, request, route, entry)
        if route == "import":
            return import_(self.store, self.loads, self.credentials, request, entry)
        return track_like(self.store, self.loads, request, route, entry)


_ROUTES = {
    "/track": "track",
    "/engage": "engage",
    "/groups": "groups",
    "/import": "import",
    "/batch": "posthog",
    "/v1/batch": "segment",
}
