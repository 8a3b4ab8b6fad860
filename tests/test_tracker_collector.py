"""Every message the tracker builds is accepted by the local collector over real HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_tracker_spec import every_call

from tracker.tracker import Tracker

PATHS = {"event": "/track", "profile_update": "/engage", "group_update": "/groups",
         "import": "/import"}


@pytest.fixture
def live_collector(request: pytest.FixtureRequest) -> Any:
    """The shared ``collector`` fixture."""
    return request.getfixturevalue("collector")


def post(collector: Any, message_type: str, message_json: str) -> Any:
    import requests

    url = collector.url + PATHS[message_type]
    if message_type == "import":
        return requests.post(
            url, params={"strict": "1", "project_id": "1"}, data="[" + message_json + "]",
            headers={"Content-Type": "application/json"}, auth=("TOKEN", ""), timeout=30,
        )
    return requests.post(url, params={"verbose": "1"}, data={"data": "[" + message_json + "]"},
                         timeout=30)


def test_the_collector_accepts_every_message(live_collector: Any) -> None:
    sent: list[tuple[str, str]] = []
    every_call(Tracker("TOKEN", lambda t, m: sent.append((t, m))))
    for message_type, message_json in sent:
        response = post(live_collector, message_type, message_json)
        assert response.status_code == 200, (message_type, message_json, response.text)
        if message_type != "import":
            assert json.loads(response.text)["status"] == 1, response.text
    counts = {e: len(live_collector.messages(e)) for e in ("track", "engage", "groups", "import")}
    expected = {e: 0 for e in counts}
    for message_type, _ in sent:
        expected[PATHS[message_type].strip("/")] += 1
    assert counts == expected


def test_tracker_with_a_consumer_delivers_to_the_collector(live_collector: Any) -> None:
    with Tracker("TOKEN", api_host=live_collector.url) as tracker:
        assert tracker.track("u1", "Signed up", {"plan": "pro"})
        assert tracker.people.set("u1", {"plan": "pro"})
        assert tracker.groups.set("Company", "Acme", {"plan": "pro"})
        assert tracker.alias("new-id", "u1")
    events = [m["event"] for m in live_collector.messages("track")]
    assert events == ["Signed up", "$create_alias"]
    assert len(live_collector.messages("engage")) == 1
    assert len(live_collector.messages("groups")) == 1


def test_alias_bypasses_a_buffering_consumer_and_keeps_its_host(live_collector: Any) -> None:
    from consumers import BufferedConsumer

    buffered = BufferedConsumer(api_host=live_collector.url, max_batch=50)
    tracker = Tracker("TOKEN", buffered)
    tracker.track("u1", "Buffered")
    assert tracker.alias("new-id", "u1")
    # the alias arrived at once, on the tracker's own host; the event waits in the buffer
    assert [m["event"] for m in live_collector.messages("track")] == ["$create_alias"]
    hosts = {r["headers"].get("Host", "") for r in live_collector.requests()}
    assert all("mixpanel.com" not in h for h in hosts)
    buffered.flush()
    assert [m["event"] for m in live_collector.messages("track")] == ["$create_alias", "Buffered"]
    tracker.close()
    buffered.close()
