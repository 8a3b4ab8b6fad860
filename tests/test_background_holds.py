"""A background consumer under a hold on one endpoint: the others keep flowing, nothing is lost."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from consumers.background import BackgroundConsumer
from consumers.buffered import BufferedConsumer
from consumers.collector import Collector
from tests.consumer_messages import TOKEN, event
from tests.waiting import wait_for

#: How long the service asks /import to be left alone.
HOLD = 5


class Arrivals:
    """(monotonic time, path, status, records) of every request the collector answered."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, str, Any, Any]] = []

    def __call__(self, entry: dict[str, Any]) -> None:
        self.seen.append((time.monotonic(), entry["path"], entry["status"],
                          entry.get("n_records")))

    def on(self, path: str) -> list[tuple[float, Any]]:
        return [(t, status) for t, p, status, _ in list(self.seen) if p.startswith(path)]


@pytest.fixture
def timed() -> Iterator[tuple[Collector, Arrivals]]:
    arrivals = Arrivals()
    with Collector(on_request=arrivals) as c:
        yield c, arrivals


def profile(n: int) -> str:
    return json.dumps({"$token": TOKEN, "$distinct_id": f"user-{n}", "$set": {"n": n}})


def insert_ids(messages: list[Any]) -> list[str]:
    return [m["properties"]["$insert_id"] for m in messages]


def background(collector: Collector, spool: Any, **kwargs: Any) -> BackgroundConsumer:
    return BackgroundConsumer(BufferedConsumer(api_host=collector.url, api_secret="s3cret"),
                              spool=spool, flush_interval=0.05, **kwargs)


def test_a_hold_on_import_does_not_stall_track_and_engage(timed, tmp_path):
    collector, arrivals = timed
    collector.fail_next(1, 429, retry_after=HOLD, path="/import")
    consumer = background(collector, tmp_path / "spool")
    imports = [event("Imported", n=n) for n in range(3)]
    consumer.send("import", imports[0])
    assert wait_for(lambda: arrivals.on("/import"), 5)
    [(refused_at, status)] = arrivals.on("/import")
    assert status == 429
    ends = refused_at + HOLD

    # sent during the hold: /track and /engage arrive inside it, /import waits
    tracked = [event("Viewed", n=n) for n in range(20)]
    for n, message in enumerate(tracked):
        consumer.send("event", message)
        consumer.send("profile_update", profile(n))
        if n in (5, 15):
            consumer.send("import", imports[1 if n == 5 else 2])
        time.sleep(0.01)
    assert wait_for(lambda: len(collector.messages("track")) == 20
                    and len(collector.messages("engage")) == 20, HOLD - 1)
    track = arrivals.on("/track")
    engage = arrivals.on("/engage")
    assert track and all(t < ends and s == 200 for t, s in track)
    assert engage and all(t < ends and s == 200 for t, s in engage)
    assert consumer.stats()["held_back"] == 3  # the /import messages wait in memory

    assert consumer.flush(timeout=HOLD + 10)
    after = arrivals.on("/import")
    assert [s for _, s in after] == [429, 200]  # no request inside the window, then one
    assert after[1][0] >= refused_at + HOLD - 0.05
    assert sorted(insert_ids(collector.messages("import"))) == sorted(
        insert_ids([json.loads(m) for m in imports]))
    consumer.close()
    stats = consumer.stats()
    assert stats["delivered"] == 43 and stats["failed"] == 0 and stats["dropped"] == 0
    assert stats["held_back"] == 0 and stats["rate_limited"] == 1


def test_close_during_a_hold_spools_the_held_messages_and_delivers_the_rest(timed, tmp_path):
    collector, arrivals = timed
    collector.fail_next(1, 429, retry_after=30, path="/import")
    spool = tmp_path / "spool"
    consumer = background(collector, spool)
    held = event("Imported")
    consumer.send("import", held)
    assert wait_for(lambda: arrivals.on("/import"), 5)
    consumer.send("event", event("Viewed"))
    consumer.close(timeout=3)  # the hold outlasts the deadline: to the spool at once
    assert len(collector.messages("track")) == 1
    assert [s for _, s in arrivals.on("/import")] == [429]
    stats = consumer.stats()
    assert stats["spilled"] == 1 and stats["failed"] == 0 and stats["held_back"] == 0

    # the next run on the same spool (the service no longer holds /import) delivers it once
    later = background(collector, spool)
    assert later.flush(timeout=10)
    later.close()
    assert insert_ids(collector.messages("import")) == insert_ids([json.loads(held)])


def test_past_its_bound_what_waits_for_a_hold_goes_to_the_spool(timed, tmp_path):
    collector, arrivals = timed
    collector.fail_next(1, 429, retry_after=HOLD, path="/import")
    # a quarter of the queue's bytes may wait aside in memory; the rest spills
    consumer = background(collector, tmp_path / "spool", max_queue_bytes=64 * 1024)
    consumer.send("import", event("Imported", n=-1))
    assert wait_for(lambda: arrivals.on("/import"), 5)
    imports = [event("Imported", n=n, pad="x" * 200) for n in range(200)]
    for message in imports:
        consumer.send("import", message)
    consumer.send("event", event("Viewed"))
    assert wait_for(lambda: len(collector.messages("track")) == 1, HOLD - 1)
    stats = consumer.stats()
    assert stats["spilled"] > 0 and stats["held_back"] < 200
    assert stats["dropped"] == 0
    assert consumer.flush(timeout=HOLD + 15)
    consumer.close()
    got = insert_ids(collector.messages("import"))
    assert len(got) == len(set(got)) == 201
    assert arrivals.on("/import")[0][1] == 429


def test_under_a_real_limit_on_import_track_keeps_flowing_and_nothing_is_lost(timed, tmp_path):
    collector, arrivals = timed
    collector.rate_limit(1, retry_after=3, path="/import")  # then 429 with Retry-After: 3
    consumer = background(collector, tmp_path / "spool")
    tracked, imported = [], []
    for n in range(40):
        tracked.append(event("Viewed", n=n))
        imported.append(event("Imported", n=n))
        consumer.send("event", tracked[-1])
        consumer.send("import", imported[-1])
        time.sleep(0.05)
    assert consumer.flush(timeout=30)
    consumer.close()
    refusals = [t for t, s in arrivals.on("/import") if s == 429]
    assert refusals
    # inside the first hold /track requests kept arriving, and /import none
    first = refusals[0]
    assert any(first < t < first + 2.9 for t, _ in arrivals.on("/track"))
    assert not any(first < t < first + 2.9 for t, _ in arrivals.on("/import"))
    assert all(s == 200 for _, s in arrivals.on("/track"))
    for endpoint, sent in (("track", tracked), ("import", imported)):
        got = insert_ids(collector.messages(endpoint))
        assert sorted(got) == sorted(insert_ids([json.loads(m) for m in sent])), endpoint
    stats = consumer.stats()
    assert stats["delivered"] == 80 and stats["failed"] == 0 and stats["held_back"] == 0
