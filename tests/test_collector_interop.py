"""The official Mixpanel and PostHog Python libraries, pointed at the local collector."""

from __future__ import annotations

import time
import warnings

import pytest

mixpanel = pytest.importorskip("mixpanel")


def test_mixpanel_library_track_people_groups_and_import(collector):
    consumer = mixpanel.Consumer(
        events_url=collector.url + "/track",
        people_url=collector.url + "/engage",
        groups_url=collector.url + "/groups",
        import_url=collector.url + "/import",
        retry_limit=0,
    )
    mp = mixpanel.Mixpanel("project-token", consumer=consumer)
    mp.track("user-1", "Signed up", {"plan": "pro"})
    mp.people_set("user-1", {"$name": "Ada"})
    mp.group_set("company", "acme", {"size": 10})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mp.import_data("api-key", "user-1", "Old event", int(time.time()) - 3600,
                       api_secret="api-secret")
    (tracked,) = collector.messages("track")
    assert tracked["event"] == "Signed up" and tracked["properties"]["token"] == "project-token"
    assert collector.messages("engage")[0]["$set"] == {"$name": "Ada"}
    assert collector.messages("groups")[0]["$group_id"] == "acme"
    assert collector.messages("import")[0]["event"] == "Old event"
    assert collector.stats()["rejected"] == 0


def test_posthog_library_batches_arrive(collector):
    posthog = pytest.importorskip("posthog")
    client = posthog.Posthog("phc_test_key", host=collector.url, sync_mode=True)
    client.capture("Signed up", distinct_id="user-1", properties={"plan": "pro"})
    # flush, not shutdown: posthog 6 (the last for Python 3.9) fails in
    # shutdown() in sync mode, having sent the message already.
    client.flush()
    (message,) = collector.messages("posthog")
    assert message["event"] == "Signed up" and message["distinct_id"] == "user-1"


def test_segment_library_batches_arrive(collector):
    analytics = pytest.importorskip("segment.analytics")
    client = analytics.Client("write-key", host=collector.url, sync_mode=True)
    client.track("user-1", "Signed up", {"plan": "pro"})
    client.flush()
    (message,) = collector.messages("segment")
    assert message["event"] == "Signed up" and message["userId"] == "user-1"
