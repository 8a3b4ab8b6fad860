"""A working Python twin of every code example in the Mixpanel Ruby docs (seeds 002 and 004)."""

from __future__ import annotations

import datetime as dt
import json
import queue
from pathlib import Path
from typing import Any

import pytest
from decoded_sink import Capture

from tracker.tracker import Tracker

PROJECT_TOKEN = YOUR_TOKEN = YOUR_MIXPANEL_TOKEN = YOUR_PROJECT_TOKEN = "TOKEN"


@pytest.fixture
def cap() -> Capture:
    return Capture()


@pytest.fixture
def live_collector(request: pytest.FixtureRequest) -> Any:
    """The shared ``collector`` fixture."""
    return request.getfixturevalue("collector")


@pytest.fixture
def tracker(cap: Capture) -> Tracker:
    return Tracker(YOUR_MIXPANEL_TOKEN, cap)


def test_sending_events(tracker: Tracker, cap: Capture) -> None:
    user_id = "user-1"
    # Tracks an event, 'Sent Message', with distinct_id user_id
    tracker.track(user_id, "Sent Message")
    # You can also include properties to describe the circumstances of the event
    tracker.track(user_id, "Plan Upgraded", {
        "Old Plan": "Business",
        "New Plan": "Premium",
    })
    assert [m["event"] for _, m in cap.sent] == ["Sent Message", "Plan Upgraded"]
    assert cap.sent[1][1]["properties"]["New Plan"] == "Premium"


def test_eu_data_residency_with_a_custom_consumer() -> None:
    from consumers import Consumer, Endpoints

    eu_consumer = Consumer(endpoints=Endpoints(
        "https://api-eu.mixpanel.com/track",
        "https://api-eu.mixpanel.com/engage",
        "https://api-eu.mixpanel.com/groups",
        "https://api-eu.mixpanel.com/import",
    ))
    tracker = Tracker(YOUR_PROJECT_TOKEN, lambda type, message: eu_consumer.send(type, message))
    # the short form: Tracker(YOUR_PROJECT_TOKEN, region="eu")
    assert eu_consumer.endpoints == Endpoints.region("eu")
    assert tracker is not None


def test_alias(tracker: Tracker, cap: Capture) -> None:
    new_internal_id, new_second_id, original_anonymous_id = "u-1", "u-2", "anon-1"
    tracker.alias(new_internal_id, original_anonymous_id)
    # Create a second alias
    tracker.alias(new_second_id, original_anonymous_id)
    assert [m["properties"]["alias"] for _, m in cap.sent] == ["u-1", "u-2"]
    assert {m["properties"]["distinct_id"] for _, m in cap.sent} == {"anon-1"}


def test_setting_profile_properties(tracker: Tracker, cap: Capture) -> None:
    # create or update a profile with First Name, Last Name, E-Mail Address,
    # Phone Number, and Favorite Color without updating geolocation data or $last_seen
    tracker.people.set("12345", {
        "$first_name": "John",
        "$last_name": "Doe",
        "$email": "john.doe@example.com",
        "$phone": "5555555555",
        "Favorite Color": "red",
    }, ip=0, optional_params={"$ignore_time": "true"})
    _, m = cap.sent[0]
    assert m["$ip"] == "0" and m["$ignore_time"] == "true" and m["$set"]["$last_name"] == "Doe"


def test_incrementing_and_appending(tracker: Tracker, cap: Capture) -> None:
    tracker.people.increment("12345", {
        "Logins used": 1,
        # use a negative number to subtract
        "Logins remaining": -1,
    })
    tracker.people.append("12345", {
        "Favorite Fruits": "Apples",
    })
    assert cap.sent[0][1]["$add"] == {"Logins used": 1, "Logins remaining": -1}
    assert cap.sent[1][1]["$append"] == {"Favorite Fruits": "Apples"}


def test_sending_group_identifiers_with_events(cap: Capture) -> None:
    tracker = Tracker(YOUR_MIXPANEL_TOKEN, cap)
    tracker.track("user_id1", "App Open", {
        "GROUP KEY": 1234,
    })
    # event will be attributed to multiple groups with IDs 1000, 1234
    tracker.track("user_id1", "App Open", {
        "GROUP KEY": [1000, 1234],
    })
    assert [m["properties"]["GROUP KEY"] for _, m in cap.sent] == [1234, [1000, 1234]]


def test_adding_group_identifiers_to_users(cap: Capture) -> None:
    # Create or update a user profile with distinct_id "user_id1", a $name property,
    # and group_key = 'Company', group_id = 'Mixpanel'
    tracker = Tracker(YOUR_MIXPANEL_TOKEN, cap)
    tracker.people.set("user_id1", {
        "$name": "Steph Curry",
        "Company": "Mixpanel",
    })
    assert cap.sent[0][1]["$set"] == {"$name": "Steph Curry", "Company": "Mixpanel"}


def test_group_profiles(cap: Capture) -> None:
    tracker = Tracker(YOUR_MIXPANEL_TOKEN, cap)
    # Sets properties on group profile with group_key "Company", group_id "Acme"
    tracker.groups.set("Company", "Acme", {
        "$name": "Acme, Inc.",
        "plan": "Premium",
        "Sign-Up Date": dt.datetime.now(dt.timezone.utc),
    })
    # set_once only changes properties that are not already present
    tracker.groups.set_once("Company", "Acme", {
        "First Login Date": dt.datetime.now(dt.timezone.utc),
    })
    # removes a single property and its value from a group profile
    tracker.groups.unset("Company", "Acme", "Overdue Since")
    # removes multiple properties and their values from a group profile
    tracker.groups.unset("Company", "Acme", ["Overdue Since", "Paid Date"])
    # set union on list valued properties
    tracker.groups.union("Company", "Acme", {
        "Levels Completed": ["Suffragette City"],
    })
    # removes "socks" from the "Items purchased" list property
    tracker.groups.remove("Company", "Acme", {"Items purchased": "socks"})
    tracker.groups.delete("Company", "Acme")
    ops = [next(k for k in m if k.startswith("$") and k not in
                ("$token", "$group_key", "$group_id", "$time")) for _, m in cap.sent]
    assert ops == ["$set", "$set_once", "$unset", "$unset", "$union", "$remove", "$delete"]
    assert len(cap.sent[0][1]["$set"]["Sign-Up Date"]) == len("YYYY-MM-DDTHH:MM:SS")


def test_lookup_tables(cap: Capture) -> None:
    tracker = Tracker(YOUR_MIXPANEL_TOKEN, cap)
    table = "d1b6d2e0-1330-4ad6-b520-d948ede3b1a7"
    # Create a lookup table row: group_key is the table id, group_id the join key
    tracker.groups.set(table, "Gangnam style", {"Genre": "Pop"})
    tracker.groups.set_once(table, "Gangnam style", {
        "First Played": dt.datetime.now(dt.timezone.utc),
    })
    tracker.groups.unset(table, "Gangnam style", "Genre")
    tracker.groups.unset(table, "Gangnam style", ["Genre", "First Played"])
    tracker.groups.union(table, "Gangnam style", {"hashtags": ["spectacular", "crazy"]})
    tracker.groups.remove(table, "Gangnam style", {"hashtags": "amazing"})
    tracker.groups.delete(table, "Gangnam style")
    assert len(cap.sent) == 7
    assert {m["$group_key"] for _, m in cap.sent} == {table}


def test_tracking_revenue(tracker: Tracker, cap: Capture) -> None:
    # Records a charge of $9.99 from user '12345'
    tracker.people.track_charge("12345", 9.99)
    # records a charge of $30.50 on the 2nd of January
    tracker.people.track_charge("12345", 30.50, {
        "$time": dt.datetime(2013, 1, 2),
    })
    charges = [m["$append"]["$transactions"] for _, m in cap.sent]
    assert charges[0]["$amount"] == 9.99
    assert charges[1] == {"$time": "2013-01-02T00:00:00", "$amount": 30.5}


def test_a_block_writing_a_log(tmp_path: Path) -> None:
    log_path = tmp_path / "MIXPANEL_LOG.txt"
    with open(log_path, "w+") as tracker_log:
        # the sink gets a type ("event", "profile_update", ...) and a JSON message
        tracker = Tracker(YOUR_TOKEN, lambda type, message: tracker_log.write(
            json.dumps([type, message]) + "\n"
        ))
        tracker.track("user-1", "Sent Message")
        tracker.people.increment("user-1", {"Messages Sent": 1})
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert [t for t, _ in lines] == ["event", "profile_update"]


def test_replaying_a_log_with_a_consumer(tmp_path: Path, live_collector: Any) -> None:
    from consumers import Consumer

    collector = live_collector
    log_path = tmp_path / "MIXPANEL_LOG.txt"
    with open(log_path, "w") as log:
        tracker = Tracker(YOUR_TOKEN, lambda t, m: log.write(json.dumps([t, m]) + "\n"))
        tracker.track("user-1", "Sent Message")
    mixpanel = Consumer(api_host=collector.url)
    with open(log_path) as log:
        for line in log:
            type, message = json.loads(line)
            # Each call communicates with Mixpanel
            mixpanel.send(type, message)
    assert [m["event"] for m in collector.messages("track")] == ["Sent Message"]


def test_a_queue_between_processes() -> None:
    mixpanel_queue: queue.Queue[str] = queue.Queue()
    # In your time-sensitive process
    tracker = Tracker(YOUR_TOKEN, lambda type, message: mixpanel_queue.put(
        json.dumps([type, message])
    ))
    # Track just like you would in any other situation
    tracker.track("user-1", "Sent Message")
    tracker.people.increment("user-1", {"Messages Sent": 1})
    # In a worker: any sink (a Consumer in production) takes the queued tuples
    worker = Capture()
    while not mixpanel_queue.empty():
        worker(*json.loads(mixpanel_queue.get()))
    assert [t for t, _ in worker.sent] == ["event", "profile_update"]
