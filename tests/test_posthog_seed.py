"""A working Python twin of every code example in PostHog's Ruby docs (seed 000)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from decoded_sink import Capture

from tracker.posthog import LIB_NAME, Client

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cap() -> Capture:
    return Capture()


@pytest.fixture
def posthog(cap: Capture) -> Client:
    return Client(api_key="my_key", sink=cap)


def test_installation_client_with_host_and_on_error() -> None:
    posthog = Client(
        api_key="my_key",
        api_host="https://posthog.example.com",
        on_error=lambda status, msg: print(msg),
    )
    try:
        assert "https://posthog.example.com/batch/" in repr(posthog)
    finally:
        posthog.shutdown()  # nothing was captured: nothing to send


def test_capture(posthog: Client, cap: Capture) -> None:
    posthog.capture(
        distinct_id="distinct id",
        event="movie played",
        properties={
            "movie_id": "123",
            "category": "romcom",
        },
    )
    ((kind, m),) = cap.sent
    assert kind == "posthog"
    assert (m["type"], m["event"], m["distinct_id"]) == ("capture", "movie played", "distinct id")
    assert m["properties"]["movie_id"] == "123" and m["properties"]["category"] == "romcom"
    assert m["properties"]["$lib"] == LIB_NAME


def test_identify(posthog: Client, cap: Capture) -> None:
    posthog.identify(
        distinct_id="user:123",
        properties={
            "email": "john@doe.com",
            "pro_user": False,
        },
    )
    ((_, m),) = cap.sent
    assert (m["type"], m["event"], m["distinct_id"]) == ("identify", "$identify", "user:123")
    assert m["$set"] == {"email": "john@doe.com", "pro_user": False}


def test_alias(posthog: Client, cap: Capture) -> None:
    posthog.alias(
        distinct_id="user:123",
        alias="user:12345",
    )
    ((_, m),) = cap.sent
    assert (m["type"], m["event"]) == ("alias", "$create_alias")
    assert m["properties"]["distinct_id"] == "user:123"
    assert m["properties"]["alias"] == "user:12345"


def test_sending_page_views(posthog: Client, cap: Capture) -> None:
    posthog.capture(
        distinct_id="distinct id",
        event="$pageview",
        properties={
            "$current_url": "https://example.com",
        },
    )
    posthog.page(distinct_id="distinct id", url="https://example.com")
    (_, first), (_, second) = cap.sent
    for m in (first, second):
        assert m["event"] == "$pageview"
        assert m["properties"]["$current_url"] == "https://example.com"
    del first["uuid"], second["uuid"], first["timestamp"], second["timestamp"]
    assert first == second


def test_the_demo_runs_every_example_against_the_collector(
        capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("posthog_demo", ROOT / "demo" / "posthog_demo.py")
    assert spec is not None and spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    received = demo.main()
    assert [m["event"] for m in received] == [
        "movie played", "$identify", "$create_alias", "$pageview", "$pageview"]
    assert "5 PostHog message(s) received" in capsys.readouterr().out
