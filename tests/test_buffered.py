"""BufferedConsumer against the local collector over real HTTP.

Batching limits, per-type buffers, flush and close, threads, 413 bisection,
strict /import partial failure, and what stays buffered after a failure:
every assertion is about what the collector received.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Optional

import pytest
from consumer_messages import (
    ENDPOINT,
    PATHS,
    TOKEN,
    _ids,
    event,
    now_ms,
    profile_update,
    quick_retry,
)

from consumers.buffered import MAX_MESSAGE_BYTES, BufferedConsumer
from consumers.collector import Collector
from consumers.endpoints import MESSAGE_TYPES
from consumers.errors import (
    PayloadTooLargeError,
    RecordsRejectedError,
    RefusedError,
    TransportError,
)
from consumers.retry import RetryPolicy


def fast(attempts: int = 3, **kwargs: Any) -> RetryPolicy:
    return quick_retry(attempts, **kwargs)


def group_update() -> str:
    return json.dumps({"$token": TOKEN, "$group_key": "company", "$group_id": "acme",
                       "$set": {"n": next(_ids)}})


BUILD = {"event": event, "profile_update": profile_update, "group_update": group_update,
         "import": event}


def buffered(collector: Any, **kwargs: Any) -> BufferedConsumer:
    kwargs.setdefault("retry", fast())
    kwargs.setdefault("project_token", TOKEN)
    return BufferedConsumer(api_host=collector.url, **kwargs)


def sent(collector: Any, path: Optional[str] = None) -> list[dict[str, Any]]:
    """The requests the collector saw (on ``path``), in order."""
    return [r for r in collector.requests() if path is None or r["path"] == path]


def insert_ids(messages: list[Any]) -> list[str]:
    """``$insert_id`` of each message (dicts as stored, or JSON text as sent)."""
    decoded = [json.loads(m) if isinstance(m, str) else m for m in messages]
    return [m["properties"]["$insert_id"] for m in decoded]


# -- when a batch is posted --------------------------------------------------------------


def test_a_type_is_flushed_at_the_default_50_messages(collector: Any) -> None:
    consumer = buffered(collector)
    messages = [event() for _ in range(120)]
    for message in messages[:49]:
        consumer.send("event", message)
    assert collector.requests() == []
    assert consumer.pending() == 49
    consumer.send("event", messages[49])
    assert [r["n_records"] for r in collector.requests()] == [50]
    assert consumer.pending() == 0
    for message in messages[50:]:
        consumer.send("event", message)
    assert [r["n_records"] for r in collector.requests()] == [50, 50]
    assert consumer.pending() == 20
    consumer.close()
    assert [r["n_records"] for r in collector.requests()] == [50, 50, 20]
    assert collector.messages("track") == [json.loads(m) for m in messages]


def test_a_type_is_flushed_at_its_byte_limit(collector: Any) -> None:
    messages = [event(pad="x" * 40) for _ in range(7)]
    size = len(messages[0])
    assert all(len(m) == size for m in messages)
    limit = 3 * (size + 1) + 1  # "[" + three messages and their commas + "]"
    consumer = buffered(collector, max_bytes={"event": limit})
    for message in messages[:2]:
        consumer.send("event", message)
    assert collector.requests() == []
    consumer.send("event", messages[2])
    (request,) = collector.requests()
    assert request["n_records"] == 3
    assert request["bytes"] == limit
    for message in messages[3:]:
        consumer.send("event", message)
    consumer.flush()
    assert [r["n_records"] for r in collector.requests()] == [3, 3, 1]
    assert collector.messages("track") == [json.loads(m) for m in messages]


def test_no_request_exceeds_the_byte_limit(collector: Any) -> None:
    messages = [event(pad="y" * (i * 37 % 400)) for i in range(80)]
    consumer = buffered(collector, max_batch=50, max_bytes=2000)
    for message in messages:
        consumer.send("event", message)
    consumer.flush()
    requests = collector.requests()
    assert len(requests) > 10
    assert all(r["bytes"] <= 2000 for r in requests)
    assert all(r["status"] == 200 for r in requests)
    assert collector.messages("track") == [json.loads(m) for m in messages]


def test_each_type_has_its_own_buffer(collector: Any) -> None:
    consumer = buffered(collector, max_batch=3)
    built = {t: [BUILD[t]() for _ in range(3)] for t in MESSAGE_TYPES}
    for message_type in MESSAGE_TYPES:
        for message in built[message_type][:2]:
            consumer.send(message_type, message)
    assert collector.requests() == []
    assert consumer.pending() == 8
    consumer.send("profile_update", built["profile_update"][2])
    assert [(r["path"], r["n_records"]) for r in collector.requests()] == [("/engage", 3)]
    assert consumer.pending() == 6
    consumer.flush()
    assert [(r["path"], r["n_records"]) for r in collector.requests()] == [
        ("/engage", 3), ("/track", 2), ("/groups", 2), ("/import", 2)]
    assert consumer.pending() == 0
    for message_type in MESSAGE_TYPES:
        stored = collector.messages(ENDPOINT[message_type])
        expected = built[message_type] if message_type == "profile_update" else \
            built[message_type][:2]
        assert stored == [json.loads(m) for m in expected]


def test_limits_can_differ_per_type(collector: Any) -> None:
    consumer = buffered(collector, max_batch={"event": 2})
    for _ in range(3):
        consumer.send("group_update", group_update())
    consumer.send("event", event())
    assert collector.requests() == []
    consumer.send("event", event())
    assert [(r["path"], r["n_records"]) for r in collector.requests()] == [("/track", 2)]
    assert consumer.pending() == 3


def test_flush_sends_everything_once(collector: Any) -> None:
    consumer = buffered(collector)
    consumer.flush()
    assert collector.requests() == []
    for message_type in MESSAGE_TYPES:
        consumer.send(message_type, BUILD[message_type]())
    consumer.flush()
    consumer.flush()
    assert sorted(r["path"] for r in collector.requests()) == sorted(PATHS.values())
    assert consumer.pending() == 0
    assert collector.stats()["accepted"] == 4


def test_the_context_manager_flushes_on_exit(collector: Any) -> None:
    messages = [event() for _ in range(5)]
    with buffered(collector) as consumer:
        for message in messages:
            consumer.send("event", message)
        consumer.send("import", event())
        assert collector.requests() == []
    assert {r["path"] for r in collector.requests()} == {"/track", "/import"}
    assert collector.messages("track") == [json.loads(m) for m in messages]
    assert len(collector.messages("import")) == 1


def test_the_context_manager_flushes_when_the_block_raises(collector: Any) -> None:
    message = event()
    with pytest.raises(KeyError):
        with buffered(collector) as consumer:
            consumer.send("event", message)
            raise KeyError("boom")
    assert collector.messages("track") == [json.loads(message)]


def test_calling_the_consumer_is_send(collector: Any) -> None:
    with buffered(collector) as consumer:
        consumer("event", event())
        assert consumer.pending() == 1
    assert len(collector.messages("track")) == 1


def test_batching_does_not_reserialise(collector: Any) -> None:
    """The bytes given are the bytes posted: key order, spacing and escapes kept."""
    odd = [
        f'{{"properties":{{ "$insert_id" : "odd-{i}","time":{now_ms()},'
        f'"distinct_id":"u1", "token":"{TOKEN}", "note":"caf\u00e9 \\u00e9"}} ,"event" :"Odd"}}'
        for i in range(4)
    ]
    with buffered(collector, import_gzip=False) as consumer:
        for message in odd:
            consumer.send("event", message)
            consumer.send("import", message)
    body = ("[" + ",".join(odd) + "]").encode("utf-8")
    requests = collector.requests()
    assert [(r["path"], r["bytes"]) for r in requests] == [("/track", len(body)),
                                                           ("/import", len(body))]
    for endpoint in ("track", "import"):
        stored = collector.messages(endpoint)
        assert [list(m) for m in stored] == [["properties", "event"]] * 4
        assert list(stored[0]["properties"]) == ["$insert_id", "time", "distinct_id", "token",
                                                 "note"]
        assert stored[0]["properties"]["note"] == "café é"


# -- threads ---------------------------------------------------------------------------


def test_many_threads_deliver_every_message_exactly_once(collector: Any) -> None:
    consumer = buffered(collector, max_batch=7)
    per_thread = 150
    threads_n = 8
    produced: list[list[str]] = [[] for _ in range(threads_n)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def produce(k: int) -> None:
        try:
            for i in range(per_thread):
                message = event(thread=k, i=i)
                produced[k].append(message)
                consumer.send("event", message)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def flush_now_and_then() -> None:
        while not stop.is_set():
            consumer.flush()
            time.sleep(0.002)

    flusher = threading.Thread(target=flush_now_and_then)
    workers = [threading.Thread(target=produce, args=(k,)) for k in range(threads_n)]
    flusher.start()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    stop.set()
    flusher.join()
    consumer.close()
    assert errors == []
    assert consumer.pending() == 0
    stored = collector.messages("track")
    expected = [m for batch in produced for m in batch]
    assert len(stored) == len(expected) == per_thread * threads_n
    assert sorted(insert_ids(stored)) == sorted(insert_ids(expected))
    assert all(0 < r["n_records"] <= 7 for r in collector.requests())
    assert collector.stats()["endpoints"]["track"]["duplicates"] == 0


# -- 413: split in halves ------------------------------------------------------------------


def test_a_413_batch_is_bisected_and_the_halves_delivered(collector: Any) -> None:
    messages = [event() for _ in range(8)]
    consumer = buffered(collector)
    for message in messages:
        consumer.send("event", message)
    collector.fail_next(2, 413, path="/track")
    consumer.flush()
    requests = collector.requests()
    assert [r["status"] for r in requests] == [413, 413, 200, 200, 200]
    assert [r["n_records"] for r in requests[2:]] == [2, 2, 4]
    assert collector.messages("track") == [json.loads(m) for m in messages]
    assert consumer.pending() == 0


def test_a_single_message_still_too_large_is_reported_not_retried(collector: Any) -> None:
    messages = [event() for _ in range(4)]
    consumer = buffered(collector, retry=fast(5))
    for message in messages:
        consumer.send("event", message)
    # [0..3] 413 -> [0,1] ok -> [2,3] 413 -> [2] ok -> [3] 413: only message 3 is too large
    collector.fail_next(1, 413, path="/track")
    collector.delay_next(1, 0.0, path="/track")
    collector.fail_next(1, 413, path="/track")
    collector.delay_next(1, 0.0, path="/track")
    collector.fail_next(1, 413, path="/track")
    with pytest.raises(PayloadTooLargeError) as caught:
        consumer.flush()
    assert caught.value.messages == [("event", messages[3])]
    assert caught.value.pending == 0
    assert [r["status"] for r in collector.requests()] == [413, 200, 413, 200, 413]
    assert collector.messages("track") == [json.loads(m) for m in messages[:3]]
    consumer.flush()  # nothing left: the refused message is not tried again
    assert len(collector.requests()) == 5
    assert consumer.pending() == 0


def test_an_import_over_10_mib_in_bytes_is_split_by_the_services_413(collector: Any) -> None:
    """Characters are counted locally; the service counts UTF-8 bytes and answers 413."""
    wide = "\u20ac" * 170_000  # 170k characters, 510 kB of UTF-8
    messages = [json.dumps(json.loads(event(blob=wide)), ensure_ascii=False) for _ in range(21)]
    assert sum(len(m) for m in messages) < 10_000_000
    assert sum(len(m.encode()) for m in messages) > 10 * 1024 * 1024
    consumer = buffered(collector, max_batch=25)
    for message in messages:
        consumer.send("import", message)
    consumer.flush()
    requests = collector.requests()
    assert [r["status"] for r in requests] == [413, 200, 200]
    assert [r["n_records"] for r in requests[1:]] == [10, 11]
    assert insert_ids(collector.messages("import")) == insert_ids(messages)


def test_a_message_over_the_size_limit_is_refused_before_sending(collector: Any) -> None:
    consumer = buffered(collector)
    consumer.send("event", event())
    huge = event(blob="z" * (MAX_MESSAGE_BYTES + 10))
    with pytest.raises(PayloadTooLargeError) as caught:
        consumer.send("event", huge)
    assert caught.value.messages == [("event", huge)]
    assert caught.value.pending == 1
    assert consumer.pending() == 1
    consumer.flush()
    assert [r["n_records"] for r in collector.requests()] == [1]


# -- strict /import partial failure -----------------------------------------------------------


def test_strict_import_reports_the_refused_and_keeps_the_accepted(collector: Any) -> None:
    good = [event() for _ in range(4)]
    future = event(time=now_ms() + 2 * 3_600_000)
    no_id = json.dumps({"event": "E", "properties": {"time": now_ms(), "$insert_id": "a-1"}})
    batch = [good[0], future, good[1], good[2], no_id, good[3]]
    consumer = buffered(collector, retry=fast(5))
    for message in batch:
        consumer.send("import", message)
    with pytest.raises(RecordsRejectedError) as caught:
        consumer.flush()
    error = caught.value
    assert error.num_imported == 4
    assert error.pending == 0
    assert [(r.index, r.record) for r in error.failed_records] == [
        (1, ("import", future)), (4, ("import", no_id))]
    assert error.failed_records[0].field == "properties.time"
    assert "future" in error.failed_records[0].message
    assert error.failed_records[1].field == "properties.distinct_id"
    assert error.failed_records[1].insert_id == "a-1"
    assert error.messages == [("import", future), ("import", no_id)]
    assert [r["status"] for r in collector.requests()] == [400]
    assert collector.messages("import") == [json.loads(m) for m in good]
    consumer.flush()  # neither the accepted nor the refused are sent again
    assert len(collector.requests()) == 1
    assert consumer.pending() == 0


def test_strict_import_refusals_from_one_send_are_reported_there(collector: Any) -> None:
    consumer = buffered(collector, max_batch=3)
    bad = event(time=now_ms() + 5 * 3_600_000)
    consumer.send("import", event())
    consumer.send("import", event())
    with pytest.raises(RecordsRejectedError) as caught:
        consumer.send("import", bad)  # the buffer is due: flushed from send()
    assert [(r.index, r.record) for r in caught.value.failed_records] == [(2, ("import", bad))]
    assert caught.value.num_imported == 2
    assert consumer.pending() == 0
    assert len(collector.messages("import")) == 2


def test_strict_import_refusals_across_batches_are_combined(collector: Any) -> None:
    consumer = buffered(collector, max_batch=3, retry=RetryPolicy.never())
    future = now_ms() + 5 * 3_600_000
    batch = [event(), event(time=future), event(), event(time=future)]
    collector.drop_next(2, path="/import")  # the two automatic flushes fail
    for message in batch[:2]:
        consumer.send("import", message)
    for message in batch[2:]:
        with pytest.raises(TransportError):
            consumer.send("import", message)
    assert consumer.pending() == 4
    with pytest.raises(RecordsRejectedError) as caught:
        consumer.flush()  # two batches, [0, 1, 2] and [3], one refusal in each
    error = caught.value
    assert [r.record for r in error.failed_records] == [("import", batch[1]),
                                                        ("import", batch[3])]
    assert error.num_imported == 2
    assert [r["status"] for r in collector.requests()] == [None, None, 400, 400]
    assert insert_ids(collector.messages("import")) == insert_ids([batch[0], batch[2]])
    assert consumer.pending() == 0


# -- failure, put-back, recovery ----------------------------------------------------------------


def test_a_failure_keeps_exactly_the_unsent_messages(collector: Any) -> None:
    messages = [event() for _ in range(10)]
    consumer = buffered(collector, max_batch=4, retry=RetryPolicy.never())
    collector.fail_next(7, 503, path="/track")
    for i, message in enumerate(messages):
        if i < 3:
            consumer.send("event", message)
            continue
        with pytest.raises(RefusedError) as caught:
            consumer.send("event", message)  # the buffer is due; its first batch fails
        assert caught.value.status == 503
        assert caught.value.pending == i + 1
        assert caught.value.messages == [("event", m) for m in messages[:4]]
    assert consumer.pending() == 10
    assert collector.messages("track") == []
    # now: first batch accepted, second refused -> messages 4..9 stay, in order
    collector.delay_next(1, 0.0, path="/track")
    collector.fail_next(1, 503, path="/track")
    with pytest.raises(RefusedError) as caught:
        consumer.flush()
    assert caught.value.pending == 6
    assert consumer.pending() == 6
    assert collector.messages("track") == [json.loads(m) for m in messages[:4]]
    consumer.flush()
    assert consumer.pending() == 0
    assert collector.messages("track") == [json.loads(m) for m in messages]  # each once
    assert collector.stats()["endpoints"]["track"]["duplicates"] == 0


def test_a_failure_while_bisecting_keeps_exactly_the_unsent_half(collector: Any) -> None:
    messages = [event() for _ in range(4)]
    consumer = buffered(collector, retry=fast(2))
    for message in messages:
        consumer.send("event", message)
    collector.fail_next(1, 413, path="/track")  # [0..3] too large
    collector.delay_next(1, 0.0, path="/track")  # [0, 1] accepted
    collector.fail_next(2, 503, path="/track")  # [2, 3] fails twice: budget spent
    with pytest.raises(RefusedError) as caught:
        consumer.flush()
    assert caught.value.status == 503
    assert caught.value.pending == 2
    assert consumer.take_pending() == [("event", m) for m in messages[2:]]
    assert collector.messages("track") == [json.loads(m) for m in messages[:2]]


def test_a_batch_track_finds_wholly_invalid_is_reported_and_dropped(collector: Any) -> None:
    invalid = [json.dumps({"event": "No token", "properties": {"i": i}}) for i in range(3)]
    consumer = buffered(collector, retry=fast(5))
    for message in invalid:
        consumer.send("event", message)
    consumer.send("profile_update", profile_update())
    with pytest.raises(RefusedError) as caught:
        consumer.flush()
    assert caught.value.status == 200
    assert caught.value.messages == [("event", m) for m in invalid]
    assert caught.value.pending == 0
    assert [(r["path"], r["status"]) for r in collector.requests()] == [
        ("/track", 200), ("/engage", 200)]  # not retried; the other type still sent
    assert len(collector.messages("engage")) == 1
    consumer.flush()
    assert len(collector.requests()) == 2


@pytest.mark.parametrize("fault", ["401", "403", "429", "drop"])
def test_a_final_or_exhausted_failure_keeps_the_batch_buffered(collector: Any, fault: str) -> None:
    messages = [event() for _ in range(3)]
    consumer = buffered(collector, retry=fast(2))
    for message in messages:
        consumer.send("import", message)
    if fault == "drop":
        collector.drop_next(2, path="/import")
    else:
        collector.fail_next(2, int(fault), path="/import")
    with pytest.raises((RefusedError, TransportError)) as caught:
        consumer.flush()
    made = len(collector.requests())
    assert made == (1 if fault in ("401", "403") else 2)  # 401/403 are never retried
    assert caught.value.pending == consumer.pending() == 3
    assert collector.messages("import") == []
    if fault in ("401", "403"):
        collector.reset()
    consumer.flush()
    assert consumer.pending() == 0
    assert collector.messages("import") == [json.loads(m) for m in messages]


def test_take_pending_hands_over_the_unsent_in_order(collector: Any) -> None:
    events = [event() for _ in range(3)]
    updates = [profile_update() for _ in range(2)]
    consumer = buffered(collector, retry=fast(2))
    for message in events:
        consumer.send("event", message)
    for message in updates:
        consumer.send("profile_update", message)
    collector.drop_next(2, path="/track")
    with pytest.raises(TransportError) as caught:
        consumer.flush()
    assert caught.value.pending == 3  # the profile updates went through
    assert len(collector.messages("engage")) == 2
    assert consumer.take_pending() == [("event", m) for m in events]
    assert consumer.pending() == 0
    consumer.flush()
    assert len(sent(collector, "/track")) == 2  # both dropped; nothing sent after take


def test_after_failure_and_recovery_every_message_arrives_exactly_once(collector: Any) -> None:
    consumer = buffered(collector, max_batch=5, retry=fast(2), timeout=(2.0, 0.3))
    built = {t: [BUILD[t]() for _ in range(12)] for t in ("event", "import")}
    # /track: a slow answer (processed, then timed out and retried) and an outage
    collector.delay_next(1, 1.0, path="/track")
    collector.fail_next(2, 503, path="/track")
    # /import: dropped connections past the retry budget
    collector.drop_next(2, path="/import")
    failures = 0
    for i in range(12):
        for message_type in ("event", "import"):
            try:
                consumer.send(message_type, built[message_type][i])
            except (TransportError, RefusedError) as exc:
                failures += 1
                assert exc.pending == consumer.pending() > 0
    try:
        consumer.flush()
    except (TransportError, RefusedError):
        failures += 1
    assert failures == 2  # the first full batch of each type
    consumer.flush()  # recovered
    assert consumer.pending() == 0
    # the slow request had been stored before it timed out: its retry is a duplicate
    assert len(collector.messages("track")) == 12 + 5
    for message_type in ("event", "import"):
        unique = collector.unique(ENDPOINT[message_type])
        assert sorted(insert_ids(unique)) == sorted(insert_ids(built[message_type]))
    assert collector.faults() == []


def test_an_outage_then_recovery_loses_nothing() -> None:
    """Collector down, messages buffered; collector back on the same port, all delivered."""
    with Collector() as first:
        port = first.port
    consumer = BufferedConsumer(api_host=f"http://127.0.0.1:{port}", max_batch=3,
                                retry=fast(2))
    messages = [event() for _ in range(7)]
    failures = 0
    for message in messages:
        try:
            consumer.send("event", message)
        except TransportError as exc:
            failures += 1
            assert exc.pending == consumer.pending()
    assert failures == 5  # every send from the third on found the buffer due
    assert consumer.pending() == 7
    with Collector(port=port) as back:
        consumer.close()
        assert back.messages("track") == [json.loads(m) for m in messages]


def test_send_many_posts_bulk_batches_and_refuses_bad_input_whole(collector: Any) -> None:
    consumer = BufferedConsumer(api_host=collector.url)
    assert consumer.max_batch["event"] == 50 and consumer.bulk_batch["event"] == 1000
    good = [("event", json.dumps({"event": "E", "properties": {
        "token": "t", "distinct_id": "u", "time": 1_700_000_000_000, "$insert_id": f"i{i}"}}))
        for i in range(2500)]
    with pytest.raises(TypeError, match="message 1: message_json must be a str"):
        consumer.send_many([good[0], ("event", 5)])  # type: ignore[list-item]
    assert consumer.pending() == 0  # nothing of a refused hand-over is buffered
    consumer.send_many(good)
    assert consumer.pending() == 500  # two full batches posted, the rest waits
    consumer.close()
    assert len(collector.requests()) == 3
    assert len(collector.unique("track")) == 2500
    explicit = BufferedConsumer(api_host=collector.url, max_batch=200)
    assert explicit.bulk_batch["event"] == 200
    explicit.close()
