"""The exact JSON each tracker call hands to its sink."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import time
from decimal import Decimal

import pytest

from tracker._version import __version__ as V
from tracker.tracker import Tracker


class Capture:
    """A sink that keeps what it is given."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def __call__(self, message_type: str, message_json: str) -> None:
        self.sent.append((message_type, message_json))

    def one(self) -> tuple[str, str]:
        assert len(self.sent) == 1, self.sent
        return self.sent.pop()


@pytest.fixture
def cap() -> Capture:
    return Capture()


@pytest.fixture
def tracker(cap: Capture) -> Tracker:
    return Tracker("TOKEN", cap)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def event_generated(message_json: str, before: int) -> tuple[int, str]:
    """The generated time and $insert_id of an event, after checking their shape."""
    props = json.loads(message_json)["properties"]
    assert isinstance(props["time"], int)
    assert before <= props["time"] <= now_ms()
    assert re.fullmatch(r"[0-9a-f]{32}", props["$insert_id"])
    return props["time"], props["$insert_id"]


def head(t: int, i: str, did: str = "u1") -> str:
    return (
        f'"token":"TOKEN","distinct_id":"{did}","time":{t},"$insert_id":"{i}",'
        f'"mp_lib":"python","$lib_version":"{V}"'
    )


def update_time(message_json: str, before: int) -> int:
    t = json.loads(message_json)["$time"]
    assert isinstance(t, int) and before <= t <= now_ms()
    return t


# -- events -------------------------------------------------------------------


def test_track_sends_the_event_with_library_properties(tracker: Tracker, cap: Capture) -> None:
    before = now_ms()
    assert tracker.track("u1", "Plan Upgraded", {"Old Plan": "Business", "New Plan": "Premium"})
    message_type, message_json = cap.one()
    assert message_type == "event"
    t, i = event_generated(message_json, before)
    assert message_json == (
        '{"event":"Plan Upgraded","properties":{' + head(t, i)
        + ',"Old Plan":"Business","New Plan":"Premium"}}'
    )


def test_track_without_properties(tracker: Tracker, cap: Capture) -> None:
    before = now_ms()
    tracker.track("u1", "Sent Message")
    _, m = cap.one()
    t, i = event_generated(m, before)
    assert m == '{"event":"Sent Message","properties":{' + head(t, i) + "}}"


def test_track_with_ip_sets_the_ip_property(tracker: Tracker, cap: Capture) -> None:
    before = now_ms()
    tracker.track("u1", "Visit", None, "203.0.113.9")
    _, m = cap.one()
    t, i = event_generated(m, before)
    assert m == '{"event":"Visit","properties":{' + head(t, i) + ',"ip":"203.0.113.9"}}'


def test_int_distinct_id_is_sent_as_str(tracker: Tracker, cap: Capture) -> None:
    tracker.track(12345, "E")
    assert json.loads(cap.one()[1])["properties"]["distinct_id"] == "12345"


def test_caller_time_insert_id_and_distinct_id_win(tracker: Tracker, cap: Capture) -> None:
    tracker.track("u1", "E", {"time": 1700000000, "$insert_id": "abc-123", "distinct_id": "u9"})
    _, m = cap.one()
    assert m == (
        '{"event":"E","properties":{"token":"TOKEN","distinct_id":"u9","time":1700000000000,'
        f'"$insert_id":"abc-123","mp_lib":"python","$lib_version":"{V}"}}}}'
    )


def test_caller_time_as_datetime_or_milliseconds(tracker: Tracker, cap: Capture) -> None:
    when = dt.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=dt.timezone.utc)
    tracker.track("u1", "E", {"time": when})
    tracker.track("u1", "E", {"time": 1700000000123})
    times = [json.loads(m)["properties"]["time"] for _, m in cap.sent]
    assert times == [1700000000123, 1700000000123]


def test_insert_ids_differ_between_events(tracker: Tracker, cap: Capture) -> None:
    for _ in range(100):
        tracker.track("u1", "E")
    ids = {json.loads(m)["properties"]["$insert_id"] for _, m in cap.sent}
    assert len(ids) == 100


def test_track_does_not_modify_the_callers_properties(tracker: Tracker, cap: Capture) -> None:
    props = {"a": {"b": [1, 2]}, "when": dt.date(2020, 1, 2)}
    snapshot = repr(props)
    tracker.track("u1", "E", props)
    assert repr(props) == snapshot


def test_import_event_is_type_import_with_the_given_time(tracker: Tracker, cap: Capture) -> None:
    when = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    assert tracker.import_event("u1", "Old", when, {"k": "v"})
    message_type, m = cap.one()
    assert message_type == "import"
    i = json.loads(m)["properties"]["$insert_id"]
    assert m == '{"event":"Old","properties":{' + head(1704164645000, i) + ',"k":"v"}}'


def test_import_event_takes_seconds_or_milliseconds(tracker: Tracker, cap: Capture) -> None:
    tracker.import_event("u1", "Old", 1700000000)
    tracker.import_event("u1", "Old", 1700000000500)
    assert [json.loads(m)["properties"]["time"] for _, m in cap.sent] == [
        1700000000000,
        1700000000500,
    ]


def test_alias_is_a_create_alias_event(tracker: Tracker, cap: Capture) -> None:
    before = now_ms()
    assert tracker.alias("new_internal_id", "original_anonymous_id")
    message_type, m = cap.one()
    assert message_type == "event"
    t, i = event_generated(m, before)
    assert m == (
        '{"event":"$create_alias","properties":{'
        + head(t, i, "original_anonymous_id")
        + ',"alias":"new_internal_id"}}'
    )


def test_identify_is_an_identify_event(tracker: Tracker, cap: Capture) -> None:
    before = now_ms()
    tracker.identify("user-7", "anon-1")
    message_type, m = cap.one()
    t, i = event_generated(m, before)
    assert message_type == "event"
    assert m == (
        '{"event":"$identify","properties":{' + head(t, i, "user-7")
        + ',"$identified_id":"user-7","$anon_id":"anon-1"}}'
    )


def test_merge_is_an_import_of_a_merge_event(tracker: Tracker, cap: Capture) -> None:
    before = now_ms()
    tracker.merge("a", "b")
    message_type, m = cap.one()
    t, i = event_generated(m, before)
    assert message_type == "import"
    assert m == (
        '{"event":"$merge","properties":{' + head(t, i, "a") + ',"$distinct_ids":["a","b"]}}'
    )


def test_generate_tracking_url(tracker: Tracker) -> None:
    before = now_ms()
    url = tracker.generate_tracking_url("u1", "Email Opened", {"campaign": "spring"})
    assert url.startswith("https://api.mixpanel.com/track/?data=")
    assert url.endswith("&ip=1&img=1")
    data = url.split("data=", 1)[1].split("&", 1)[0]
    decoded = base64.urlsafe_b64decode(data).decode()
    t = json.loads(decoded)["properties"]["time"]
    assert before <= t <= now_ms()
    assert decoded == (
        '{"event":"Email Opened","properties":{"distinct_id":"u1","token":"TOKEN",'
        f'"time":{t},"mp_lib":"python","$lib_version":"{V}","campaign":"spring"}}}}'
    )
    custom = tracker.generate_tracking_url("u1", "E", endpoint="https://proxy.example/t")
    assert custom.startswith("https://proxy.example/t?data=")


# -- people -------------------------------------------------------------------


def test_people_set_with_ip_and_optional_params(tracker: Tracker, cap: Capture) -> None:
    before = now_ms()
    assert tracker.people.set("12345", {"$first_name": "John", "Favorite Color": "red"}, 0,
                              {"$ignore_time": "true"})
    message_type, m = cap.one()
    assert message_type == "profile_update"
    t = update_time(m, before)
    assert m == (
        f'{{"$token":"TOKEN","$distinct_id":"12345","$time":{t},"$ip":"0",'
        '"$ignore_time":"true","$set":{"$first_name":"John","Favorite Color":"red"}}'
    )


@pytest.mark.parametrize(
    ("call", "args", "op_json"),
    [
        ("set_once", ({"First": dt.datetime(2020, 1, 2, 3, 4, 5)},),
         '"$set_once":{"First":"2020-01-02T03:04:05"}'),
        ("increment", ({"Logins used": 1, "Logins remaining": -1},),
         '"$add":{"Logins used":1,"Logins remaining":-1}'),
        ("plus_one", ("Logins used",), '"$add":{"Logins used":1}'),
        ("append", ({"Favorite Fruits": "Apples"},), '"$append":{"Favorite Fruits":"Apples"}'),
        ("union", ({"Tags": ["a", 2]},), '"$union":{"Tags":["a",2]}'),
        ("remove", ({"Tags": "a"},), '"$remove":{"Tags":"a"}'),
        ("unset", ("Tags",), '"$unset":["Tags"]'),
        ("unset", (["Tags", "Color"],), '"$unset":["Tags","Color"]'),
        ("clear_charges", (), '"$set":{"$transactions":[]}'),
    ],
)
def test_people_operations(tracker: Tracker, cap: Capture, call: str, args: tuple,
                           op_json: str) -> None:
    before = now_ms()
    assert getattr(tracker.people, call)("12345", *args)
    message_type, m = cap.one()
    t = update_time(m, before)
    assert message_type == "profile_update"
    assert m == f'{{"$token":"TOKEN","$distinct_id":"12345","$time":{t},{op_json}}}'


def test_people_optional_time_and_ignore_alias(tracker: Tracker, cap: Capture) -> None:
    when = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    tracker.people.set("u", {"a": 1}, None, {"$time": when, "$ignore_alias": True})
    assert cap.one()[1] == (
        '{"$token":"TOKEN","$distinct_id":"u","$time":1704067200000,'
        '"$ignore_alias":true,"$set":{"a":1}}'
    )


def test_track_charge_appends_a_transaction(tracker: Tracker, cap: Capture) -> None:
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0, tzinfo=None)
    tracker.people.track_charge("12345", 9.99)
    m = cap.one()[1]
    after = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    msg = json.loads(m)
    charged = msg["$append"]["$transactions"]["$time"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", charged)
    assert before <= dt.datetime.fromisoformat(charged) <= after
    assert m == (
        f'{{"$token":"TOKEN","$distinct_id":"12345","$time":{msg["$time"]},'
        f'"$append":{{"$transactions":{{"$time":"{charged}","$amount":9.99}}}}}}'
    )


def test_track_charge_with_a_date_and_properties(tracker: Tracker, cap: Capture) -> None:
    tracker.people.track_charge("12345", 30.50, {"$time": dt.datetime(2013, 1, 2), "sku": "x"})
    msg = json.loads(cap.one()[1])
    assert msg["$append"] == {
        "$transactions": {"$time": "2013-01-02T00:00:00", "$amount": 30.5, "sku": "x"}
    }


def test_delete_user(tracker: Tracker, cap: Capture) -> None:
    before = now_ms()
    tracker.people.delete_user("12345")
    tracker.people.delete_user("dup", ignore_alias=True)
    (_, a), (_, b) = cap.sent
    ta, tb = update_time(a, before), update_time(b, before)
    assert a == (
        f'{{"$token":"TOKEN","$distinct_id":"12345","$time":{ta},'
        '"$ignore_alias":false,"$delete":""}'
    )
    assert b == (
        f'{{"$token":"TOKEN","$distinct_id":"dup","$time":{tb},'
        '"$ignore_alias":true,"$delete":""}'
    )


def test_people_update_fills_token_and_time(tracker: Tracker, cap: Capture) -> None:
    before = now_ms()
    tracker.people.update({"$distinct_id": "u", "$set": {"a": 1}, "$ignore_time": True})
    m = cap.one()[1]
    t = update_time(m, before)
    assert m == (
        f'{{"$token":"TOKEN","$distinct_id":"u","$time":{t},"$set":{{"a":1}},"$ignore_time":true}}'
    )
    tracker.people.update({"$distinct_id": "u", "$time": 1700000000, "$add": {"n": 1}})
    assert cap.one()[1] == (
        '{"$token":"TOKEN","$distinct_id":"u","$time":1700000000000,"$add":{"n":1}}'
    )


# -- groups -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "args", "op_json"),
    [
        ("set", ({"$name": "Acme, Inc.", "plan": "Premium"},),
         '"$set":{"$name":"Acme, Inc.","plan":"Premium"}'),
        ("set_once", ({"First Login Date": dt.datetime(2020, 5, 6, 7, 8, 9)},),
         '"$set_once":{"First Login Date":"2020-05-06T07:08:09"}'),
        ("unset", ("Overdue Since",), '"$unset":["Overdue Since"]'),
        ("unset", (["Overdue Since", "Paid Date"],), '"$unset":["Overdue Since","Paid Date"]'),
        ("union", ({"Levels Completed": ["Suffragette City"]},),
         '"$union":{"Levels Completed":["Suffragette City"]}'),
        ("remove", ({"Items purchased": "socks"},), '"$remove":{"Items purchased":"socks"}'),
        ("delete", (), '"$delete":""'),
        ("delete_group", (), '"$delete":""'),
    ],
)
def test_group_operations(tracker: Tracker, cap: Capture, call: str, args: tuple,
                          op_json: str) -> None:
    before = now_ms()
    assert getattr(tracker.groups, call)("Company", "Acme", *args)
    message_type, m = cap.one()
    t = update_time(m, before)
    assert message_type == "group_update"
    assert m == (
        f'{{"$token":"TOKEN","$group_key":"Company","$group_id":"Acme","$time":{t},{op_json}}}'
    )


def test_group_id_int_is_sent_as_str(tracker: Tracker, cap: Capture) -> None:
    tracker.groups.set("Company", 13254, {"a": 1})
    assert json.loads(cap.one()[1])["$group_id"] == "13254"


def test_groups_update_fills_token_and_time(tracker: Tracker, cap: Capture) -> None:
    tracker.groups.update({"$group_key": "k", "$group_id": "g", "$time": 1700000000,
                           "$set": {"a": Decimal("1.5")}})
    assert cap.one()[1] == (
        '{"$token":"TOKEN","$group_key":"k","$group_id":"g","$time":1700000000000,'
        '"$set":{"a":1.5}}'
    )


# -- sinks and consumers -------------------------------------------------------


class SendOnly:
    """A consumer-like object: only ``send``."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, message_type: str, message_json: str) -> None:
        self.sent.append((message_type, message_json))


def test_a_consumer_object_is_used_through_send() -> None:
    consumer = SendOnly()
    tracker = Tracker("TOKEN", consumer)
    tracker.track("u1", "E")
    tracker.people.set("u1", {"a": 1})
    tracker.alias("x", "u1")  # no endpoints: alias goes through the same consumer
    assert [t for t, _ in consumer.sent] == ["event", "profile_update", "event"]


def test_message_json_is_compact_and_keeps_unicode(tracker: Tracker, cap: Capture) -> None:
    tracker.track("u1", "Café ☕", {"ville": "Zürich"})
    m = cap.one()[1]
    assert '"event":"Café ☕"' in m and '"ville":"Zürich"' in m
    assert ", " not in m and ": " not in m


def test_insert_ids_in_a_forked_child_differ_from_the_parents() -> None:
    import os

    from tracker._ids import new_insert_id

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write, ",".join(new_insert_id() for _ in range(100)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split(","))
    os.waitpid(pid, 0)
    parent = {new_insert_id() for _ in range(100)}
    assert len(child) == len(parent) == 100
    assert not child & parent
