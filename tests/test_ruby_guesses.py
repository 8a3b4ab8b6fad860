"""What a Ruby user writes from the seed documents works, or says exactly what to write.

Also the EU rule: per-type URLs that all name one host send the types left
out (``/import``) to that host, never to the US default.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from consumer_messages import TOKEN, event, profile_update, quick_retry

from consumers.buffered import BufferedConsumer
from consumers.consumer import Consumer
from consumers.endpoints import MESSAGE_TYPES, Endpoints
from consumers.errors import ConfigurationError
from tests.local_routing import local_session
from tracker.errors import InvalidInputError, InvalidTypeError
from tracker.posthog import Client
from tracker.tracker import Tracker

EU = "https://api-eu.mixpanel.com"
HOSTS = ("api.mixpanel.com", "api-eu.mixpanel.com", "api-in.mixpanel.com")


def group_update() -> str:
    return json.dumps({"$token": TOKEN, "$group_key": "company", "$group_id": "acme",
                       "$set": {"seats": 3}})


BUILD = {"event": event, "profile_update": profile_update, "group_update": group_update,
         "import": event}


@pytest.fixture
def cloud(collector: Any) -> Iterator[requests.Session]:
    """A session that delivers Mixpanel's regional hosts to the collector."""
    session = local_session(collector.url, HOSTS)
    yield session
    session.close()


def hosts_by_path(collector: Any) -> dict[str, str]:
    return {r["path"]: {k.lower(): v for k, v in r["headers"].items()}["host"]
            for r in collector.requests()}


def send_every_type(consumer: Consumer) -> None:
    with consumer:
        for message_type in MESSAGE_TYPES:
            consumer.send(message_type, BUILD[message_type]())


# -- the EU rule ---------------------------------------------------------------------


def test_the_seeds_eu_urls_send_import_to_the_eu_host_too(
    collector: Any, cloud: requests.Session
) -> None:
    consumer = Consumer(events_url=f"{EU}/track", update_url=f"{EU}/engage",
                        groups_url=f"{EU}/groups", project_token=TOKEN,
                        session=cloud, retry=quick_retry(2))
    assert consumer.endpoints == Endpoints.region("eu")
    send_every_type(consumer)
    assert hosts_by_path(collector) == {
        "/track": "api-eu.mixpanel.com", "/engage": "api-eu.mixpanel.com",
        "/groups": "api-eu.mixpanel.com", "/import": "api-eu.mixpanel.com",
    }


def test_rubys_positional_consumer_new_form_works(collector: Any, cloud: requests.Session) -> None:
    # Mixpanel::Consumer.new(events_url, update_url, groups_url), as in the seed
    eu_consumer = Consumer(f"{EU}/track", f"{EU}/engage", f"{EU}/groups",
                           project_token=TOKEN, session=cloud, retry=quick_retry(2))
    tracker = Tracker(TOKEN, lambda type, message: eu_consumer.send(type, message))
    assert tracker.track("user-1", "Sent Message") is True
    assert tracker.import_event("user-1", "Old", 1_700_000_000) is True
    eu_consumer.close()
    assert hosts_by_path(collector) == {"/track": "api-eu.mixpanel.com",
                                        "/import": "api-eu.mixpanel.com"}


def test_one_url_decides_the_host_of_the_others() -> None:
    endpoints = Consumer(import_url=f"{EU}/import").endpoints
    assert endpoints == Endpoints.region("eu")


def test_a_path_prefix_is_kept_for_the_types_left_out() -> None:
    endpoints = Consumer(events_url="https://proxy.example.test/mp/track").endpoints
    assert endpoints.imports == "https://proxy.example.test/mp/import"
    assert endpoints.update == "https://proxy.example.test/mp/engage"


def test_a_url_off_the_usual_path_names_its_host() -> None:
    endpoints = Consumer(events_url="https://relay.example.test/ingest/events").endpoints
    assert endpoints.events == "https://relay.example.test/ingest/events"
    assert endpoints.imports == "https://relay.example.test/import"


def test_urls_naming_different_hosts_must_name_every_type(collector: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        Consumer(events_url=f"{EU}/track", update_url=f"{collector.url}/engage")
    text = str(info.value)
    assert "different hosts" in text
    assert "give groups_url= and import_url= too" in text
    assert "region=" in text
    assert collector.requests() == []


def test_different_hosts_with_a_region_for_the_rest_are_fine() -> None:
    endpoints = Consumer(region="eu", events_url="https://relay.example.test/track",
                         update_url="https://other.example.test/engage").endpoints
    assert endpoints.imports == f"{EU}/import"


def test_without_urls_the_default_is_still_the_us() -> None:
    assert Consumer().endpoints == Endpoints.region("us")


def test_a_password_in_a_url_stays_out_of_the_error() -> None:
    with pytest.raises(ConfigurationError) as info:
        Consumer(events_url="https://user:hunter2@a.example.test/track",
                 update_url="https://b.example.test/engage")
    assert "hunter2" not in str(info.value)
    assert "user:***@a.example.test" in str(info.value)


def test_a_token_passed_where_a_url_goes_is_named_and_not_echoed() -> None:
    with pytest.raises(ValueError) as info:
        Consumer("secret-looking-token")
    assert "events_url must be a URL" in str(info.value)
    assert "secret-looking-token" not in str(info.value)


def test_a_url_that_is_not_a_str_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="update_url must be a URL"):
        Consumer(f"{EU}/track", 42)  # type: ignore[arg-type]


# -- BufferedConsumer ----------------------------------------------------------------


def test_max_buffer_length_says_max_batch() -> None:
    with pytest.raises(TypeError) as info:
        BufferedConsumer(max_buffer_length=10)
    text = str(info.value)
    assert text.startswith("BufferedConsumer() got an unexpected keyword argument "
                           "'max_buffer_length'")
    assert "write max_batch=10 instead" in text
    assert "Consumer.__init__" not in text


@pytest.mark.parametrize(("theirs", "ours"), [
    ("max_size", "max_batch=10"),           # mixpanel-python
    ("people_url", "update_url=..."),
    ("events_endpoint", "events_url=..."),  # the Ruby parameter names
    ("request_timeout", "timeout=..."),
])
def test_other_libraries_names_say_ours(theirs: str, ours: str) -> None:
    value: Any = 10 if theirs == "max_size" else "https://u:pw@example.test/x"
    with pytest.raises(TypeError) as info:
        BufferedConsumer(**{theirs: value})
    assert f"write {ours} instead" in str(info.value)
    assert "pw@" not in str(info.value)


def test_a_misspelt_keyword_is_named_on_bufferedconsumer_with_a_suggestion() -> None:
    with pytest.raises(TypeError) as info:
        BufferedConsumer(max_bach=10)
    assert str(info.value) == ("BufferedConsumer() got an unexpected keyword argument "
                               "'max_bach'; did you mean max_batch=?")


def test_rubys_positional_urls_on_bufferedconsumer_say_what_to_write() -> None:
    with pytest.raises(TypeError) as info:
        BufferedConsumer(f"{EU}/track", f"{EU}/engage", f"{EU}/groups", 10)  # type: ignore[call-overload]
    text = str(info.value)
    assert "BufferedConsumer(events_url=..., update_url=..., groups_url=..., max_batch=...)" in text
    assert "BufferedConsumer(Consumer(events_url, update_url, groups_url))" in text


def test_one_url_as_the_consumer_says_what_to_write() -> None:
    with pytest.raises(TypeError, match=r"events_url=\.\.\."):
        BufferedConsumer(f"{EU}/track")  # type: ignore[call-overload]


def test_bufferedconsumer_keeps_eu_urls_in_the_eu(collector: Any, cloud: requests.Session) -> None:
    consumer = BufferedConsumer(events_url=f"{EU}/track", update_url=f"{EU}/engage",
                                groups_url=f"{EU}/groups", max_batch=10, project_token=TOKEN,
                                session=cloud, retry=quick_retry(2))
    with consumer:
        consumer.send("import", event())
    assert hosts_by_path(collector) == {"/import": "api-eu.mixpanel.com"}


# -- PostHog's Ruby-style calls --------------------------------------------------------


class Capture:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def __call__(self, message_type: str, message_json: str) -> None:
        self.sent.append(json.loads(message_json))


def test_capture_takes_the_seeds_one_dict_form() -> None:
    cap = Capture()
    posthog = Client("phc_project_key", sink=cap)
    assert posthog.capture({
        "distinct_id": "distinct id",
        "event": "movie played",
        "properties": {"movie_id": "123", "category": "romcom"},
    }) is True
    assert posthog.capture("distinct id", "movie played",
                           {"movie_id": "123", "category": "romcom"}) is True
    ruby, python = cap.sent
    for message in (ruby, python):
        del message["uuid"], message["timestamp"]
    assert ruby == python
    assert ruby["event"] == "movie played"
    assert ruby["properties"]["category"] == "romcom"


def test_identify_and_alias_take_the_one_dict_form() -> None:
    cap = Capture()
    posthog = Client("phc_project_key", sink=cap)
    posthog.identify({"distinct_id": "user:123",
                      "properties": {"email": "john@doe.com", "pro_user": False}})
    posthog.alias({"distinct_id": "user:123", "alias": "user:12345"})
    identify, alias = cap.sent
    assert identify["$set"] == {"email": "john@doe.com", "pro_user": False}
    assert alias["properties"]["alias"] == "user:12345"
    assert alias["distinct_id"] == "user:123"


def test_a_dict_without_event_says_what_it_needs() -> None:
    posthog = Client("phc_project_key", sink=Capture())
    with pytest.raises(InvalidInputError) as info:
        posthog.capture({"distinct_id": "u1", "properties": {}})
    assert str(info.value) == ("capture() needs 'event' in its dict, as "
                               "capture({'distinct_id': ..., 'event': ...})")


def test_an_unknown_key_in_the_dict_is_named() -> None:
    posthog = Client("phc_project_key", sink=Capture())
    with pytest.raises(InvalidInputError, match=r"unknown key\(s\) \['message_id'\]"):
        posthog.capture({"distinct_id": "u1", "event": "e", "message_id": "x"})


def test_a_dict_and_arguments_together_are_refused() -> None:
    posthog = Client("phc_project_key", sink=Capture())
    with pytest.raises(InvalidTypeError, match="either one dict"):
        posthog.capture({"distinct_id": "u1", "event": "e"}, properties={"a": 1})  # type: ignore[call-overload]
