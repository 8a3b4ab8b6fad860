"""The PostHog facade: the exact messages each call builds, input checks, error reporting."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from decimal import Decimal
from typing import Any

import pytest

from consumers.errors import DeliveryError, RefusedError, TimeoutError_, TransportError
from tracker import _version
from tracker.errors import InvalidInputError, InvalidTypeError
from tracker.posthog import (
    LIB_NAME,
    MAX_MESSAGE_BYTES,
    NO_RESPONSE,
    Client,
    MessageTooLargeError,
)

U = "0190b6f1-5c2a-7a4e-9f00-1234567890ab"
WHEN = dt.datetime(2024, 5, 1, 12, 30, 15, 250000, tzinfo=dt.timezone.utc)
WHEN_TEXT = "2024-05-01T12:30:15.250000+00:00"
LIB = {"$lib": LIB_NAME, "$lib_version": _version.__version__, "$geoip_disable": True}


class Capture:
    """A sink that keeps what it was given."""

    def __init__(self) -> None:
        self.raw: list[tuple[str, str]] = []

    def __call__(self, message_type: str, message_json: str) -> None:
        self.raw.append((message_type, message_json))

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(m) for _, m in self.raw]


class Failing:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __call__(self, message_type: str, message_json: str) -> None:
        raise self.error


@pytest.fixture
def cap() -> Capture:
    return Capture()


@pytest.fixture
def client(cap: Capture) -> Client:
    return Client("phc_project_key", sink=cap)


def test_capture_builds_the_exact_batch_message(client: Client, cap: Capture) -> None:
    assert client.capture("user-1", "movie played", {"movie_id": "123", "category": "romcom"},
                          timestamp=WHEN, uuid=U) is True
    assert cap.raw[0][0] == "posthog"
    assert cap.messages == [{
        "type": "capture",
        "event": "movie played",
        "distinct_id": "user-1",
        "properties": {"movie_id": "123", "category": "romcom", **LIB},
        "timestamp": WHEN_TEXT,
        "uuid": U,
    }]


def test_the_message_is_compact_json_in_a_fixed_key_order(client: Client, cap: Capture) -> None:
    client.capture("u", "E", timestamp=WHEN, uuid=U)
    assert cap.raw[0][1] == (
        '{"type":"capture","event":"E","distinct_id":"u","properties":{"$lib":"'
        + LIB_NAME + '","$lib_version":"' + _version.__version__
        + '","$geoip_disable":true},"timestamp":"'
        + WHEN_TEXT + '","uuid":"' + U + '"}'
    )


def test_capture_defaults_a_fresh_uuid4_and_the_current_utc_time(
        client: Client, cap: Capture) -> None:
    before = dt.datetime.now(dt.timezone.utc)
    client.capture("u", "E")
    client.capture("u", "E")
    after = dt.datetime.now(dt.timezone.utc)
    first, second = cap.messages
    assert first["uuid"] != second["uuid"]
    for m in (first, second):
        parsed = uuid.UUID(m["uuid"])
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, m["uuid"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", m["timestamp"])
        assert before <= dt.datetime.fromisoformat(m["timestamp"]) <= after


@pytest.mark.parametrize("ns", [
    0, 999_999_999, 1_000_000_000, 951_782_400_123_456_789,  # 2000-02-29, a leap day
    1_700_000_000_000_000_999, 1_700_000_000_999_999_999, 4_102_444_799_999_999_000,
])
def test_the_current_time_is_written_as_datetime_writes_it(ns: int) -> None:
    from tracker._posthog_values import utc_text

    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    expected = (epoch + dt.timedelta(microseconds=ns // 1000)).isoformat(timespec="microseconds")
    assert utc_text(ns) == expected
    assert utc_text(ns) == expected  # the second's text, reused


def test_groups_become_the_groups_property(client: Client, cap: Capture) -> None:
    client.capture("u", "E", {"a": 1}, groups={"company": "acme", "team": 42}, uuid=U)
    props = cap.messages[0]["properties"]
    assert props["$groups"] == {"company": "acme", "team": "42"}
    assert props["a"] == 1


def test_library_properties_win_over_the_callers(client: Client, cap: Capture) -> None:
    client.capture("u", "E", {"$lib": "mine", "x": 1})
    assert cap.messages[0]["properties"]["$lib"] == LIB_NAME


def test_identify_sets_person_properties_at_the_top_and_in_properties(
        client: Client, cap: Capture) -> None:
    client.identify("user:123", {"email": "john@doe.com", "pro_user": False},
                    timestamp=WHEN, uuid=U)
    assert cap.messages == [{
        "type": "identify",
        "event": "$identify",
        "distinct_id": "user:123",
        "$set": {"email": "john@doe.com", "pro_user": False},
        "properties": {"$set": {"email": "john@doe.com", "pro_user": False}, **LIB},
        "timestamp": WHEN_TEXT,
        "uuid": U,
    }]


def test_alias_builds_create_alias(client: Client, cap: Capture) -> None:
    client.alias(distinct_id="user:123", alias="user:12345", timestamp=WHEN, uuid=U)
    assert cap.messages == [{
        "type": "alias",
        "event": "$create_alias",
        "distinct_id": "user:123",
        "properties": {"distinct_id": "user:123", "alias": "user:12345", **LIB},
        "timestamp": WHEN_TEXT,
        "uuid": U,
    }]


def test_page_is_a_pageview_with_the_current_url(client: Client, cap: Capture) -> None:
    client.page("u", "https://example.com/pricing", {"title": "Pricing"}, timestamp=WHEN, uuid=U)
    assert cap.messages == [{
        "type": "capture",
        "event": "$pageview",
        "distinct_id": "u",
        "properties": {"title": "Pricing", "$current_url": "https://example.com/pricing", **LIB},
        "timestamp": WHEN_TEXT,
        "uuid": U,
    }]


def test_timestamps_are_converted_to_utc(client: Client, cap: Capture) -> None:
    plus2 = dt.timezone(dt.timedelta(hours=2))
    client.capture("u", "E", timestamp=dt.datetime(2024, 5, 1, 14, 30, 15, 250000, tzinfo=plus2))
    client.capture("u", "E", timestamp=dt.datetime(2024, 5, 1, 12, 30, 15, 250000))  # naive: UTC
    client.capture("u", "E", timestamp="2024-05-01T12:30:15.25Z")
    client.capture("u", "E", timestamp="2024-05-01T14:30:15.250+02:00")
    assert [m["timestamp"] for m in cap.messages] == [WHEN_TEXT] * 4


def test_a_callers_uuid_is_kept_in_canonical_form(client: Client, cap: Capture) -> None:
    client.capture("u", "E", uuid=U.upper())
    client.capture("u", "E", uuid=uuid.UUID(U))
    assert [m["uuid"] for m in cap.messages] == [U, U]


def test_values_are_encoded_with_the_shared_rules(client: Client, cap: Capture) -> None:
    client.capture("u", "E", {
        "when": dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc),
        "day": dt.date(2024, 5, 1),
        "price": Decimal("9.5"),
        "count": Decimal("3"),
        "id": uuid.UUID(U),
        "tags": {"b", "a"},
    })
    props = cap.messages[0]["properties"]
    assert props["when"] == "2024-05-01T12:00:00"
    assert props["day"] == "2024-05-01"
    assert props["price"] == 9.5 and props["count"] == 3
    assert props["id"] == U
    assert props["tags"] == ["a", "b"]


@pytest.mark.parametrize("call, text", [
    (lambda c: c.capture("", "E"), "distinct_id must not be empty"),
    (lambda c: c.capture(None, "E"), "distinct_id must be a str"),
    (lambda c: c.capture("u", ""), "event must not be empty"),
    (lambda c: c.capture("u", 5), "event must be a str"),
    (lambda c: c.capture("u", "E", {"price": float("nan")}), "properties['price']: NaN"),
    (lambda c: c.capture("u", "E", {"a": {"b": object()}}), "properties['a']['b']"),
    (lambda c: c.capture("u", "E", ["not", "a", "dict"]), "properties must be a dict"),
    (lambda c: c.capture("u", "E", uuid="not-a-uuid"), "uuid must be a UUID"),
    (lambda c: c.capture("u", "E", timestamp="yesterday"), "timestamp 'yesterday'"),
    (lambda c: c.capture("u", "E", timestamp=1714566615), "timestamp must be a datetime"),
    (lambda c: c.capture("u", "E", groups=["acme"]), "groups must be a dict"),
    (lambda c: c.capture("u", "E", groups={"company": ""}), "groups['company']"),
    (lambda c: c.identify("", {"a": 1}), "distinct_id must not be empty"),
    (lambda c: c.identify("u", {"a": float("inf")}), "properties['a']"),
    (lambda c: c.alias("u", ""), "alias must not be empty"),
    (lambda c: c.alias("u", "u"), "distinct_id and alias are both 'u'"),
    (lambda c: c.page("u", ""), "url must not be empty"),
])
def test_bad_input_raises_at_the_call_site_and_sends_nothing(
        client: Client, cap: Capture, call: Any, text: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        call(client)
    assert text in str(info.value)
    assert cap.raw == []


def test_type_errors_are_also_typeerrors(client: Client) -> None:
    with pytest.raises(TypeError):
        client.capture("u", "E", {"a": object()})
    with pytest.raises(InvalidTypeError):
        client.capture(["u"], "E")


@pytest.mark.parametrize("key", ["", "   ", None, 42])
def test_the_api_key_must_be_a_non_empty_str(cap: Capture, key: Any) -> None:
    with pytest.raises(InvalidInputError, match="api_key"):
        Client(key, sink=cap)


def test_a_message_over_900_kib_is_refused_at_the_call_site(client: Client, cap: Capture) -> None:
    client.capture("u", "before")
    with pytest.raises(MessageTooLargeError) as info:
        client.capture("u", "E", {"blob": "x" * MAX_MESSAGE_BYTES})
    error = info.value
    assert isinstance(error, InvalidInputError) and isinstance(error, ValueError)
    assert error.limit == MAX_MESSAGE_BYTES == 900 * 1024
    assert error.size > MAX_MESSAGE_BYTES
    assert f"{error.size} bytes" in str(error) and "capture" in str(error)
    client.capture("u", "after")
    assert [m["event"] for m in cap.messages] == ["before", "after"]


def test_the_size_limit_counts_utf8_bytes_not_characters(client: Client, cap: Capture) -> None:
    ok = "é" * 450_000  # 900,000 bytes
    client.capture("u", "E", {"text": ok})
    with pytest.raises(MessageTooLargeError):
        client.identify("u", {"text": "é" * 240_000})  # twice in the message: over 900 KiB
    assert len(cap.raw) == 1


def test_facade_and_consumer_agree_on_the_message_limit() -> None:
    from consumers.posthog import MAX_MESSAGE_BYTES as CONSUMER_LIMIT

    assert CONSUMER_LIMIT == MAX_MESSAGE_BYTES


@pytest.mark.parametrize("error, status", [
    (RefusedError("refused", status=400, body='{"error":"bad"}'), 400),
    (RefusedError("unavailable", status=503), 503),
    (TransportError("connection refused"), NO_RESPONSE),
    (TimeoutError_("read timed out"), NO_RESPONSE),
    (DeliveryError("something"), NO_RESPONSE),
])
def test_delivery_failures_go_to_on_error_with_the_status(error: DeliveryError,
                                                          status: int) -> None:
    seen: list[tuple[int, str]] = []
    client = Client("K", sink=Failing(error), on_error=lambda s, m: seen.append((s, m)))
    assert client.capture("u", "E") is False
    assert client.identify("u", {"a": 1}) is False
    assert client.alias("u", "v") is False
    assert client.page("u", "https://example.com") is False
    assert [s for s, _ in seen] == [status] * 4
    assert all(str(error) in m and "not delivered" in m for _, m in seen)


def test_errors_that_are_not_delivery_failures_propagate() -> None:
    client = Client("K", sink=Failing(RuntimeError("bug in the sink")), on_error=print)
    with pytest.raises(RuntimeError):
        client.capture("u", "E")


def test_the_default_error_handler_logs(caplog: pytest.LogCaptureFixture) -> None:
    client = Client("K", sink=Failing(RefusedError("refused", status=401)))
    with caplog.at_level("ERROR", logger="tracker.posthog"):
        assert client.capture("u", "E") is False
    assert "status 401" in caplog.text


def test_a_raising_on_error_does_not_break_the_caller(caplog: pytest.LogCaptureFixture) -> None:
    def handler(status: int, message: str) -> None:
        raise ValueError("handler bug")

    client = Client("K", sink=Failing(TransportError("down")), on_error=handler)
    assert client.capture("u", "E") is False
    assert "on_error raised" in caplog.text


def test_a_consumer_object_is_a_sink_and_is_flushed_not_closed() -> None:
    class Sink:
        def __init__(self) -> None:
            self.sent: list[str] = []
            self.flushed = 0
            self.closed = False

        def send(self, message_type: str, message_json: str) -> None:
            self.sent.append(message_json)

        def flush(self) -> None:
            self.flushed += 1

        def close(self) -> None:
            self.closed = True

    sink = Sink()
    with Client("K", sink=sink) as client:
        client.capture("u", "E")
        assert client.flush() is True
    assert len(sink.sent) == 1 and sink.flushed == 2 and not sink.closed


def test_host_and_region_belong_to_the_consumer_when_a_sink_is_given(cap: Capture) -> None:
    with pytest.raises(InvalidInputError, match="host"):
        Client("K", "https://eu.i.posthog.com", sink=cap)
    with pytest.raises(InvalidInputError, match="region"):
        Client("K", region="eu", sink=cap)
    with pytest.raises(InvalidInputError, match="not both"):
        Client("K", "https://a.example", api_host="https://b.example")


def test_the_project_key_is_shown_but_never_put_in_a_message(client: Client, cap: Capture) -> None:
    client.capture("u", "E")
    assert "phc_project_key" not in cap.raw[0][1]
    assert "phc_project_key" in repr(client)
