"""The collector's inspector: the page is served, and its JSON API pages, filters and explains."""

from __future__ import annotations

import json

import pytest

from consumers import BufferedConsumer, Consumer
from tests.collector_messages import event, form


def api(session, collector, call, **query):
    answer = session.get(f"{collector.url}/_collector/inspector/{call}", params=query, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def send(consumer, message):
    consumer.send("event", json.dumps(message))


def test_the_page_is_served_from_the_package_with_no_external_assets(any_collector, session):
    page = session.get(f"{any_collector.url}/_collector/inspector", timeout=30)
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "<title>Collector inspector</title>" in page.text
    # works offline: nothing loaded from anywhere but the collector itself
    for needle in ("http://", "https://", "src=", "@import", "url("):
        assert needle not in page.text
    assert page.text.count("href=") == page.text.count('href="data:')


def test_messages_come_newest_first_with_type_event_and_dedup_flag(any_collector, session):
    consumer = Consumer(api_host=any_collector.url)
    first = event("Signed up", distinct_id="ann")
    send(consumer, first)
    send(consumer, first)  # the same $insert_id again: a duplicate
    consumer.send("profile_update", json.dumps(
        {"$token": "tok", "$distinct_id": "bob", "$set": {"plan": "pro"}}))
    page = api(session, any_collector, "messages")
    assert page["total"] == page["matching"] == 3 and page["last"] == 2
    assert [(r["seq"], r["endpoint"], r["type"], r["name"], r["distinct_id"], r["duplicate"])
            for r in page["rows"]] == [
        (2, "engage", "profile_update", "$set", "bob", False),
        (1, "track", "event", "Signed up", "ann", True),
        (0, "track", "event", "Signed up", "ann", False),
    ]
    assert page["rows"][2]["time"] == first["properties"]["time"]
    whole = api(session, any_collector, "message", seq=0)
    assert whole["message"] == first


def test_filters_page_and_cursor(collector, session):
    consumer = BufferedConsumer(api_host=collector.url)
    for i in range(250):
        send(consumer, event("Paid" if i % 5 == 0 else "Viewed", distinct_id=f"user-{i % 10}"))
    consumer.flush()
    page = api(session, collector, "messages", event="pai", limit=20)
    assert page["matching"] == 50 and len(page["rows"]) == 20 and page["more"] is True
    assert all(r["name"] == "Paid" for r in page["rows"])
    older = api(session, collector, "messages", event="pai", limit=100,
                before=page["rows"][-1]["seq"])
    assert len(older["rows"]) == 30 and older["more"] is False
    seqs = [r["seq"] for r in page["rows"] + older["rows"]]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == 50
    both = api(session, collector, "messages", distinct_id="USER-5", type="event")
    assert both["matching"] == 25 and {r["distinct_id"] for r in both["rows"]} == {"user-5"}
    assert api(session, collector, "messages", endpoint="engage")["matching"] == 0
    # the cursor: only what arrived after it, and the count goes on from there
    send(consumer, event("Paid", distinct_id="late"))
    consumer.flush()
    newer = api(session, collector, "messages", event="paid", after=page["last"])
    assert [r["distinct_id"] for r in newer["rows"]] == ["late"]
    assert newer["matching"] == 51


def test_refused_requests_carry_the_reason_the_service_gives(collector, session):
    session.post(f"{collector.url}/track", data=form([event(), event(distinct_id=None)]),
                 timeout=30)
    verbose = session.post(f"{collector.url}/track?verbose=1",
                           data=form({"event": "x", "properties": {}}), timeout=30)
    session.post(f"{collector.url}/import", json=[event()], timeout=30)  # no credentials
    collector.fail_next(1, 429, retry_after=3)
    session.post(f"{collector.url}/track", data=form(event()), timeout=30)
    session.post(f"{collector.url}/track", data=form(event()), timeout=30)  # accepted
    state = api(session, collector, "state")
    assert state["refused_total"] == 4
    reasons = [(r["path"], r["status"], r["error"], r["rejected"]) for r in state["refused"]]
    assert reasons == [
        ("/track", 429, "Project exceeded rate limits. Please retry the request with "
                        "exponential backoff.", 0),
        ("/import", 401, "Invalid credentials", 0),
        ("/track", 200, verbose.json()["error"], 1),
        ("/track", 200, "'properties.distinct_id' must be a string or number", 1),
    ]
    assert verbose.json()["error"] == "'properties.token' is required"
    newer = api(session, collector, "state", after=state["refused"][0]["index"])
    assert newer["refused"] == [] and newer["refused_total"] == 4
    assert state["stats"]["endpoints"]["track"]["accepted"] == 2


def test_the_fault_plan_in_force_is_shown(collector, session):
    collector.drop_next(2, path="/engage")
    (fault,) = api(session, collector, "state")["faults"]
    assert fault["drop"] is True and fault["count"] == 2 and fault["path"] == "/engage"


def test_a_reset_starts_a_new_generation(collector, session):
    consumer = Consumer(api_host=collector.url)
    send(consumer, event())
    before = api(session, collector, "messages")
    assert session.post(f"{collector.url}/_collector/reset", timeout=30).ok
    after = api(session, collector, "messages", after=before["last"])
    assert after["generation"] != before["generation"]
    assert after["total"] == 0 and after["rows"] == []
    send(consumer, event(distinct_id="again"))
    page = api(session, collector, "messages")
    assert [(r["seq"], r["distinct_id"]) for r in page["rows"]] == [(0, "again")]


@pytest.mark.parametrize(("call", "query", "status", "error"), [
    ("messages", {"limit": "many"}, 400, "limit must be an integer, got 'many'"),
    ("messages", {"endpoint": "nowhere"}, 400, "endpoint must be one of"),
    ("message", {"seq": "7"}, 404, "no stored message with seq '7'"),
    ("elsewhere", {}, 404, "unknown inspector call 'inspector/elsewhere'"),
])
def test_bad_calls_are_answered_with_what_was_wrong(collector, session, call, query, status,
                                                    error):
    answer = session.get(f"{collector.url}/_collector/inspector/{call}", params=query, timeout=30)
    assert answer.status_code == status
    assert error in answer.json()["error"]


def test_only_get_is_allowed(collector, session):
    answer = session.post(f"{collector.url}/_collector/inspector/messages", timeout=30)
    assert answer.status_code == 405


def test_faults_are_listed_with_what_the_client_saw(collector, session):
    import requests

    collector.fail_next(1, 200, body={"status": 0, "error": "said by the fault"})
    collector.fail_next(1, 500, body="upstream exploded")
    collector.drop_next(1)
    session.post(f"{collector.url}/track", data=form(event()), timeout=30)
    session.post(f"{collector.url}/track", data=form(event()), timeout=30)
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{collector.url}/track", data=form(event()), timeout=30)
    refused = api(session, collector, "state")["refused"]
    assert [(r["status"], r["fault"], r["error"]) for r in refused] == [
        (None, "drop", "connection dropped without an answer (fault plan)"),
        (500, "status", "upstream exploded"),
        (200, "status", "said by the fault"),
    ]
