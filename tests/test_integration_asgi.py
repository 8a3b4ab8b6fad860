"""The ASGI middleware and lifespan: a Starlette app under a real uvicorn server."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from tests.framework_apps import events_named, free_port, popen, sent_twice, stop, wait_http, write

pytest.importorskip("starlette", reason="the ASGI integration test needs Starlette")
pytest.importorskip("uvicorn", reason="the ASGI integration test needs uvicorn")

APP = """
    import os
    from starlette.applications import Starlette
    from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
    from starlette.middleware import Middleware
    from starlette.middleware.authentication import AuthenticationMiddleware
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from tracker.integrations import Tracking
    from tracker.integrations.asgi import TrackingMiddleware, lifespan, user_context

    if os.environ["CONSUMER"] == "asyncio":  # delivered by a task on uvicorn's loop
        from consumers.aio import AsyncBackgroundConsumer, AsyncConsumer

        # a request's worth not reached, nor the interval: only the shutdown delivers them
        consumer = AsyncBackgroundConsumer(AsyncConsumer(api_host=os.environ["COLLECTOR"]),
                                           spool=os.environ["SPOOL"], flush_interval=600)
        tracking = Tracking("asgi-token", consumer=consumer)
    else:
        tracking = Tracking("asgi-token", api_host=os.environ["COLLECTOR"])

    class HeaderAuth(AuthenticationBackend):
        async def authenticate(self, conn):
            user = conn.headers.get("X-User")
            return (AuthCredentials(["authenticated"]), SimpleUser(user)) if user else None

    async def signup(request):
        tracking.tracker.track(None, "Signed Up", {"plan": request.query_params["plan"]})
        return JSONResponse({"ok": True})

    async def link(request):
        tracking.tracker.alias("user-0@example.com", "user-0")
        return JSONResponse({"ok": True})

    def report(request):  # a sync endpoint: Starlette runs it in a worker thread
        tracking.tracker.track(None, "Report Viewed")
        return JSONResponse({"ok": True})

    def context(scope):
        return {**user_context(scope), "route": scope["path"]}

    middleware = [
        Middleware(AuthenticationMiddleware, backend=HeaderAuth()),
        Middleware(TrackingMiddleware, tracking=tracking, context=context),
    ]
    routes = [Route("/signup", signup, methods=["POST"]), Route("/report", report),
              Route("/link", link, methods=["POST"])]
    if os.environ.get("LIFESPAN") == "app":
        app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan(tracking))
    else:  # no lifespan of the app's own: the middleware closes at the server's shutdown
        app = Starlette(routes=routes, middleware=middleware)
"""


@pytest.mark.parametrize("consumer", ["threaded", "asyncio"])
@pytest.mark.parametrize("lifespan", ["app", "middleware"])
def test_requests_carry_the_user_and_shutdown_delivers_all(collector, tmp_path: Path,
                                                             lifespan: str, consumer: str):
    import requests

    if consumer == "asyncio":
        pytest.importorskip("httpx", reason="the asyncio consumer needs httpx")
    write(tmp_path, "asgi_app.py", APP)
    spool = tmp_path / "spool"
    port = free_port()
    server = popen([sys.executable, "-m", "uvicorn", "asgi_app:app", "--port", str(port),
                    "--log-level", "warning"], tmp_path, COLLECTOR=collector.url,
                   LIFESPAN=lifespan, CONSUMER=consumer, SPOOL=str(spool))
    try:
        wait_http(f"http://127.0.0.1:{port}/report", server)
        with requests.Session() as http:
            assert http.post(f"http://127.0.0.1:{port}/link").status_code == 200
            for i in range(40):
                answer = http.post(f"http://127.0.0.1:{port}/signup?plan=p{i % 2}",
                                   headers={"X-User": f"user-{i}"})
                assert answer.status_code == 200, answer.text
            for _ in range(10):
                assert http.get(f"http://127.0.0.1:{port}/report",
                                headers={"X-User": "reader"}).status_code == 200
    finally:
        out = stop(server, signal.SIGINT)
    assert server.returncode == 0, out
    assert len(events_named(collector, "$create_alias")) == 1
    # delivered at shutdown, not left on disk for a next run
    assert [p for p in spool.rglob("*") if p.is_file() and p.stat().st_size] == []
    signups = events_named(collector, "Signed Up")
    assert len(signups) == 40 and sent_twice(collector) == 0, out
    assert {e["properties"]["distinct_id"] for e in signups} == {f"user-{i}" for i in range(40)}
    assert all(e["properties"]["route"] == "/signup" for e in signups)
    reports = events_named(collector, "Report Viewed")
    assert len(reports) == 10
    assert {e["properties"]["distinct_id"] for e in reports} == {"reader"}
