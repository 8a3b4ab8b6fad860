"""The lifespan recipes of docs/asyncio.md under a real uvicorn and a real aiohttp server."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from consumers.aio import AsyncBackgroundConsumer, AsyncConsumer
from tests.consumer_messages import quick_retry
from tracker import Tracker

fastapi = pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
web = pytest.importorskip("aiohttp.web")

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_consumer(collector: Any, spool: Path) -> AsyncBackgroundConsumer:
    inner = AsyncConsumer(api_host=collector.url, retry=quick_retry(2))
    return AsyncBackgroundConsumer(inner, spool=spool, shutdown_timeout=1.0,
                                   probe_interval=0.01, max_probe_interval=0.05)


def fastapi_app(collector: Any, spool: Path, made: list[AsyncBackgroundConsumer]) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        consumer = make_consumer(collector, spool)
        made.append(consumer)
        app.state.tracker = Tracker("project-token-1", consumer)
        async with consumer:
            yield

    app = fastapi.FastAPI(lifespan=lifespan)

    @app.post("/signup/{user_id}")
    async def signup(user_id: str, request: fastapi.Request) -> dict[str, bool]:
        request.app.state.tracker.track(user_id, "Signed up")
        return {"ok": True}

    @app.post("/legacy/{user_id}")
    def legacy(user_id: str, request: fastapi.Request) -> dict[str, bool]:
        request.app.state.tracker.track(user_id, "Used the old form")  # a worker thread
        return {"ok": True}

    return app


async def serve_uvicorn(app: Any, paths: list[str]) -> None:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0,
                                           log_level="warning", lifespan="on"))
    serving = asyncio.ensure_future(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        for path in paths:
            assert (await client.post(path)).json() == {"ok": True}
    server.should_exit = True
    await serving


PATHS = [f"/signup/user-{i}" for i in range(20)] + [f"/legacy/user-{i}" for i in range(20)]


async def test_fastapi_lifespan_delivers_at_shutdown(collector: Any, tmp_path: Path) -> None:
    made: list[AsyncBackgroundConsumer] = []
    await serve_uvicorn(fastapi_app(collector, tmp_path, made), PATHS)
    events = collector.unique("track")
    assert len(events) == 40
    assert {m["properties"]["distinct_id"] for m in events} == {f"user-{i}" for i in range(20)}
    assert made[0].stats()["delivered"] == 40


async def test_fastapi_shutdown_during_an_outage_spools_and_the_next_start_delivers(
        collector: Any, tmp_path: Path) -> None:
    collector.fail_next(100_000, 503, path="/track")
    made: list[AsyncBackgroundConsumer] = []
    await serve_uvicorn(fastapi_app(collector, tmp_path, made), PATHS)
    assert collector.unique("track") == []
    assert made[0].stats()["spilled"] == 40
    collector.clear_faults()
    await serve_uvicorn(fastapi_app(collector, tmp_path, made), ["/signup/late"])
    assert len(collector.unique("track")) == 41


def aiohttp_app(collector: Any, spool: Path) -> Any:
    key = web.AppKey("tracker", Tracker)

    async def tracking(app: Any) -> Any:
        consumer = make_consumer(collector, spool)
        app[key] = Tracker("project-token-1", consumer)
        async with consumer:
            yield

    async def signup(request: Any) -> Any:
        request.app[key].track(request.match_info["user_id"], "Signed up")
        return web.json_response({"ok": True})

    app = web.Application()
    app.cleanup_ctx.append(tracking)
    app.router.add_post("/signup/{user_id}", signup)
    return app


async def serve_aiohttp(app: Any, users: list[str]) -> None:
    import aiohttp

    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with aiohttp.ClientSession() as session:
        for user in users:
            async with session.post(f"http://127.0.0.1:{port}/signup/{user}") as answer:
                assert await answer.json() == {"ok": True}
    await runner.cleanup()


async def test_aiohttp_cleanup_context_delivers_at_shutdown(collector: Any,
                                                           tmp_path: Path) -> None:
    await serve_aiohttp(aiohttp_app(collector, tmp_path), [f"u{i}" for i in range(30)])
    assert len(collector.unique("track")) == 30


async def test_aiohttp_shutdown_with_a_slow_destination_ends_on_time_and_loses_nothing(
        collector: Any, tmp_path: Path) -> None:
    collector.delay_next(1, 5.0, path="/track")  # longer than the 1 s shutdown deadline
    await serve_aiohttp(aiohttp_app(collector, tmp_path), [f"u{i}" for i in range(10)])
    await serve_aiohttp(aiohttp_app(collector, tmp_path), [])  # the next start replays
    # the slow request's batch was accepted late and spooled too: duplicates, not losses
    ids = {m["properties"]["distinct_id"] for m in collector.unique("track")}
    assert ids == {f"u{i}" for i in range(10)}
