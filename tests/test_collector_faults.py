"""The collector's fault plan: status codes with Retry-After, delays, dropped connections."""

from __future__ import annotations

import json
import threading

import pytest
import requests
from collector_messages import event, form


def track(c, session, **kw):
    return session.post(c.url + "/track", data=form([event()]), **kw)


def test_fail_next_answers_status_with_retry_after_then_recovers(any_collector):
    any_collector.fail_next(2, 429, retry_after=7)
    with requests.Session() as s:
        first, second, third = (track(any_collector, s) for _ in range(3))
    for r in (first, second):
        assert r.status_code == 429 and r.headers["Retry-After"] == "7"
        assert r.json()["code"] == 429 and r.json()["status"] == "Too Many Requests"
    assert (third.status_code, third.text) == (200, "1")
    assert len(any_collector.messages("track")) == 1  # refused requests store nothing
    assert any_collector.stats()["faults"] == 2


def test_fault_bodies_follow_the_spec_per_status(collector):
    collector.fail_next(1, 413, path="/import")
    collector.fail_next(1, 503)
    collector.fail_next(1, 500, body={"custom": True})
    collector.fail_next(1, 502, body="upstream down")
    with requests.Session() as s:
        r = s.post(collector.url + "/import", json=[event()], auth=("t", ""))
        assert r.status_code == 413
        assert r.json()["error"] == "request exceeds max limit of 10485760 bytes"
        r = track(collector, s)
        assert r.status_code == 503 and r.json()["status"] == "Service Unavailable"
        assert track(collector, s).json() == {"custom": True}
        assert track(collector, s).text == "upstream down"


def test_fault_path_limits_which_requests_fail(collector):
    collector.fail_next(1, 500, path="/import")
    with requests.Session() as s:
        assert track(collector, s).status_code == 200
        r = s.post(collector.url + "/import", json=[event()], auth=("t", ""))
        assert r.status_code == 500
        r = s.post(collector.url + "/import", json=[event()], auth=("t", ""))
        assert r.status_code == 200


def test_faults_apply_in_order(collector):
    collector.fail_next(1, 500)
    collector.fail_next(1, 429)
    with requests.Session() as s:
        assert [track(collector, s).status_code for _ in range(3)] == [500, 429, 200]


def test_drop_next_closes_the_connection_without_an_answer(any_collector):
    any_collector.drop_next(1, path="/track")
    with requests.Session() as s:
        with pytest.raises(requests.ConnectionError):
            track(any_collector, s, timeout=10)
        assert track(any_collector, s, timeout=10).text == "1"
    assert len(any_collector.messages("track")) == 1
    dropped, answered = any_collector.requests()
    assert answered["status"] == 200
    assert dropped["fault"] == "drop" and dropped["status"] is None


def test_delay_next_makes_a_client_time_out_but_the_batch_arrives(any_collector):
    any_collector.delay_next(1, 1.5)
    with requests.Session() as s:
        with pytest.raises(requests.Timeout):
            track(any_collector, s, timeout=0.3)
    # The delayed request was processed (as a real server may have done before
    # the answer was lost), so a client retry creates a duplicate that dedup removes.
    assert len(any_collector.messages("track")) == 1


def test_delay_after_headers_answers_the_headers_and_holds_the_body(any_collector):
    any_collector.delay_next(1, 1.5, after_headers=True)
    with requests.Session() as s:
        r = s.post(any_collector.url + "/track", data=form([event()]), stream=True, timeout=0.3)
        assert r.status_code == 200  # the headers came at once
        with pytest.raises(requests.ConnectionError, match="Read timed out"):
            r.content  # noqa: B018 - reading the body times out
        assert track(any_collector, s, timeout=30).text == "1"  # then on a new connection
    assert any_collector.requests()[0]["fault"] == "delay after headers"
    assert len(any_collector.messages("track")) == 2


def test_delay_after_headers_over_http(collector):
    with requests.Session() as s:
        r = s.post(collector.url + "/_collector/faults",
                   json={"delay": 0.2, "after_headers": True})
        assert r.status_code == 200
        assert collector.faults()[0]["after_headers"] is True
        assert track(collector, s, timeout=30).text == "1"


def test_delay_next_answers_after_the_delay(collector):
    collector.delay_next(1, 0.2)
    with requests.Session() as s:
        r = track(collector, s, timeout=30)
    assert r.text == "1" and r.elapsed.total_seconds() >= 0.2


def test_faults_over_http(collector):
    url = collector.url + "/_collector/faults"
    with requests.Session() as s:
        r = s.post(url, json={"count": 1, "status": 503, "retry_after": 2, "path": "/track"})
        assert r.status_code == 200
        assert s.get(url).json()[0]["status"] == 503
        r = track(collector, s)
        assert r.status_code == 503 and r.headers["Retry-After"] == "2"
        s.post(url, json={"drop": True})
        with pytest.raises(requests.ConnectionError):
            track(collector, s, timeout=10)
        s.post(url, json={"delay": 0.1})
        assert track(collector, s, timeout=30).text == "1"
        assert s.post(url, json={"count": 0, "status": 500}).status_code == 400
        assert s.post(url, json={"status": 500, "drop": True}).status_code == 400
        assert s.post(url, json={"bogus": 1}).status_code == 400
        assert s.post(url, data=b"[1]").status_code == 400
        assert s.get(url).json() == []


def test_faults_are_taken_once_each_under_concurrency(collector):
    collector.fail_next(20, 500)
    statuses = []
    lock = threading.Lock()

    def worker():
        with requests.Session() as s:
            for _ in range(10):
                code = track(collector, s).status_code
                with lock:
                    statuses.append(code)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(statuses).count(500) == 20 and statuses.count(200) == 20
    assert len(collector.messages("track")) == 20


def test_fail_next_validates_arguments(collector):
    with pytest.raises(ValueError):
        collector.fail_next(0)
    with pytest.raises(ValueError):
        collector.delay_next(0, 1.0)


def test_posthog_faults(collector):
    collector.fail_next(1, 503, retry_after=1, path="/batch")
    with requests.Session() as s:
        body = json.dumps({"api_key": "k", "batch": [{"event": "e", "uuid": "1"}]})
        r = s.post(collector.url + "/batch/", data=body)
        assert r.status_code == 503 and r.headers["Retry-After"] == "1"
        assert s.post(collector.url + "/batch/", data=body).status_code == 200
