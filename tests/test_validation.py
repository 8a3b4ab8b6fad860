"""Bad input raises at the call site with a message naming what was wrong; nothing is sent."""

from __future__ import annotations

import datetime as dt
import time
import warnings
from typing import Any, Callable

import pytest

from tracker.errors import (
    InvalidInputError,
    InvalidTypeError,
    PlaceholderIdWarning,
    TrackingError,
    TrackingWarning,
)
from tracker.tracker import Tracker

Call = Callable[[Tracker], Any]


def deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"in": value}
    return value


REFUSED: list[tuple[str, Call, type, str]] = [
    ("distinct_id type", lambda t: t.track(None, "E"), InvalidTypeError,
     "distinct_id must be a str (or int), got NoneType None"),
    ("distinct_id bool", lambda t: t.track(True, "E"), InvalidTypeError,
     "distinct_id must be a str (or int), got bool True"),
    ("distinct_id empty", lambda t: t.track("", "E"), InvalidInputError,
     "distinct_id must not be empty"),
    ("distinct_id too long", lambda t: t.track("x" * 256, "E"), InvalidInputError,
     "distinct_id is 256 characters; the service accepts at most 255"),
    ("event type", lambda t: t.track("u", 5), InvalidTypeError,
     "event must be a str, got int 5"),
    ("event empty", lambda t: t.track("u", ""), InvalidInputError, "event must not be empty"),
    ("properties type", lambda t: t.track("u", "E", ["a"]), InvalidTypeError,
     "properties must be a dict, got list ['a']"),
    ("property key type", lambda t: t.track("u", "E", {1: "a"}), InvalidTypeError,
     "properties: key 1 is a int, keys must be str"),
    ("property key empty", lambda t: t.track("u", "E", {"": "a"}), InvalidInputError,
     "properties: property names must not be empty"),
    ("NaN", lambda t: t.track("u", "E", {"price": float("nan")}), InvalidInputError,
     "properties['price']: NaN is not valid JSON"),
    ("unknown type", lambda t: t.track("u", "E", {"f": print}), InvalidTypeError,
     "properties['f']: builtin_function_or_method <built-in function print> "
     "is not JSON serializable"),
    ("too many properties",
     lambda t: t.track("u", "E", {f"p{i}": i for i in range(250)}), InvalidInputError,
     "properties has 256 properties (with the library's own); the service accepts at most 255"),
    ("objects too deep", lambda t: t.track("u", "E", {"o": deep(4)}), InvalidInputError,
     "properties['o']['in']['in']['in']: objects nest deeper than 3 levels; "
     "the service refuses them"),
    ("list too long", lambda t: t.track("u", "E", {"l": list(range(256))}), InvalidInputError,
     "properties['l']: list has 256 items; the service accepts at most 255"),
    ("object too many keys",
     lambda t: t.track("u", "E", {"o": {str(i): i for i in range(256)}}), InvalidInputError,
     "properties['o']: object has 256 keys; the service accepts at most 255"),
    ("event over 1 MB",
     lambda t: t.track("u", "E", {f"p{i}": "x" * 5000 for i in range(201)}), InvalidInputError,
     "event is 1005xxx bytes of JSON; the service refuses events over 1000000 bytes"),
    ("insert_id", lambda t: t.track("u", "E", {"$insert_id": "has space"}), InvalidInputError,
     "properties['$insert_id'] 'has space' must be 1-36 ASCII letters, digits or '-'"),
    ("insert_id too long", lambda t: t.track("u", "E", {"$insert_id": "a" * 37}),
     InvalidInputError, "properties['$insert_id'] '" + "a" * 37
     + "' must be 1-36 ASCII letters, digits or '-'"),
    ("time type", lambda t: t.track("u", "E", {"time": "yesterday"}), InvalidTypeError,
     "properties['time'] must be a datetime or a number of seconds or milliseconds, "
     "got str 'yesterday'"),
    ("time before 1971", lambda t: t.track("u", "E", {"time": 5}), InvalidInputError,
     "properties['time'] 5 is before 1971; the service refuses it"),
    ("ip type", lambda t: t.track("u", "E", None, ["1.2.3.4"]), InvalidTypeError,
     "ip must be a str (or 0), got list"),
    ("import in the future",
     lambda t: t.import_event("u", "E", time.time() + 7200), InvalidInputError,
     "is more than an hour in the future; /import refuses it"),
    ("import before 1971", lambda t: t.import_event("u", "E", dt.datetime(1969, 7, 20)),
     InvalidInputError,
     "timestamp datetime.datetime(1969, 7, 20, 0, 0) is before 1971; the service refuses it"),
    ("alias to itself", lambda t: t.alias("u", "u"), InvalidInputError,
     "alias_id and real_id are both 'u'"),
    ("alias empty", lambda t: t.alias("", "u"), InvalidInputError,
     "alias_id must not be empty"),
    ("increment non-number", lambda t: t.people.increment("u", {"n": "1"}), InvalidTypeError,
     "properties ($add)['n'] must be a number, got str '1'"),
    ("union not a list", lambda t: t.people.union("u", {"tags": "a"}), InvalidTypeError,
     "properties ($union)['tags'] must be a list of str or numbers, got str 'a'"),
    ("union empty list", lambda t: t.groups.union("C", "A", {"tags": []}), InvalidInputError,
     "properties ($union)['tags'] must not be an empty list"),
    ("union item type", lambda t: t.people.union("u", {"tags": [{"a": 1}]}), InvalidTypeError,
     "properties ($union)['tags'][0] must be a str or a number, got dict {'a': 1}"),
    ("unset nothing", lambda t: t.people.unset("u", []), InvalidInputError,
     "properties ($unset) must name at least one property"),
    ("unset name type", lambda t: t.groups.unset("C", "A", ["ok", 3]), InvalidTypeError,
     "properties ($unset)[1] must be a str, got int 3"),
    ("optional op", lambda t: t.people.set("u", {"a": 1}, None, {"$unset": ["b"]}),
     InvalidInputError, "optional_params['$unset']: give operations and ids as arguments, "
     "one operation per message"),
    ("profile NaN", lambda t: t.people.set("u", {"score": float("inf")}), InvalidInputError,
     "properties ($set)['score']: inf is not valid JSON"),
    ("group key empty", lambda t: t.groups.set("", "A", {"a": 1}), InvalidInputError,
     "group_key must not be empty"),
    ("group id type", lambda t: t.groups.set("C", None, {"a": 1}), InvalidTypeError,
     "group_id must be a str (or int), got NoneType None"),
    ("charge amount", lambda t: t.people.track_charge("u", "9.99"), InvalidTypeError,
     "amount must be a number, got str"),
    ("update without id", lambda t: t.people.update({"$set": {"a": 1}}), InvalidInputError,
     "message must hold '$distinct_id'"),
    ("group update without id", lambda t: t.groups.update({"$group_key": "C"}),
     InvalidInputError, "message must hold '$group_id'"),
]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [pytest.param(c, e, m, id=name) for name, c, e, m in REFUSED],
)
def test_bad_input_raises_and_sends_nothing(call: Call, error: type, message: str) -> None:
    sent: list[tuple[str, str]] = []
    tracker = Tracker("TOKEN", lambda t, m: sent.append((t, m)))
    with pytest.raises(error) as info:
        call(tracker)
    text = str(info.value)
    if "xxx" in message:
        prefix, suffix = message.split("xxx")
        assert text.startswith(prefix[:-4]) and text.endswith(suffix), text
    elif message.startswith(("is more", "timestamp")):
        assert message in text
    else:
        assert text == message
    assert isinstance(info.value, TrackingError) and isinstance(info.value, ValueError)
    assert sent == []


@pytest.mark.parametrize("token", ["", "  ", None, 5])
def test_a_tracker_needs_a_token(token: Any) -> None:
    with pytest.raises(InvalidInputError, match="token"):
        Tracker(token, lambda t, m: None)


def test_region_with_a_sink_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="region= and api_host= configure the default"):
        Tracker("T", lambda t, m: None, region="eu")


def test_a_sink_must_be_callable() -> None:
    with pytest.raises(InvalidTypeError, match="sink must be a callable"):
        Tracker("T", "not a sink")


@pytest.mark.parametrize("placeholder", ["null", "undefined", "0", "-1", "Anonymous", "[]",
                                          "00000000-0000-0000-0000-000000000000"])
def test_placeholder_distinct_ids_warn_but_are_sent(placeholder: str) -> None:
    sent: list[str] = []
    tracker = Tracker("T", lambda t, m: sent.append(m))
    with pytest.warns(PlaceholderIdWarning, match="is a placeholder the service treats as invalid"):
        tracker.track(placeholder, "E")
    assert len(sent) == 1


def test_placeholder_warning_points_at_the_caller() -> None:
    tracker = Tracker("T", lambda t, m: None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tracker.track("null", "E")
    assert caught[0].filename == __file__


def test_long_names_warn_but_are_sent() -> None:
    sent: list[str] = []
    tracker = Tracker("T", lambda t, m: sent.append(m))
    with pytest.warns(TrackingWarning, match="event is 300 characters; the service keeps 255"):
        tracker.track("u", "e" * 300)
    with pytest.warns(TrackingWarning, match="is 256 characters; the service keeps 255"):
        tracker.track("u", "E", {"p" * 256: 1})
    assert len(sent) == 2


def test_limits_at_the_edge_are_accepted() -> None:
    sent: list[str] = []
    tracker = Tracker("T", lambda t, m: sent.append(m))
    tracker.track("u", "E", {f"p{i}": i for i in range(249)})  # 255 with the library's six
    tracker.track("u", "E", {"o": deep(3), "l": list(range(255))})
    tracker.track("u", "E", {"$insert_id": "a" * 36})
    tracker.import_event("u", "E", time.time() + 3000)
    assert len(sent) == 4


@pytest.mark.parametrize("token", ["", "   ", None, 5])
def test_a_token_given_as_a_property_must_be_a_non_empty_str(token: Any) -> None:
    sent: list[str] = []
    tracker = Tracker("TOKEN", lambda t, m: sent.append(m))
    with pytest.raises(InvalidInputError, match=r"^properties\['token'\] must"):
        tracker.track("u", "E", {"token": token})
    with pytest.raises(InvalidInputError, match=r"^properties\['token'\] must"):
        tracker.generate_tracking_url("u", "E", {"token": token})
    with pytest.raises(InvalidInputError, match=r"^message\['\$token'\] must"):
        tracker.people.update({"$distinct_id": "u", "$token": token, "$set": {"a": 1}})
    with pytest.raises(InvalidInputError, match=r"^message\['\$token'\] must"):
        tracker.groups.update({"$group_key": "C", "$group_id": "A", "$token": token,
                               "$set": {"a": 1}})
    assert sent == []


def test_a_token_given_as_a_property_wins_when_it_is_valid() -> None:
    sent: list[str] = []
    tracker = Tracker("TOKEN", lambda t, m: sent.append(m))
    tracker.track("u", "E", {"token": "OTHER"})
    assert '"token":"OTHER"' in sent[0]


PLUS2 = dt.timezone(dt.timedelta(hours=2))
MINUS5 = dt.timezone(dt.timedelta(hours=-5))


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        (dt.datetime.max, 253_402_300_799_999),
        (dt.datetime.max.replace(tzinfo=dt.timezone.utc), 253_402_300_799_999),
        (dt.datetime.max.replace(tzinfo=PLUS2, microsecond=0), 253_402_293_599_000),
        (253_402_300_799_999, 253_402_300_799_999),
        (31_536_000, 31_536_000_000),
    ],
    ids=repr,
)
def test_times_at_the_ends_of_the_range_are_sent(value: Any, ms: int) -> None:
    sent: list[str] = []
    tracker = Tracker("TOKEN", lambda t, m: sent.append(m))
    tracker.track("u", "E", {"time": value})
    assert f'"time":{ms},' in sent[0]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda t: t.track("u", "E", {"time": dt.datetime.max.replace(tzinfo=MINUS5)}),
         "properties['time']: datetime 9999-12-31T23:59:59.999999-05:00 is after the year "
         "9999 in UTC; only the years 1-9999 can be sent"),
        (lambda t: t.track("u", "E", {"time": dt.datetime.min.replace(tzinfo=PLUS2)}),
         "properties['time']: datetime 0001-01-01T00:00:00+02:00 is before the year 1 in UTC"),
        (lambda t: t.track("u", "E", {"time": 253_402_300_800_000}),
         "properties['time'] 253402300800000 is after the year 9999; the service refuses it"),
        (lambda t: t.track("u", "E", {"time": 1e300}),
         "properties['time'] 1e+300 is after the year 9999; the service refuses it"),
        (lambda t: t.import_event("u", "E", dt.datetime.min.replace(tzinfo=PLUS2)),
         "timestamp datetime.datetime(1, 1, 1, 0, 0, tzinfo=datetime.timezone("),
        (lambda t: t.import_event("u", "E", dt.datetime.max.replace(tzinfo=MINUS5)),
         "timestamp datetime.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo="),
        (lambda t: t.people.set("u", {"a": 1}, None,
                                {"$time": dt.datetime.max.replace(tzinfo=MINUS5)}),
         "optional_params['$time']: datetime 9999-12-31T23:59:59.999999-05:00 is after"),
        (lambda t: t.people.update({"$distinct_id": "u", "$time": 10**5000, "$set": {}}),
         "message['$time']: integer <int of 16610 bits> is outside the signed 64-bit range"),
    ],
    ids=["max-05:00", "min+02:00", "ms past 9999", "1e300", "import min+02:00",
         "import max-05:00", "profile $time", "profile $time huge"],
)
def test_times_beyond_the_range_are_refused_naming_where(call: Call, message: str) -> None:
    sent: list[str] = []
    tracker = Tracker("TOKEN", lambda t, m: sent.append(m))
    with pytest.raises(InvalidInputError) as info:
        call(tracker)
    assert str(info.value).startswith(message), str(info.value)
    assert sent == []


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda t: t.track(10**5000, "E"), InvalidInputError,
         "distinct_id is an int of over 255 digits; the service accepts at most 255 characters"),
        (lambda t: t.track(10**255, "E"), InvalidInputError,
         "distinct_id is 256 characters; the service accepts at most 255"),
        (lambda t: t.track("u", 10**5000), InvalidTypeError,
         "event must be a str, got int <int of 16610 bits>"),
        (lambda t: t.groups.set("C", 10**5000, {"a": 1}), InvalidInputError,
         "group_id is an int of over 255 digits; the service accepts at most 255 characters"),
        (lambda t: t.track("u", "E", {"$insert_id": 10**5000}), InvalidInputError,
         "properties['$insert_id']: integer <int of 16610 bits> is outside the signed 64-bit"),
    ],
    ids=["huge id", "id of 256 digits", "huge event name", "huge group id", "huge insert id"],
)
def test_huge_ints_as_ids_or_names_are_refused_without_printing_them(
    call: Call, error: type, message: str
) -> None:
    sent: list[str] = []
    tracker = Tracker("TOKEN", lambda t, m: sent.append(m))
    with pytest.raises(error) as info:
        call(tracker)
    assert str(info.value).startswith(message), str(info.value)
    assert sent == []
