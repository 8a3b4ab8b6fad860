"""Sampling by ``distinct_id``: all or none of a user's events, the same users in every process."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tracker.errors import InvalidInputError, InvalidTypeError
from tracker.posthog import Client
from tracker.sampling import Sample, sample_fraction
from tracker.tracker import Tracker

ROOT = Path(__file__).resolve().parents[1]
USERS = [f"user-{i}" for i in range(400)]

KEPT_IN_A_CHILD = """
import json, sys
from tracker.sampling import Sample
from tracker.tracker import Tracker
kept = []
tracker = Tracker("TOKEN", lambda t, m: kept.append(json.loads(m)["properties"]["distinct_id"]),
                  processors=[Sample(0.3, salt=sys.argv[1])])
for i in range(400):
    tracker.track(f"user-{i}", "E")
print(json.dumps(sorted(set(kept))))
"""


def kept_here(rate: float, salt: str = "") -> list[str]:
    kept: list[str] = []
    tracker = Tracker("TOKEN", lambda t, m: kept.append(json.loads(m)["properties"]["distinct_id"]),
                      processors=[Sample(rate, salt=salt)])
    for user in USERS:
        tracker.track(user, "E")
    return sorted(set(kept))


def kept_in_a_child(salt: str, hash_seed: str) -> list[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONHASHSEED=hash_seed)
    out = subprocess.run([sys.executable, "-c", KEPT_IN_A_CHILD, salt], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=True)
    result: list[str] = json.loads(out.stdout)
    return result


def test_the_same_users_are_kept_in_other_processes_whatever_their_hash_seed() -> None:
    here = kept_here(0.3, salt="exp-1")
    assert 80 <= len(here) <= 160  # about 30% of 400
    assert kept_in_a_child("exp-1", "1") == here
    assert kept_in_a_child("exp-1", "12345") == here
    assert kept_in_a_child("exp-2", "1") != here  # another salt, another set of users


def test_the_fraction_is_the_documented_blake2b_reading() -> None:
    digest = hashlib.blake2b(b"exp-1\0user-7", digest_size=8).digest()
    assert sample_fraction("user-7", "exp-1") == int.from_bytes(digest, "big") / 2**64
    assert Sample(0.3, salt="exp-1").keeps("user-7") == (sample_fraction("user-7", "exp-1") < 0.3)


def test_a_users_events_are_all_kept_or_all_dropped(collector: Any) -> None:
    with Tracker("TOKEN", api_host=collector.url, processors=[Sample(0.5)]) as tracker:
        for round_ in range(3):
            for user in USERS[:60]:
                assert tracker.track(user, "E", {"round": round_}) is True
        dropped = tracker.stats()["dropped"]
    by_user: dict[str, int] = {}
    for m in collector.messages("track"):
        by_user[m["properties"]["distinct_id"]] = by_user.get(m["properties"]["distinct_id"], 0) + 1
    assert set(by_user.values()) == {3}
    assert sorted(by_user) == sorted(u for u in USERS[:60] if Sample(0.5).keeps(u))
    assert dropped == 3 * (60 - len(by_user))


def test_raising_the_rate_only_adds_users() -> None:
    assert set(kept_here(0.2)) <= set(kept_here(0.6))
    assert kept_here(0.0) == [] and kept_here(1.0) == sorted(USERS)


def test_identity_events_and_profile_updates_always_pass(collector: Any) -> None:
    with Tracker("TOKEN", api_host=collector.url, processors=[Sample(0.0)]) as tracker:
        tracker.track("u1", "E")
        tracker.alias("new-u1", "u1")
        tracker.identify("u1", "anon-1")
        tracker.people.set("u1", {"a": 1})
    assert [m["event"] for m in collector.messages("track")] == ["$create_alias", "$identify"]
    assert len(collector.messages("engage")) == 1


def test_posthog_events_are_sampled_by_their_distinct_id(collector: Any) -> None:
    client = Client("phc_key", collector.url, processors=[Sample(0.5)])
    for user in USERS[:40]:
        client.capture(user, "E")
        client.identify(user, {"a": 1})
    client.shutdown()
    events = [m["distinct_id"] for m in collector.messages("posthog") if m["event"] == "E"]
    assert events == [u for u in USERS[:40] if Sample(0.5).keeps(u)]
    assert sum(m["event"] == "$identify" for m in collector.messages("posthog")) == 40
    assert client.stats()["dropped"] == 40 - len(events)


def test_bad_rates_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="from 0 to 1"):
        Sample(1.5)
    with pytest.raises(InvalidTypeError, match="number"):
        Sample("0.5")  # type: ignore[arg-type]
