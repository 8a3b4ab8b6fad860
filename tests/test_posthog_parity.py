"""Parity with posthog-python: limits, $geoip_disable, person and group calls, historical
migration, both on_error forms, disabled clients. Exact JSON, over real HTTP."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from consumers.errors import RefusedError
from consumers.posthog import MAX_BATCH_BYTES, PostHogConsumer
from consumers.retry import RetryPolicy
from tracker import _version
from tracker.errors import InvalidInputError, InvalidTypeError
from tracker.posthog import LIB_NAME, MAX_MESSAGE_BYTES, Client, MessageTooLargeError
from tracker.scrub import Scrub

KEY = "phc_parity_key"
U = "0190b6f1-5c2a-7a4e-9f00-1234567890ab"
WHEN = "2024-05-01T12:30:15.250000+00:00"
LIB = {"$lib": LIB_NAME, "$lib_version": _version.__version__}
GEO = {**LIB, "$geoip_disable": True}


def quick() -> RetryPolicy:
    return RetryPolicy(max_attempts=2, initial_backoff=0.001, max_backoff=0.01, max_elapsed=30.0,
                       retry_statuses=frozenset({408, 429, *range(500, 600)}))


def client_for(collector: Any, **options: Any) -> Client:
    options.setdefault("consumer_options", {"retry": quick()})
    return Client(KEY, collector.url, **options)


def sent(collector: Any) -> list[Any]:
    return list(collector.messages("posthog"))


def test_every_call_disables_geoip_by_default_as_posthog_python_does(collector: Any) -> None:
    client = client_for(collector)
    client.capture("u1", "E", {"a": 1}, WHEN, U)
    client.identify("u1", {"email": "a@b.c"}, WHEN, U)
    client.alias("u1", "anon-1", WHEN, U)
    client.page("u1", "https://example.com/", None, WHEN, U)
    client.shutdown()
    assert [m["properties"] for m in sent(collector)] == [
        {"a": 1, **GEO},
        {"$set": {"email": "a@b.c"}, **GEO},
        {"distinct_id": "u1", "alias": "anon-1", **GEO},
        {"$current_url": "https://example.com/", **GEO},
    ]


def test_geoip_can_be_enabled_per_client_and_per_call(collector: Any) -> None:
    geolocated = client_for(collector, disable_geoip=False)
    geolocated.capture("u1", "Located", None, WHEN, U)
    geolocated.capture("u1", "Not located", None, WHEN, U, disable_geoip=True)
    geolocated.shutdown()
    default = client_for(collector)
    default.capture("u1", "Located too", None, WHEN, U, disable_geoip=False)
    default.shutdown()
    assert [(m["event"], m["properties"]) for m in sent(collector)] == [
        ("Located", LIB), ("Not located", GEO), ("Located too", LIB)]


def test_set_and_set_once_send_person_properties(collector: Any) -> None:
    client = client_for(collector)
    client.set("u1", {"plan": "pro"}, WHEN, U)
    client.set_once("u1", {"first_seen": "2024-05-01"}, WHEN, U)
    client.shutdown()
    assert sent(collector) == [
        {"type": "capture", "event": "$set", "distinct_id": "u1", "$set": {"plan": "pro"},
         "properties": {"$set": {"plan": "pro"}, **GEO}, "timestamp": WHEN, "uuid": U},
        {"type": "capture", "event": "$set_once", "distinct_id": "u1",
         "$set_once": {"first_seen": "2024-05-01"},
         "properties": {"$set_once": {"first_seen": "2024-05-01"}, **GEO},
         "timestamp": WHEN, "uuid": U},
    ]
    with pytest.raises(InvalidInputError, match="at least one property"):
        client.set("u1", {})


def test_group_identify_and_groups_on_capture_and_page(collector: Any) -> None:
    client = client_for(collector)
    client.group_identify("company", "acme", {"name": "Acme", "employees": 11}, WHEN, U)
    client.group_identify("company", 42, None, WHEN, U, distinct_id="admin-1")
    client.capture("u1", "E", None, WHEN, U, groups={"company": "acme"})
    client.page("u1", "https://acme.example/", None, WHEN, U, groups={"company": "acme"})
    client.shutdown()
    first, second, capture, page = sent(collector)
    assert first == {
        "type": "capture", "event": "$groupidentify", "distinct_id": "$company_acme",
        "properties": {"$group_type": "company", "$group_key": "acme",
                       "$group_set": {"name": "Acme", "employees": 11}, **GEO},
        "timestamp": WHEN, "uuid": U,
    }
    assert second["distinct_id"] == "admin-1"
    assert second["properties"] == {"$group_type": "company", "$group_key": "42",
                                    "$group_set": {}, **GEO}
    assert capture["properties"] == {"$groups": {"company": "acme"}, **GEO}
    assert page["properties"] == {"$current_url": "https://acme.example/",
                                  "$groups": {"company": "acme"}, **GEO}
    with pytest.raises(InvalidInputError, match="group_type must not be empty"):
        client.group_identify("", "acme")


def test_events_the_official_client_sends_are_accepted_up_to_900_kib(collector: Any) -> None:
    assert MAX_MESSAGE_BYTES == 900 * 1024
    client = client_for(collector)
    assert client.capture("u1", "Big", {"blob": "x" * 800_000}) is True  # refused at 32 KB before
    with pytest.raises(MessageTooLargeError) as info:
        client.capture("u1", "Too big", {"blob": "x" * MAX_MESSAGE_BYTES})
    client.shutdown()
    assert info.value.limit == MAX_MESSAGE_BYTES
    assert [m["event"] for m in sent(collector)] == ["Big"]
    assert len(sent(collector)[0]["properties"]["blob"]) == 800_000


def test_batches_of_up_to_5_mib_reach_the_collector(collector: Any) -> None:
    raw: list[str] = []
    builder = Client(KEY, sink=lambda t, m: raw.append(m))
    for i in range(14):
        builder.capture(f"u{i}", "E", {"blob": "y" * 700_000})
    with PostHogConsumer(KEY, collector.url, gzip=False, retry=quick()) as consumer:
        for m in raw:
            consumer.send("posthog", m)
    requests = [r for r in collector.requests() if r["path"].startswith("/batch")]
    assert len(requests) == 2 and all(r["status"] == 200 for r in requests)
    assert all(r["bytes"] <= MAX_BATCH_BYTES for r in requests)
    assert requests[0]["bytes"] > 4 * 1024 * 1024  # more than the old 500 KB by far
    assert len(sent(collector)) == 14


def test_historical_migration_marks_the_batches(collector: Any) -> None:
    client = client_for(collector, historical_migration=True)
    client.capture("u1", "Imported", None, "2020-01-01T00:00:00Z", U)
    client.shutdown()
    live = client_for(collector)
    live.capture("u1", "Live")
    live.shutdown()
    requests = [r for r in collector.requests() if r["path"].startswith("/batch")]
    assert [r.get("historical_migration", False) for r in requests] == [True, False]
    assert [m["event"] for m in sent(collector)] == ["Imported", "Live"]
    with pytest.raises(InvalidInputError, match="historical_migration"):
        Client(KEY, sink=lambda t, m: None, historical_migration=True)
    assert "historical_migration=True" in repr(PostHogConsumer(KEY, historical_migration=True))


def test_on_error_in_posthog_pythons_form_gets_the_error_and_the_batch(collector: Any) -> None:
    seen: list[tuple[Any, Any]] = []
    client = client_for(collector, on_error=lambda error, batch: seen.append((error, batch)))
    collector.fail_next(1, 400, body='{"error": "invalid"}', path="/batch")
    client.capture("u1", "Refused", {"a": 1}, WHEN, U)
    assert client.flush(timeout=60)
    client.shutdown()
    [(error, batch)] = seen
    assert isinstance(error, RefusedError) and error.status == 400
    assert batch == [{"type": "capture", "event": "Refused", "distinct_id": "u1",
                      "properties": {"a": 1, **GEO}, "timestamp": WHEN, "uuid": U}]


def test_on_error_in_the_ruby_form_still_gets_status_and_text(collector: Any) -> None:
    seen: list[tuple[Any, Any]] = []
    client = client_for(collector, on_error=lambda status, msg: seen.append((status, msg)))
    collector.fail_next(1, 400, path="/batch")
    client.capture("u1", "Refused")
    assert client.flush(timeout=60)
    client.shutdown()
    assert [(s, "1 PostHog message(s) not delivered" in m) for s, m in seen] == [(400, True)]


def test_on_error_with_the_wrong_arity_is_refused_when_the_client_is_built() -> None:
    for wrong in (lambda error: None, lambda a, b, c: None, lambda: None):
        with pytest.raises(InvalidTypeError, match="on_error must take two arguments"):
            Client(KEY, sink=lambda t, m: None, on_error=wrong)
    with pytest.raises(InvalidTypeError, match="on_error must be a callable"):
        Client(KEY, sink=lambda t, m: None, on_error="log")  # type: ignore[arg-type]
    Client(KEY, sink=lambda t, m: None, on_error=print)  # a builtin: the Ruby form
    Client(KEY, sink=lambda t, m: None, on_error=lambda a, b, c=None: None)


def test_disabled_and_send_false_build_and_check_but_send_nothing(collector: Any) -> None:
    threads = threading.active_count()
    for options in ({"disabled": True}, {"send": False}):
        client = Client(KEY, collector.url, **options)  # type: ignore[arg-type]
        assert client.capture("u1", "E") is True
        with pytest.raises(InvalidInputError):
            client.capture("u1", "E", {"nan": float("nan")})
        assert client.flush() is True
        client.shutdown()
        assert client.stats() == {"dropped": 0, "disabled": 1, "failed": 0}
    assert threading.active_count() == threads  # no delivery thread was started
    assert collector.requests() == []


def test_processors_shape_posthog_messages(collector: Any) -> None:
    client = client_for(collector, processors=[Scrub(["email"])])
    client.identify("u1", {"email": "a@b.c", "name": "Ann"}, WHEN, U)
    client.shutdown()
    assert sent(collector) == [{
        "type": "identify", "event": "$identify", "distinct_id": "u1", "$set": {"name": "Ann"},
        "properties": {"$set": {"name": "Ann"}, **GEO}, "timestamp": WHEN, "uuid": U}]
