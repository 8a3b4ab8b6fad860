"""Every message type the tracker builds validates against Mixpanel's official OpenAPI spec."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tracker.tracker import Tracker

ROOT = Path(__file__).resolve().parent.parent

# One schema per (type, operation): the spec's own operation for that message.
PROFILE_PATHS = {
    "$set": "/engage#profile-set",
    "$set_once": "/engage#profile-set-once",
    "$add": "/engage#profile-numerical-add",
    "$union": "/engage#profile-union",
    "$append": "/engage#profile-list-append",
    "$remove": "/engage#profile-list-remove",
    "$unset": "/engage#profile-unset",
    "$delete": "/engage#profile-delete",
}
GROUP_PATHS = {
    "$set": "/groups#group-set",
    "$set_once": "/groups#group-set-once",
    "$unset": "/groups#group-unset",
    "$remove": "/groups#group-remove-from-list",
    "$union": "/groups#group-union",
    "$delete": "/groups#group-delete",
}
OPERATIONS = set(PROFILE_PATHS)


def spec_path() -> Path | None:
    """The OpenAPI file: the collector's copy in tests/data, else the shared one."""
    candidates = [
        ROOT / "tests" / "data" / "mixpanel-ingestion.openapi.yaml",
        ROOT.parent / "shared" / "specs" / "mixpanel" / "ingestion.openapi.yaml",
        ROOT.parent.parent / "shared" / "specs" / "mixpanel" / "ingestion.openapi.yaml",
    ]
    return next((p for p in candidates if p.is_file()), None)


class SpecValidator:
    """Validates one ``(type, message_json)`` against the spec's item schema for it."""

    def __init__(self, path: Path) -> None:
        import jsonschema
        import yaml

        self._jsonschema = jsonschema
        self._paths = yaml.safe_load(path.read_text())["paths"]

    def schema_for(self, message_type: str, message: dict[str, Any]) -> dict[str, Any]:
        if message_type == "event":
            path = "/track"
        elif message_type == "import":
            path = "/import"
        else:
            ops = [k for k in message if k in OPERATIONS]
            assert len(ops) == 1, f"exactly one operation per update, got {ops}"
            table = PROFILE_PATHS if message_type == "profile_update" else GROUP_PATHS
            path = table[ops[0]]
        body = self._paths[path]["post"]["requestBody"]["content"]["application/json"]
        schema = dict(body["schema"]["items"])
        if path in ("/groups#group-union", "/groups#group-delete"):
            # The spec's known slip: these list $unset/$set as required; the op key is meant.
            op = "$union" if path.endswith("union") else "$delete"
            schema["required"] = [r for r in schema["required"] if r not in ("$set", "$unset")]
            schema["required"].append(op)
        return schema

    def validate(self, message_type: str, message_json: str) -> None:
        message = json.loads(message_json)
        schema = self.schema_for(message_type, message)
        self._jsonschema.validate(message, schema)
        # the same item, as the one-element batch the endpoint takes
        self._jsonschema.validate([message], {"type": "array", "minItems": 1, "items": schema})


@pytest.fixture(scope="module")
def spec() -> SpecValidator:
    path = spec_path()
    if path is None:
        pytest.skip("the Mixpanel OpenAPI spec file is not available")
    return SpecValidator(path)


def every_call(tracker: Tracker) -> None:
    """One call of every kind the tracker has, with varied property types."""
    when = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone.utc)
    tracker.track("u1", "Plan Upgraded", {"Old Plan": "Business", "New Plan": "Premium"})
    tracker.track("u1", "App Open", {"GROUP KEY": [1000, 1234], "at": when, "n": Decimal("2.5")})
    tracker.track(42, "Sent Message", ip="203.0.113.9")
    tracker.import_event("u1", "Old Event", when, {"source": "backfill"})
    tracker.alias("new-id", "anon-id")
    tracker.identify("u1", "3f1b4a3e-1f2d-4c5b-9a8e-7d6c5b4a3f2e")
    tracker.merge("u1", "u2")
    people = tracker.people
    people.set("12345", {"$first_name": "John", "Favorite Color": "red"}, 0,
               {"$ignore_time": "true"})
    people.set_once("12345", {"First Login": when})
    people.increment("12345", {"Logins used": 1, "Logins remaining": -1})
    people.plus_one("12345", "Logins used")
    people.append("12345", {"Favorite Fruits": "Apples"})
    people.union("12345", {"Tags": ["a", "b"]})
    people.remove("12345", {"Tags": "a"})
    people.unset("12345", ["Tags", "Favorite Color"])
    people.track_charge("12345", 9.99)
    people.track_charge("12345", 30.50, {"$time": dt.datetime(2013, 1, 2)})
    people.clear_charges("12345")
    people.delete_user("12345", ignore_alias=True)
    people.update({"$distinct_id": "12345", "$set": {"raw": True}})
    groups = tracker.groups
    groups.set("Company", "Acme", {"$name": "Acme, Inc.", "Sign-Up Date": when})
    groups.set_once("Company", "Acme", {"First Login Date": when})
    groups.unset("Company", "Acme", "Overdue Since")
    groups.union("Company", "Acme", {"Levels Completed": ["Suffragette City"]})
    groups.remove("Company", "Acme", {"Items purchased": "socks"})
    groups.delete("Company", "Acme")
    groups.update({"$group_key": "Company", "$group_id": 7, "$set": {"raw": 1}})


def test_every_message_validates_against_the_official_spec(spec: SpecValidator) -> None:
    sent: list[tuple[str, str]] = []
    every_call(Tracker("TOKEN", lambda t, m: sent.append((t, m))))
    assert {t for t, _ in sent} == {"event", "import", "profile_update", "group_update"}
    assert len(sent) == 27
    for message_type, message_json in sent:
        spec.validate(message_type, message_json)


def test_spec_check_catches_a_broken_message(spec: SpecValidator) -> None:
    import jsonschema

    with pytest.raises(jsonschema.ValidationError):
        spec.validate("import", '{"event":"x","properties":{"time":1}}')
    with pytest.raises(jsonschema.ValidationError):
        spec.validate("profile_update", '{"$token":"T","$distinct_id":"u","$union":{"a":[]}}')
