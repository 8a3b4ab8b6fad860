"""The sans-IO delivery rules: batching, the flush plan and answers, without any network."""

from __future__ import annotations

import json

import pytest

from consumers._pace import Pace
from consumers._protocol.answers import (
    answer_error,
    batch_failure,
    held_past_budget,
    note_answer,
    status_answer,
)
from consumers._protocol.batches import (
    Decision,
    FlushPlan,
    batches,
    mixpanel_rule,
    posthog_rule,
)
from consumers.errors import (
    PayloadTooLargeError,
    RecordsRejectedError,
    RefusedError,
    TransportError,
)
from consumers.retry import RateLimitHeld, RetryableRefusal, RetryPolicy

URL = "https://api.mixpanel.com/track?verbose=1"


def run(plan: FlushPlan, answer) -> list[list[str]]:
    """Drive ``plan`` with ``answer(batch)`` (an error or None); the batches posted."""
    posted = []
    while True:
        batch = plan.next_batch()
        if batch is None:
            return posted
        posted.append(list(batch))
        error = answer(batch)
        if error is None:
            plan.sent()
        else:
            plan.failed(error)


def test_batches_respect_count_and_bytes_in_order() -> None:
    messages = [f"m{i:02d}" for i in range(10)]  # 4 bytes each with the comma
    assert batches(messages, 4, 1000) == [messages[:4], messages[4:8], messages[8:]]
    assert batches(messages, 100, 13) == [messages[:3], messages[3:6], messages[6:9],
                                          messages[9:]]
    assert batches(messages, 100, 1000) == [messages]
    assert batches(["é" * 3], 10, 100, size=lambda m: len(m.encode()) + 1) == [["é" * 3]]


def test_a_413_is_bisected_down_to_the_one_bad_message() -> None:
    messages = [f"m{i}" for i in range(8)]
    plan = FlushPlan("event", [messages], mixpanel_rule)

    def answer(batch):
        if "m5" in batch:
            return PayloadTooLargeError("too large", status=413)
        return None

    posted = run(plan, answer)
    assert posted[0] == messages
    assert posted[1:] == [messages[:4], messages[4:], ["m4", "m5"], ["m4"], ["m5"],
                          ["m6", "m7"]]
    assert plan.failure is None and plan.unsent() == []
    assert plan.delivered == 7
    assert [e.messages for e in plan.reported] == [[("event", "m5")]]


def test_a_transport_failure_keeps_exactly_the_unsent_in_order() -> None:
    chunks = [["a", "b"], ["c", "d"], ["e"]]
    plan = FlushPlan("event", chunks, mixpanel_rule)
    answers = iter([None, TransportError("down"), None])
    posted = run(plan, lambda batch: next(answers))
    assert posted == [["a", "b"], ["c", "d"]]
    assert isinstance(plan.failure, TransportError)
    assert plan.unsent() == ["c", "d", "e"]
    assert plan.delivered == 2


def test_the_batch_in_flight_counts_as_unsent_when_interrupted() -> None:
    plan = FlushPlan("event", [["a"], ["b"]], mixpanel_rule)
    assert plan.next_batch() == ["a"]
    assert plan.unsent() == ["a", "b"]


def test_status_zero_and_strict_import_refusals_are_reported_not_kept() -> None:
    zero = status_answer('{"status": 0, "error": "bad"}', 200, URL)
    assert isinstance(zero, RefusedError) and zero.status == 200 and "bad" in str(zero)
    assert status_answer('{"status": 1}', 200, URL) is None
    assert status_answer("1", 200, URL) is None
    assert isinstance(status_answer("0", 200, URL), RefusedError)
    assert mixpanel_rule(zero, 5) is Decision.REPORT

    body = json.dumps({"code": 400, "num_records_imported": 2, "status": "Bad Request",
                       "failed_records": [{"index": 1, "insert_id": "x",
                                           "field": "properties.time",
                                           "message": "in the future"}]})
    refusal = RefusedError("400", status=400, body=body)
    records = batch_failure(True, refusal, "import", ["a", "b", "c"])
    assert isinstance(records, RecordsRejectedError)
    assert [(r.index, r.record) for r in records.failed_records] == [(1, ("import", "b"))]
    plan = FlushPlan("import", [["a", "b", "c"]], mixpanel_rule)
    run(plan, lambda batch: records)
    assert plan.reported == [records] and plan.delivered == 2 and plan.unsent() == []
    plain = batch_failure(False, RefusedError("400", status=400, body=body), "event", ["a"])
    assert not isinstance(plain, RecordsRejectedError) and plain.messages == [("event", "a")]


@pytest.mark.parametrize(("status", "decision"), [
    (401, Decision.KEEP), (403, Decision.KEEP), (429, Decision.KEEP), (503, Decision.KEEP),
    (400, Decision.SPLIT), (413, Decision.SPLIT)])
def test_mixpanel_rule_by_status(status: int, decision: Decision) -> None:
    error = answer_error(status, {}, "no", URL, RetryPolicy())
    assert error is not None
    assert mixpanel_rule(error, 2) is decision
    assert mixpanel_rule(TransportError("x"), 2) is Decision.KEEP


def test_posthog_rule_drops_what_it_does_not_retry() -> None:
    rule = posthog_rule(frozenset({408, 429, 503}))
    assert rule(RefusedError("x", status=400), 3) is Decision.REPORT
    assert rule(RefusedError("x", status=401), 3) is Decision.REPORT
    assert rule(RefusedError("x", status=503), 3) is Decision.KEEP
    assert rule(TransportError("x"), 3) is Decision.KEEP


def test_answers_map_to_the_error_family_and_keep_retry_after() -> None:
    policy = RetryPolicy()
    assert answer_error(200, {}, "1", URL, policy) is None
    assert type(answer_error(413, {}, "", URL, policy)) is PayloadTooLargeError
    refusal = answer_error(429, {"Retry-After": "7"}, "slow down", URL, policy)
    assert isinstance(refusal, RetryableRefusal) and refusal.retry_after == 7.0
    assert type(answer_error(401, {}, "", URL, policy)) is RefusedError
    assert "verbose" not in str(refusal)  # the query stays out of messages


def test_a_retry_after_holds_the_endpoint_and_a_long_hold_is_past_the_budget() -> None:
    now = [100.0]
    pace = Pace(max_hold=60.0, clock=lambda: now[0])
    held = note_answer(pace, "k", RetryPolicy(), 429, {"Retry-After": "30"}, 0.01)
    assert held == 130.0 and pace.until("k") == 130.0
    assert note_answer(pace, "j", RetryPolicy(respect_retry_after=False), 429,
                       {"Retry-After": "30"}, 0.01) is None
    short = RetryPolicy(max_elapsed=10.0)
    error = held_past_budget(URL, 130.0, 100.0, 100.0, short, None)
    assert isinstance(error, RateLimitHeld) and error.held_until == 130.0
    assert held_past_budget(URL, 130.0, 100.0, 100.0, RetryPolicy(), None) is None
    assert isinstance(held_past_budget(URL, 130.0, 100.0, 100.0, RetryPolicy(), 120.0),
                      RateLimitHeld)
