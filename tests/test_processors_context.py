"""``tracker.context(...)``: nested blocks, threads and asyncio tasks, over real HTTP."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from tracker import _version
from tracker.errors import InvalidInputError, InvalidTypeError
from tracker.posthog import LIB_NAME, Client
from tracker.processors import SuperProperties
from tracker.tracker import Tracker

FIXED = {"time": 1_700_000_000, "$insert_id": "id-1"}


def own(distinct_id: str) -> dict[str, Any]:
    return {"token": "TOKEN", "distinct_id": distinct_id, "time": 1_700_000_000_000,
            "$insert_id": "id-1", "mp_lib": "python", "$lib_version": _version.__version__}


def test_context_properties_and_id_reach_the_collector_and_nest(collector: Any) -> None:
    with Tracker("TOKEN", api_host=collector.url) as tracker:
        with tracker.context(plan="pro", distinct_id="u1"):
            tracker.track(None, "Outer", FIXED)
            with tracker.context(plan="team", page="home"):
                tracker.track(None, "Inner", FIXED)
                tracker.track("u2", "Other user", {"plan": "own", **FIXED})
            tracker.track(None, "Outer again", FIXED)
        tracker.track("u3", "Outside", FIXED)
        tracker.people.set("u1", {"a": 1})
    assert collector.messages("track") == [
        {"event": "Outer", "properties": {"plan": "pro", **own("u1")}},
        {"event": "Inner", "properties": {"plan": "team", "page": "home", **own("u1")}},
        {"event": "Other user", "properties": {"page": "home", **own("u2"), "plan": "own"}},
        {"event": "Outer again", "properties": {"plan": "pro", **own("u1")}},
        {"event": "Outside", "properties": own("u3")},
    ]
    assert collector.messages("engage")[0]["$set"] == {"a": 1}


def test_context_wins_over_super_properties_and_the_call_over_both(collector: Any) -> None:
    supers = SuperProperties({"plan": "free", "app": "shop", "page": "?"})
    with Tracker("TOKEN", api_host=collector.url, processors=[supers]) as tracker:
        with tracker.context(plan="pro", page="home"):
            tracker.track("u1", "E", {"page": "cart", **FIXED})
    assert collector.messages("track") == [{"event": "E", "properties": {
        "plan": "pro", "app": "shop", **own("u1"), "page": "cart"}}]


def test_a_none_id_outside_a_context_is_still_refused() -> None:
    tracker = Tracker("TOKEN", lambda t, m: None)
    with tracker.context(plan="pro"):  # properties only: no id to stand in
        with pytest.raises(InvalidTypeError, match="distinct_id must be a str"):
            tracker.track(None, "E")
    with pytest.raises(InvalidTypeError, match="distinct_id must be a str"):
        tracker.track(None, "E")


def test_bad_context_values_raise_when_the_block_is_entered() -> None:
    tracker = Tracker("TOKEN", lambda t, m: None)
    with pytest.raises(InvalidInputError, match=r"context\['price'\]: NaN"):
        tracker.context(price=float("nan"))
    with pytest.raises(InvalidInputError, match="context distinct_id must not be empty"):
        tracker.context(distinct_id="")


def test_threads_never_see_each_others_context(collector: Any) -> None:
    tracker = Tracker("TOKEN", api_host=collector.url)
    both_inside = threading.Barrier(2, timeout=30)
    errors: list[BaseException] = []

    def request(user: str) -> None:
        try:
            with tracker.context(distinct_id=user, request=f"req-{user}"):
                both_inside.wait()  # each thread's block is open while the other tracks
                for i in range(20):
                    tracker.track(None, "Step", {"i": i})
                both_inside.wait()
            tracker.track(f"{user}-after", "After")
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=request, args=(u,)) for u in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    tracker.close()
    assert errors == []
    steps = [m["properties"] for m in collector.messages("track") if m["event"] == "Step"]
    assert len(steps) == 40
    assert all(p["request"] == f"req-{p['distinct_id']}" for p in steps)
    after = [m["properties"] for m in collector.messages("track") if m["event"] == "After"]
    assert sorted(p["distinct_id"] for p in after) == ["a-after", "b-after"]
    assert all("request" not in p for p in after)


def test_asyncio_tasks_keep_their_own_context_and_children_inherit_it(collector: Any) -> None:
    tracker = Tracker("TOKEN", api_host=collector.url)

    async def child() -> None:
        await asyncio.sleep(0)
        tracker.track(None, "Child")

    async def handler(user: str) -> None:
        with tracker.context(distinct_id=user, user_task=user):
            for i in range(5):
                tracker.track(None, "Step", {"i": i})
                await asyncio.sleep(0)  # let the other task run inside its own block
            await asyncio.create_task(child())
        tracker.track(f"{user}-after", "After")

    async def main() -> None:
        await asyncio.gather(handler("a"), handler("b"))

    asyncio.run(main())
    tracker.close()
    messages = collector.messages("track")
    steps = [m["properties"] for m in messages if m["event"] in ("Step", "Child")]
    assert len(steps) == 12
    assert all(p["user_task"] == p["distinct_id"] for p in steps)
    assert sorted(p["distinct_id"] for p in steps if "i" not in p) == ["a", "b"]
    after = [m["properties"] for m in messages if m["event"] == "After"]
    assert all("user_task" not in p for p in after) and len(after) == 2


def test_the_posthog_client_has_a_context_too(collector: Any) -> None:
    client = Client("phc_key", collector.url)
    with client.context(distinct_id="u1", plan="pro"):
        client.capture(None, "E", {"x": 1}, uuid="0190b6f1-5c2a-7a4e-9f00-1234567890ab",
                       timestamp="2024-05-01T12:00:00Z")
    client.shutdown()
    assert collector.messages("posthog") == [{
        "type": "capture", "event": "E", "distinct_id": "u1",
        "properties": {"x": 1, "$lib": LIB_NAME, "$lib_version": _version.__version__,
                       "$geoip_disable": True, "plan": "pro"},
        "timestamp": "2024-05-01T12:00:00.000000+00:00",
        "uuid": "0190b6f1-5c2a-7a4e-9f00-1234567890ab",
    }]


def test_posthog_super_properties_and_context_give_one_message_wherever_they_run(
        collector: Any) -> None:
    def noop(message_type: str, message: dict[str, Any]) -> dict[str, Any]:
        return message

    supers = SuperProperties({"service": "billing", "plan": "free", "$lib": "mine"})
    early = Client("phc_key", collector.url, processors=[supers])
    late = Client("phc_key", collector.url, processors=[noop, supers])
    for client in (early, late):
        with client.context(distinct_id="u1", plan="pro", page="home"):
            client.capture(None, "E", {"page": "cart"}, uuid="0190b6f1-5c2a-7a4e-9f00-1234567890ab",
                           timestamp="2024-05-01T12:00:00Z", groups={"company": "acme"})
            client.identify(None, {"name": "Ann"}, uuid="0190b6f1-5c2a-7a4e-9f00-1234567890ab",
                            timestamp="2024-05-01T12:00:00Z")
        client.shutdown()
    messages = collector.messages("posthog")
    assert len(messages) == 4
    assert messages[0] == messages[2] and messages[1] == messages[3]
    assert messages[0]["properties"] == {
        "service": "billing", "plan": "pro", "page": "cart", "$groups": {"company": "acme"},
        "$lib": LIB_NAME, "$lib_version": _version.__version__, "$geoip_disable": True}
    assert messages[1]["properties"]["service"] == "billing"
    assert messages[1]["properties"]["plan"] == "pro"
