"""Processors on the message dict before it is serialised: exact JSON, over real HTTP."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any, Optional

import pytest

from tracker import _version
from tracker.errors import InvalidInputError, InvalidTypeError
from tracker.processors import SuperProperties, compose
from tracker.scrub import Scrub
from tracker.tracker import Tracker

# a fixed time and insert id make the whole message exact
FIXED = {"time": 1_700_000_000, "$insert_id": "id-1"}


def own(distinct_id: str = "u1", **extra: Any) -> dict[str, Any]:
    """The library's own properties of an event tracked with FIXED."""
    return {"token": "TOKEN", "distinct_id": distinct_id, "time": 1_700_000_000_000,
            "$insert_id": "id-1", "mp_lib": "python", "$lib_version": _version.__version__,
            **extra}


def tracker_for(collector: Any, *processors: Any, **options: Any) -> Tracker:
    return Tracker("TOKEN", api_host=collector.url, processors=list(processors), **options)


def test_processors_run_in_order_on_the_dict_and_the_collector_gets_the_result(
        collector: Any) -> None:
    seen: list[tuple[str, list[str]]] = []

    def first(message_type: str, message: dict[str, Any]) -> dict[str, Any]:
        seen.append((message_type, sorted(message["properties"])))
        message["properties"]["step"] = ["first"]
        return message

    def second(message_type: str, message: dict[str, Any]) -> dict[str, Any]:
        message["properties"]["step"] = [*message["properties"]["step"], "second"]
        return {"event": message["event"].upper(), "properties": message["properties"]}

    with tracker_for(collector, first, second) as tracker:
        assert tracker.track("u1", "signed up", {"plan": "pro", **FIXED}) is True
    assert seen == [("event", sorted([*own(), "plan"]))]
    assert collector.messages("track") == [{
        "event": "SIGNED UP",
        "properties": {**own(), "plan": "pro", "step": ["first", "second"]},
    }]


def test_without_processors_the_message_is_unchanged(collector: Any) -> None:
    with tracker_for(collector) as tracker:
        tracker.track("u1", "E", {"plan": "pro", **FIXED})
    assert collector.messages("track") == [{"event": "E", "properties": {**own(), "plan": "pro"}}]


def test_none_drops_the_message_counts_it_and_the_call_still_succeeds(collector: Any) -> None:
    def drop_tests(message_type: str, message: dict[str, Any]) -> Optional[dict[str, Any]]:
        return None if message["properties"].get("test") else message

    with tracker_for(collector, drop_tests) as tracker:
        assert tracker.track("u1", "E", {"test": True}) is True
        assert tracker.track("u1", "Kept", {**FIXED}) is True
        assert tracker.stats() == {"dropped": 1, "disabled": 0, "failed": 0}
    assert collector.messages("track") == [{"event": "Kept", "properties": own()}]


def test_a_processor_that_raises_propagates_and_nothing_is_sent(collector: Any) -> None:
    def broken(message_type: str, message: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("a bug in the caller's processor")

    with tracker_for(collector, broken) as tracker:
        with pytest.raises(KeyError, match="a bug"):
            tracker.track("u1", "E")
    assert collector.requests() == []


def test_a_processor_returning_something_else_is_named(collector: Any) -> None:
    def wrong(message_type: str, message: dict[str, Any]) -> Any:
        return json.dumps(message)

    with tracker_for(collector, wrong) as tracker:
        with pytest.raises(InvalidTypeError, match=r"processor .*wrong returned str"):
            tracker.track("u1", "E")
    assert collector.requests() == []


def test_a_processor_that_is_not_callable_is_refused_at_construction() -> None:
    with pytest.raises(InvalidTypeError, match=r"processors\[1\] must be a callable"):
        Tracker("TOKEN", lambda t, m: None, processors=[SuperProperties({}), "scrub"])
    with pytest.raises(InvalidTypeError, match="list of callables"):
        Tracker("TOKEN", lambda t, m: None, processors=print)


def test_values_a_processor_adds_are_checked_like_properties(collector: Any) -> None:
    def add(value: Any) -> Any:
        def processor(message_type: str, message: dict[str, Any]) -> dict[str, Any]:
            message["properties"]["added"] = value
            return message
        return processor

    with tracker_for(collector, add(float("nan"))) as tracker:
        with pytest.raises(InvalidInputError, match=r"after processors.*\['added'\]: NaN"):
            tracker.track("u1", "E")
    when = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone.utc)
    with tracker_for(collector, add(when)) as tracker:
        tracker.track("u1", "E", FIXED)
    assert collector.messages("track") == [
        {"event": "E", "properties": {**own(), "added": "2024-05-01T12:30:00"}}]


def test_processors_see_profile_and_group_updates_with_their_type(collector: Any) -> None:
    types: list[str] = []

    def note(message_type: str, message: dict[str, Any]) -> dict[str, Any]:
        types.append(message_type)
        return message

    with tracker_for(collector, note) as tracker:
        tracker.people.set("u1", {"plan": "pro"})
        tracker.groups.set("Company", "Acme", {"size": 3})
        tracker.alias("new-id", "u1")
    assert types == ["profile_update", "group_update", "event"]
    assert collector.messages("engage")[0]["$set"] == {"plan": "pro"}


# -- super properties -----------------------------------------------------------------


def test_super_properties_fill_in_what_the_call_did_not_give(collector: Any) -> None:
    calls = iter(range(100))
    supers = SuperProperties({"app": "shop", "plan": "free", "token": "other",
                              "n": lambda: next(calls)})
    with tracker_for(collector, supers) as tracker:
        tracker.track("u1", "First", {"plan": "pro", **FIXED})
        tracker.track("u1", "Second", FIXED)
        tracker.people.set("u1", {"a": 1})
    assert collector.messages("track") == [
        {"event": "First", "properties": {"app": "shop", "n": 0, **own(), "plan": "pro"}},
        {"event": "Second", "properties": {"app": "shop", "plan": "free", "n": 1, **own()}},
    ]
    assert "app" not in collector.messages("engage")[0]["$set"]


def test_super_properties_after_another_processor_give_the_same_message(collector: Any) -> None:
    def noop(message_type: str, message: dict[str, Any]) -> dict[str, Any]:
        return message

    supers = SuperProperties({"app": "shop", "plan": "free"})
    with tracker_for(collector, noop, supers) as late, tracker_for(collector, supers) as early:
        late.track("u1", "E", {"plan": "pro", **FIXED})
        early.track("u1", "E", {"plan": "pro", **FIXED})
    first, second = collector.messages("track")
    assert first == second == {"event": "E", "properties": {
        "app": "shop", **own(), "plan": "pro"}}


def test_super_properties_with_override_win_except_over_the_librarys_own(
        collector: Any) -> None:
    supers = SuperProperties({"plan": "enterprise", "distinct_id": "x", "time": 1},
                             override=True)
    with tracker_for(collector, supers) as tracker:
        tracker.track("u1", "E", {"plan": "pro", **FIXED})
    assert collector.messages("track") == [
        {"event": "E", "properties": {**own(), "plan": "enterprise"}}]


def test_bad_super_properties_are_refused_when_built_or_when_called() -> None:
    with pytest.raises(InvalidInputError, match=r"super properties\['x'\]: NaN"):
        SuperProperties({"x": float("nan")})
    with pytest.raises(InvalidTypeError, match="must be a dict"):
        SuperProperties(["app"])  # type: ignore[arg-type]
    sent: list[str] = []
    tracker = Tracker("TOKEN", lambda t, m: sent.append(m),
                      processors=[SuperProperties({"later": lambda: float("inf")})])
    with pytest.raises(InvalidInputError, match="super property 'later'"):
        tracker.track("u1", "E")
    assert sent == []


# -- scrubbing ------------------------------------------------------------------------


def test_scrub_drops_named_keys_at_any_depth_and_never_changes_the_callers_objects(
        collector: Any) -> None:
    props = {"email": "a@b.c", "plan": "pro",
             "contact": {"email": "x@y.z", "city": "Oslo"},
             "people": [{"phone": "123", "name": "Ann"}, "plain"], **FIXED}
    before = json.dumps(props, sort_keys=True)
    with tracker_for(collector, Scrub(["email", "phone"])) as tracker:
        tracker.track("u1", "E", props)
        tracker.people.set("u1", {"email": "a@b.c", "name": "Ann"})
    assert json.dumps(props, sort_keys=True) == before
    assert collector.messages("track") == [{"event": "E", "properties": {
        **own(), "plan": "pro", "contact": {"city": "Oslo"},
        "people": [{"name": "Ann"}, "plain"]}}]
    assert collector.messages("engage")[0]["$set"] == {"name": "Ann"}


def test_scrub_hashes_with_the_salt_str_as_is_others_as_their_json(collector: Any) -> None:
    scrub = Scrub("email", action="hash", salt="pepper")
    with tracker_for(collector, scrub) as tracker:
        tracker.track("u1", "E", {"email": "a@b.c", "nested": {"email": [1, 2]}, **FIXED})
    expected_text = hashlib.sha256(b"pepper" + b"a@b.c").hexdigest()
    expected_list = hashlib.sha256(b"pepper" + b"[1,2]").hexdigest()
    assert collector.messages("track") == [{"event": "E", "properties": {
        **own(), "email": expected_text, "nested": {"email": expected_list}}}]
    assert "pepper" not in repr(scrub)


def test_scrub_refuses_bad_arguments() -> None:
    with pytest.raises(InvalidInputError, match="at least one key"):
        Scrub([])
    with pytest.raises(InvalidInputError, match="'drop' or 'hash'"):
        Scrub(["email"], action="mask")


def test_compose_runs_processors_as_one(collector: Any) -> None:
    both = compose(SuperProperties({"app": "shop", "email": "ops@shop"}), Scrub(["email"]))
    with tracker_for(collector, both) as tracker:
        tracker.track("u1", "E", FIXED)
    assert collector.messages("track") == [{"event": "E", "properties": {"app": "shop", **own()}}]


# -- disabled ---------------------------------------------------------------------------


def test_disabled_checks_and_processes_but_sends_nothing_and_builds_no_consumer(
        collector: Any) -> None:
    seen: list[str] = []

    def note(message_type: str, message: dict[str, Any]) -> dict[str, Any]:
        seen.append(message.get("event", message_type))
        return message

    tracker = Tracker("TOKEN", processors=[note], disabled=True)
    assert tracker._owned == []  # no consumer, no connection
    assert tracker.track("u1", "E") is True
    assert tracker.people.set("u1", {"a": 1}) is True
    with pytest.raises(InvalidInputError):
        tracker.track("u1", "E", {"bad": float("nan")})
    assert seen == ["E", "profile_update"]
    assert tracker.stats() == {"dropped": 0, "disabled": 2, "failed": 0}
    with tracker_for(collector, disabled=True) as quiet:
        quiet.track("u1", "E")
    assert collector.requests() == []
