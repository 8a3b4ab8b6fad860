"""The local collector over real HTTP: accepted forms, refusals, dedup, PostHog, read API."""

from __future__ import annotations

import base64
import gzip
import json
import time

import pytest
import requests
from collector_messages import DROP, event, form, now_ms

from consumers.collector import Collector

# -- accepted input forms ------------------------------------------------------------


@pytest.mark.parametrize("b64", [True, False], ids=["base64", "plain"])
@pytest.mark.parametrize("as_array", [True, False], ids=["array", "object"])
def test_track_accepts_form_data(any_collector, session, b64, as_array):
    ev = event()
    payload = [ev] if as_array else ev
    r = session.post(any_collector.url + "/track", data=form(payload, b64=b64))
    assert (r.status_code, r.text) == (200, "1")
    assert any_collector.messages("track") == [ev]


def test_track_accepts_json_body_and_get(any_collector, session):
    a, b, c = event("a"), event("b"), event("c")
    assert session.post(any_collector.url + "/track", json=[a, b]).text == "1"
    assert session.get(any_collector.url + "/track", params=form([c])).text == "1"
    assert [m["event"] for m in any_collector.messages("track")] == ["a", "b", "c"]


def test_track_accepts_url_safe_base64_without_padding(collector, session):
    ev = event(note="ÿ?>~" * 5)
    data = base64.urlsafe_b64encode(json.dumps([ev]).encode()).decode().rstrip("=")
    assert session.post(collector.url + "/track", data={"data": data}).text == "1"
    assert collector.messages("track") == [ev]


def test_verbose_answers_status_and_error(collector, session):
    r = session.post(collector.url + "/track", params={"verbose": 1}, data=form([event()]))
    assert r.json() == {"status": 1, "error": None}
    r = session.post(collector.url + "/track", data={**form([{"event": "x"}]), "verbose": "1"})
    body = r.json()
    assert body["status"] == 0 and "properties" in body["error"]


def test_partly_valid_batch_answers_1_and_stores_only_the_valid(collector, session):
    good = event()
    r = session.post(collector.url + "/track", data=form([good, {"event": "no props"}]))
    assert r.text == "1"
    assert collector.messages("track") == [good]
    assert collector.stats()["endpoints"]["track"]["rejected"] == 1


def test_engage_accepts_every_operation(collector, session):
    ops = {
        "$set": {"a": 1},
        "$set_once": {"b": 2},
        "$add": {"n": 1.5},
        "$append": {"l": "x"},
        "$union": {"l": ["x", 1]},
        "$remove": {"l": "x"},
        "$unset": ["a"],
        "$delete": "",
    }
    batch = [{"$token": "tok", "$distinct_id": "u1", op: v} for op, v in ops.items()]
    r = session.post(collector.url + "/engage", params={"verbose": 1}, data=form(batch))
    assert r.json() == {"status": 1, "error": None}
    assert collector.messages("engage") == batch


def test_groups_accepts_every_operation(collector, session):
    ops = {
        "$set": {"a": 1},
        "$set_once": {"b": 2},
        "$unset": ["a"],
        "$union": {"l": ["x"]},
        "$remove": {"l": "x"},
        "$delete": None,
    }
    batch = [
        {"$token": "tok", "$group_key": "company", "$group_id": "acme", op: v}
        for op, v in ops.items()
    ]
    assert session.post(collector.url + "/groups", json=batch).text == "1"
    assert collector.messages("groups") == batch


@pytest.mark.parametrize(
    "message",
    [
        {"$distinct_id": "u1", "$set": {"a": 1}},
        {"$token": "tok", "$set": {"a": 1}},
        {"$token": "tok", "$distinct_id": "u1"},
        {"$token": "tok", "$distinct_id": "u1", "$set": {"a": 1}, "$add": {"n": 1}},
        {"$token": "tok", "$distinct_id": "u1", "$add": {"n": "one"}},
        {"$token": "tok", "$distinct_id": "u1", "$unset": "a"},
        {"$token": "tok", "$distinct_id": "null", "$set": {"a": 1}},
    ],
    ids=["no-token", "no-distinct-id", "no-op", "two-ops", "add-non-number", "unset-not-list",
         "placeholder-id"],
)
def test_engage_refuses_invalid_updates(collector, session, message):
    r = session.post(collector.url + "/engage", params={"verbose": 1}, data=form([message]))
    assert r.json()["status"] == 0
    assert collector.messages("engage") == []
    assert collector.stats()["endpoints"]["engage"]["rejected"] == 1


@pytest.mark.parametrize(
    "message",
    [
        {"$group_key": "c", "$group_id": "a", "$set": {}},
        {"$token": "t", "$group_id": "a", "$set": {}},
        {"$token": "t", "$group_key": "c", "$set": {}},
        {"$token": "t", "$group_key": "c", "$group_id": "a", "$add": {"n": 1}},
    ],
    ids=["no-token", "no-group-key", "no-group-id", "add-not-a-group-op"],
)
def test_groups_refuses_invalid_updates(collector, session, message):
    assert session.post(collector.url + "/groups", data=form([message])).text == "0"
    assert collector.messages("groups") == []


# -- /track refusals -------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        {"properties": {"token": "tok"}},
        {"event": "", "properties": {"token": "tok"}},
        {"event": 5, "properties": {"token": "tok"}},
        {"event": "e"},
        {"event": "e", "properties": {"distinct_id": "u"}},
        {"event": "e", "properties": {"token": "tok", "time": "yesterday"}},
        {"event": "e", "properties": {"token": "tok", "time": 86_400}},
        {"event": "e", "properties": {"token": "tok", "$insert_id": "has space"}},
        {"event": "e", "properties": {"token": "tok", "$insert_id": "x" * 37}},
        {"event": "e", "properties": {"token": "tok"}, "extra": 1},
        "not an object",
    ],
    ids=["no-event", "empty-event", "event-not-string", "no-properties", "no-token",
         "time-not-number", "time-before-1971", "bad-insert-id-chars", "insert-id-too-long",
         "extra-top-level-key", "not-an-object"],
)
def test_track_refuses_invalid_events(any_collector, session, message):
    r = session.post(any_collector.url + "/track", params={"verbose": 1}, data=form([message]))
    assert r.json()["status"] == 0 and r.json()["error"]
    assert any_collector.messages("track") == []


def test_track_refuses_more_than_255_properties(collector, session):
    props = {f"p{i}": i for i in range(253)}
    ok = event(**props)  # 4 standard + 253 = 257 > 255
    assert session.post(collector.url + "/track", data=form([ok])).text == "0"
    fine = event(**{f"p{i}": i for i in range(251)})  # exactly 255
    assert session.post(collector.url + "/track", data=form([fine])).text == "1"


def test_track_refuses_more_than_2000_records(collector, session):
    batch = [event() for _ in range(2001)]
    r = session.post(collector.url + "/track", params={"verbose": 1}, json=batch)
    assert r.json()["status"] == 0 and "2000" in r.json()["error"]
    assert collector.messages("track") == []
    assert session.post(collector.url + "/track", json=batch[:2000]).text == "1"
    assert len(collector.messages("track")) == 2000


def test_track_refuses_an_event_over_1mb(collector, session):
    big = event(blob="x" * (1024 * 1024))
    small = event()
    assert session.post(collector.url + "/track", json=[big, small]).text == "1"
    assert collector.messages("track") == [small]


def test_track_stores_placeholder_distinct_ids_and_counts_them(collector, session):
    batch = [event(distinct_id="undefined"), event(distinct_id="u2")]
    assert session.post(collector.url + "/track", data=form(batch)).text == "1"
    assert len(collector.messages("track")) == 2
    assert collector.stats()["endpoints"]["track"]["placeholder_ids"] == 1


def test_track_keeps_old_events(collector, session):
    old = event(time=1_000_000_000)  # 2001, in seconds: /track stays lenient
    assert session.post(collector.url + "/track", data=form([old])).text == "1"


def test_undecodable_bodies_answer_0(collector, session):
    url = collector.url + "/track"
    assert session.post(url, data={"data": "%%%not base64"}).text == "0"
    assert session.post(url, data={"data": "[{broken"}).text == "0"
    assert session.post(url, data={"other": "x"}).text == "0"
    assert session.post(url, data=b"[1,", headers={"Content-Type": "application/json"}).text == "0"
    assert session.post(url, json=[]).text == "0"


# -- /import ------------------------------------------------------------------------------


def imp(c, session, body, *, strict=1, auth=("sa-user", "sa-secret"), params=None, **kw):
    query = {"strict": strict, "project_id": "123"}
    query.update(params or {})
    return session.post(c.url + "/import", params=query, auth=auth, data=body, **kw)


def test_import_accepts_json_array(any_collector, session):
    batch = [event(), event()]
    r = imp(any_collector, session, json.dumps(batch),
            headers={"Content-Type": "application/json"})
    assert r.status_code == 200
    assert r.json() == {"code": 200, "num_records_imported": 2, "status": "OK"}
    assert any_collector.messages("import") == batch


def test_import_accepts_ndjson_and_gzip(any_collector, session):
    batch = [event(), event(), event()]
    body = "\n".join(json.dumps(e) for e in batch).encode() + b"\n"
    r = imp(any_collector, session, gzip.compress(body),
            headers={"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"})
    assert r.json()["num_records_imported"] == 3
    assert any_collector.messages("import") == batch


def test_import_accepts_times_in_seconds(collector, session):
    ev = event(time=int(time.time()) - 86_400 * 365 * 5)
    assert imp(collector, session, json.dumps([ev])).status_code == 200


def test_strict_import_reports_failed_records_and_imports_the_rest(collector, session):
    good = event()
    batch = [
        good,
        event(time=DROP),
        event(distinct_id="anonymous"),
        event(**{"$insert_id": "bad id!"}),
        event(time=now_ms() + 2 * 3_600_000),
        event(time=20_000_000),
        event(distinct_id=DROP),
        event(**{"$insert_id": DROP}),
        event(distinct_id="NULL"),
    ]
    r = imp(collector, session, json.dumps(batch))
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == 400 and body["status"] == "Bad Request"
    assert body["num_records_imported"] == 1
    failed = {f["index"]: f for f in body["failed_records"]}
    assert sorted(failed) == list(range(1, 9))
    assert failed[1]["field"] == "properties.time"
    assert failed[2]["field"] == "properties.distinct_id"
    assert failed[3]["field"] == "properties.$insert_id"
    assert failed[4]["field"] == "properties.time"
    assert failed[5]["field"] == "properties.time"
    assert failed[6]["field"] == "properties.distinct_id"
    assert failed[7]["field"] == "properties.$insert_id"
    assert failed[8]["field"] == "properties.distinct_id"
    assert failed[2]["insert_id"] == batch[2]["properties"]["$insert_id"]
    assert collector.messages("import") == [good]


@pytest.mark.parametrize(
    "value",
    ["0", "-1", "null", "undefined", "anonymous", "nil", "None", "[]", "{}",
     "00000000-0000-0000-0000-000000000000", "lmy47d", "unknown", "NaN", "<nil>"],
)
def test_strict_import_refuses_placeholder_distinct_ids(collector, session, value):
    r = imp(collector, session, json.dumps([event(distinct_id=value)]))
    assert r.status_code == 400
    assert r.json()["failed_records"][0]["field"] == "properties.distinct_id"


def test_import_accepts_empty_distinct_id(collector, session):
    """Mixpanel's documented way to send an event that belongs to no user."""
    assert imp(collector, session, json.dumps([event(distinct_id="")])).status_code == 200


def test_non_strict_import_skips_invalid_records_silently(collector, session):
    good = event()
    r = imp(collector, session, json.dumps([good, event(time=DROP)]), strict=0)
    assert r.status_code == 200
    assert r.json()["num_records_imported"] == 1
    assert collector.messages("import") == [good]


def test_import_refuses_an_event_over_1mb_as_a_failed_record(collector, session):
    big, small = event(blob="x" * (1024 * 1024)), event()
    r = imp(collector, session, json.dumps([small, big]))
    assert r.status_code == 400
    assert r.json()["num_records_imported"] == 1
    assert [f["index"] for f in r.json()["failed_records"]] == [1]


def test_import_refuses_more_than_2000_records(collector, session):
    r = imp(collector, session, json.dumps([event() for _ in range(2001)]))
    assert r.status_code == 400 and "2000" in r.json()["error"]
    assert collector.messages("import") == []


def test_import_refuses_more_than_10mb(collector, session):
    batch = [event(blob="x" * 900_000) for _ in range(12)]
    r = imp(collector, session, json.dumps(batch))
    assert r.status_code == 413
    assert r.json() == {
        "code": 413,
        "error": "request exceeds max limit of 10485760 bytes",
        "status": "Request Entity Too Large",
    }
    r = imp(collector, session, gzip.compress(json.dumps(batch).encode()),
            headers={"Content-Encoding": "gzip"})
    assert r.status_code == 413
    assert collector.messages("import") == []


def test_import_refuses_malformed_bodies(collector, session):
    assert imp(collector, session, b"[{").status_code == 400
    assert imp(collector, session, b"[]").status_code == 400
    r = imp(collector, session, b"not gzip", headers={"Content-Encoding": "gzip"})
    assert r.status_code == 400


@pytest.mark.parametrize(
    "auth, params",
    [(None, {}), (("user", "secret"), {"project_id": ""})],
    ids=["no-auth", "service-account-without-project-id"],
)
def test_import_without_credentials_is_401(collector, session, auth, params):
    r = imp(collector, session, json.dumps([event()]), auth=auth, params=params)
    assert r.status_code == 401
    assert r.json()["code"] == 401 and r.json()["status"] == "Unauthorized"
    assert collector.messages("import") == []


def test_import_accepts_token_or_secret_with_empty_password(collector, session):
    r = imp(collector, session, json.dumps([event()]), auth=("project-token", ""),
            params={"project_id": ""})
    assert r.status_code == 200


def test_import_checks_configured_credentials(session):
    with Collector(service_accounts={"sa": "right"}, project_id="123",
                   project_token="tok", api_secret="sec") as c:
        body = json.dumps([event()])
        assert imp(c, session, body, auth=("sa", "right")).status_code == 200
        assert imp(c, session, body, auth=("sa", "wrong")).status_code == 401
        assert imp(c, session, body, auth=("other", "right")).status_code == 401
        assert imp(c, session, body, auth=("sa", "right"),
                   params={"project_id": "999"}).status_code == 401
        assert imp(c, session, body, auth=("tok", "")).status_code == 200
        assert imp(c, session, body, auth=("sec", "")).status_code == 200
        assert imp(c, session, body, auth=("nope", "")).status_code == 401
        r = imp(c, session, body, auth=("sa", "wrong"))
        assert r.json() == {"code": 401, "error": "Invalid credentials", "status": "Unauthorized"}


def test_import_log_never_holds_credentials(session):
    with Collector() as c:
        imp(c, session, json.dumps([event()]), auth=("sa-user", "s3cr3t-value"))
        imp(c, session, json.dumps([event()]), auth=("api-s3cr3t", ""))
        logged = json.dumps(c.requests()) + session.get(c.url + "/_collector/requests").text
    assert "s3cr3t" not in logged
    assert base64.b64encode(b"sa-user:s3cr3t-value").decode() not in logged


def test_legacy_form_import_answers_like_track(collector, session):
    """What the mixpanel library sends: form data=, verbose=1, API secret as Basic user."""
    r = session.post(collector.url + "/import", auth=("secret", ""),
                     data={"data": json.dumps([event()]), "verbose": "1", "ip": "0"})
    assert r.json() == {"status": 1, "error": None}
    assert len(collector.messages("import")) == 1


# -- dedup ----------------------------------------------------------------------------------


def test_dedup_on_event_time_distinct_id_and_insert_id(any_collector, session):
    t = now_ms() // 1000 * 1000  # a whole second, so seconds and ms name the same instant
    a = event(time=t, **{"$insert_id": "same"})
    a_in_seconds = event(time=t // 1000, **{"$insert_id": "same"})
    other_user = event(time=t, distinct_id="user-2", **{"$insert_id": "same"})
    no_insert_id = event(time=t, **{"$insert_id": DROP})
    batch = [a, a, a_in_seconds, other_user, no_insert_id, no_insert_id]
    session.post(any_collector.url + "/track", data=form(batch))
    session.post(any_collector.url + "/track", data=form([a]))  # a retry
    assert len(any_collector.messages("track")) == 7
    assert any_collector.unique("track") == [a, other_user, no_insert_id, no_insert_id]
    stats = any_collector.stats()["endpoints"]["track"]
    assert (stats["raw"], stats["unique"], stats["duplicates"]) == (7, 4, 3)


def test_records_keep_arrival_order_across_endpoints(collector, session):
    e1, e2 = event("one"), event("two")
    p = {"$token": "t", "$distinct_id": "u", "$set": {"a": 1}}
    session.post(collector.url + "/track", data=form([e1]))
    session.post(collector.url + "/engage", data=form([p]))
    imp(collector, session, json.dumps([e2]))
    assert collector.records() == [
        {"endpoint": "track", "message": e1},
        {"endpoint": "engage", "message": p},
        {"endpoint": "import", "message": e2},
    ]
    assert collector.records("engage") == [{"endpoint": "engage", "message": p}]


# -- PostHog /batch/ -------------------------------------------------------------------------


def ph(uuid: str, name: str = "$pageview") -> dict:
    return {"type": "capture", "event": name, "distinct_id": "u1", "uuid": uuid,
            "properties": {"$lib": "posthog-python"}, "timestamp": "2024-01-01T00:00:00Z"}


@pytest.mark.parametrize("path", ["/batch/", "/batch"])
def test_posthog_batch_is_stored_and_deduplicated_on_uuid(any_collector, session, path):
    batch = [ph("u-1"), ph("u-2"), ph("u-1")]
    r = session.post(any_collector.url + path, json={"api_key": "phc_key", "batch": batch})
    assert (r.status_code, r.json()) == (200, {"status": "Ok"})
    assert any_collector.messages("posthog") == batch
    assert any_collector.unique("posthog") == batch[:2]


def test_posthog_batch_accepts_gzip(collector, session):
    body = gzip.compress(json.dumps({"api_key": "k", "batch": [ph("a")]}).encode())
    r = session.post(collector.url + "/batch/", data=body,
                     headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert r.status_code == 200
    assert collector.messages("posthog") == [ph("a")]


def test_posthog_batch_refusals(collector, session):
    url = collector.url + "/batch/"
    r = session.post(url, json={"batch": [ph("a")]})
    assert r.status_code == 401 and r.json()["code"] == "invalid_api_key"
    assert session.post(url, data=b"{nope", headers={"Content-Type": "application/json"}
                        ).status_code == 400
    assert session.post(url, json={"api_key": "k", "batch": "x"}).status_code == 400
    assert session.post(url, json={"api_key": "k", "batch": [1]}).status_code == 400
    assert collector.messages("posthog") == []


# -- read API -------------------------------------------------------------------------------


def test_read_api_over_http(collector, session):
    ev = event()
    session.post(collector.url + "/track", data=form([ev, ev]))
    url = collector.url + "/_collector"
    assert session.get(url + "/records").json() == [{"endpoint": "track", "message": ev}] * 2
    assert session.get(url + "/records", params={"endpoint": "track", "unique": 1}).json() == [ev]
    assert session.get(url + "/records", params={"endpoint": "import"}).json() == []
    stats = session.get(url + "/stats").json()
    assert stats["requests"] == 1 and stats["endpoints"]["track"]["unique"] == 1
    log = session.get(url + "/requests").json()
    assert log[0]["path"] == "/track" and log[0]["n_records"] == 2 and log[0]["status"] == 200
    assert session.post(url + "/reset").json() == {"status": "ok"}
    assert collector.records() == [] and collector.requests() == []
    assert session.get(url + "/nothing").status_code == 404


def test_request_log_entries(collector, session):
    session.post(collector.url + "/track?verbose=1", data=form([event(), {"event": "x"}]))
    (entry,) = collector.requests()
    assert entry["method"] == "POST" and entry["path"] == "/track"
    assert entry["query"] == {"verbose": "1"}
    assert entry["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert (entry["status"], entry["n_records"], entry["accepted"], entry["rejected"]) == (
        200, 2, 1, 1)
    assert entry["bytes"] > 0


def test_request_log_names_the_connection_each_request_came_on(any_collector, session):
    url = any_collector.url + "/track"
    session.post(url, data=form([event()]))
    session.post(url, data=form([event()]))  # the same keep-alive connection
    with requests.Session() as other:
        other.post(url, data=form([event()]))
    first, second, third = (entry["peer"] for entry in any_collector.requests())
    assert first.startswith("127.0.0.1:")
    assert first == second != third


def test_reset_forgets_records_and_faults(collector, session):
    session.post(collector.url + "/track", data=form([event()]))
    collector.fail_next(5, 500)
    collector.reset()
    assert collector.records() == [] and collector.stats()["requests"] == 0
    assert session.post(collector.url + "/track", data=form([event()])).text == "1"


def test_unknown_path_is_404(collector, session):
    assert session.post(collector.url + "/nowhere", data=form([event()])).status_code == 404


def test_collector_restarts_and_reports_url(session):
    c = Collector()
    assert "stopped" in repr(c)
    with c:
        assert c.url == f"http://127.0.0.1:{c.port}" and c.port > 0
        assert session.post(c.url + "/track", data=form([event()])).text == "1"
    with pytest.raises(requests.ConnectionError):
        requests.post(c.url + "/track", data=form([event()]), timeout=5)
    assert len(c.messages("track")) == 1  # records survive stop
    with pytest.raises(ValueError):
        Collector(mode="nope")


@pytest.mark.parametrize("mode", ["threaded", "asyncio"])
def test_fast_json_accepts_exactly_what_the_standard_library_accepts(session, mode):
    pytest.importorskip("orjson")
    odd = event(ratio=float("nan"), big=2**70)  # orjson refuses both; json reads both
    with Collector(mode=mode, fast_json=True) as c:
        assert c.fast_json
        assert session.post(c.url + "/track", data=form([odd, event()])).text == "1"
        assert session.post(c.url + "/track", data=form([{"event": "x"}])).text == "0"
        assert len(c.messages("track")) == 2
        assert c.messages("track")[0]["properties"]["big"] == 2**70


def test_segment_batches_are_stored_and_deduplicated_by_message_id(collector, session):
    batch = [{"type": "track", "event": "Signed up", "userId": "u1", "messageId": "m-1"},
             {"type": "track", "event": "Signed up", "userId": "u1", "messageId": "m-1"}]
    r = session.post(collector.url + "/v1/batch", json={"batch": batch}, auth=("write-key", ""))
    assert r.status_code == 200 and r.json() == {"success": True}
    assert len(collector.messages("segment")) == 2
    assert [m["messageId"] for m in collector.unique("segment")] == ["m-1"]
    r = session.post(collector.url + "/v1/batch", json={"batch": batch})
    assert r.status_code == 401 and len(collector.messages("segment")) == 2


def test_clear_faults_ends_an_outage_and_keeps_the_records(collector, session):
    ok = session.post(collector.url + "/track", data=form([event()]))
    assert ok.text == "1"
    collector.fail_next(5, 503)
    assert session.post(collector.url + "/track", data=form([event()])).status_code == 503
    collector.clear_faults()
    assert collector.faults() == []
    assert session.post(collector.url + "/track", data=form([event()])).text == "1"
    assert len(collector.messages("track")) == 2
