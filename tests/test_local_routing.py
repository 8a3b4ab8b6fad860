"""Code written for the cloud hosts (region="eu", PostHog's default) runs against a local collector.

Over real HTTP: the collector records every request with its headers, so each
test sees which host the code chose (``X-Forwarded-Host``) and that the
request really arrived here.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from consumers import BufferedConsumer, Consumer, PostHogConsumer, TransportError
from consumers.errors import ConfigurationError
from consumers.local import LOCAL_COLLECTOR_ENV, local_collector_url, use_local_collector
from tracker import Tracker
from tracker.posthog import Client

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "tok"


def _forwarded(collector):
    return [
        (r["path"].split("?")[0], dict(r["headers"]).get("X-Forwarded-Host"))
        for r in collector.requests()
    ]


@pytest.fixture(autouse=True)
def _no_env_collector(monkeypatch):
    monkeypatch.delenv(LOCAL_COLLECTOR_ENV, raising=False)


@pytest.mark.parametrize("region, host", [
    ("eu", "api-eu.mixpanel.com"), ("us", "api.mixpanel.com"), ("in", "api-in.mixpanel.com"),
])
def test_each_region_is_served_locally_and_names_its_host(collector, region, host):
    with use_local_collector(collector.url):
        with Tracker(TOKEN, region=region) as tracker:
            assert tracker.track("u1", "Signed Up")
            assert tracker.people.set("u1", {"plan": "pro"})
    assert [m["event"] for m in collector.messages("track")] == ["Signed Up"]
    assert len(collector.messages("engage")) == 1
    assert _forwarded(collector) == [("/track", host), ("/engage", host)]


def test_the_environment_variable_redirects_a_buffered_eu_consumer_and_its_alias(
    collector, monkeypatch
):
    monkeypatch.setenv(LOCAL_COLLECTOR_ENV, collector.url)
    consumer = BufferedConsumer(region="eu")
    tracker = Tracker(TOKEN, consumer)
    tracker.track("u1", "Signed Up")
    tracker.alias("u1", "anon-1")  # sent at once, through its own synchronous consumer
    consumer.flush()
    hosts = {host for _, host in _forwarded(collector)}
    assert hosts == {"api-eu.mixpanel.com"}
    events = sorted(m["event"] for m in collector.messages("track"))
    assert events == ["$create_alias", "Signed Up"]


def test_posthog_default_and_eu_hosts_are_served_locally(collector):
    with use_local_collector(collector.url):
        client = Client("phc_key")
        assert client.capture(distinct_id="u1", event="movie played")
        client.shutdown()
        eu = PostHogConsumer("phc_key", region="eu")
        eu.send("posthog", '{"event": "e", "distinct_id": "u2", "properties": {}}')
        eu.flush()
    assert _forwarded(collector) == [("/batch/", "us.i.posthog.com"),
                                     ("/batch/", "eu.i.posthog.com")]


def test_an_explicit_host_that_is_not_a_cloud_host_is_left_alone(collector):
    from consumers.collector import Collector

    with Collector() as other, use_local_collector(collector.url):
        Consumer(api_host=other.url).send("event", '{"event": "e", "properties": {"token": "t"}}')
    assert collector.requests() == []
    assert [dict(r["headers"]).get("X-Forwarded-Host") for r in other.requests()] == [None]


def test_the_with_block_restores_the_previous_setting(collector, monkeypatch):
    monkeypatch.setenv(LOCAL_COLLECTOR_ENV, collector.url)
    with use_local_collector(None):
        assert local_collector_url() is None
        with use_local_collector("http://127.0.0.1:9/"):
            assert local_collector_url() == "http://127.0.0.1:9"
        assert local_collector_url() is None
    assert local_collector_url() == collector.url


def test_a_malformed_setting_is_refused_at_the_call_site_without_showing_it(monkeypatch):
    with pytest.raises(ConfigurationError, match="http\\(s\\) base URL") as info:
        use_local_collector("sekret-token")
    assert "sekret" not in str(info.value)
    monkeypatch.setenv(LOCAL_COLLECTOR_ENV, "sekret-token")
    with pytest.raises(ConfigurationError, match=LOCAL_COLLECTOR_ENV) as info:
        Consumer(region="eu")
    assert "sekret" not in str(info.value)


def test_a_setting_broken_after_construction_is_a_delivery_error_not_a_crash(monkeypatch):
    consumer = Consumer(region="eu")
    monkeypatch.setenv(LOCAL_COLLECTOR_ENV, "not a url")
    with pytest.raises(TransportError, match="nothing was sent"):
        consumer.send("event", '{"event": "e", "properties": {"token": "t"}}')


def test_the_redirect_is_logged_once_without_a_password(collector, caplog):
    url = collector.url.replace("http://", "http://user:pw-secret@")
    consumer = Consumer(region="eu")
    with caplog.at_level(logging.WARNING, logger="consumers.local"), use_local_collector(url):
        for _ in range(3):
            consumer.send("event", '{"event": "e", "properties": {"token": "t"}}')
    lines = [r.getMessage() for r in caplog.records if r.name == "consumers.local"]
    assert len(lines) == 1
    assert "pw-secret" not in lines[0] and "local collector" in lines[0]
    assert len(collector.messages("track")) == 3


def test_a_separate_process_reads_the_environment_variable(collector):
    code = (
        "from tracker import Tracker\n"
        "t = Tracker('tok', region='in')\n"
        "assert t.track('u1', 'From a child')\n"
    )
    env = {**os.environ, LOCAL_COLLECTOR_ENV: collector.url, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    assert [m["event"] for m in collector.messages("track")] == ["From a child"]
    assert _forwarded(collector) == [("/track", "api-in.mixpanel.com")]
