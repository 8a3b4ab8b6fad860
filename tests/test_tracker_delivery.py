"""Delivery outcomes, the error handler, the alias sink, and sharing a tracker between threads."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import pytest

from consumers.errors import DeliveryError, RefusedError, TransportError
from tracker.tracker import Tracker


class Failing:
    """A sink that raises ``error`` on every message."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.calls = 0

    def __call__(self, message_type: str, message_json: str) -> None:
        self.calls += 1
        raise self.error


def test_success_returns_true() -> None:
    assert Tracker("T", lambda t, m: None).track("u", "E") is True


@pytest.mark.parametrize(
    "error",
    [
        DeliveryError("nope"),
        TransportError("connection refused"),
        RefusedError("refused", status=400, body="0"),
    ],
)
def test_delivery_failure_goes_to_the_handler_and_returns_false(error: DeliveryError) -> None:
    seen: list[BaseException] = []
    tracker = Tracker("T", Failing(error), error_handler=seen.append)
    assert tracker.track("u", "E") is False
    assert tracker.people.set("u", {"a": 1}) is False
    assert tracker.groups.delete("C", "A") is False
    assert tracker.alias("a", "u") is False
    assert seen == [error] * 4


def test_a_handler_object_with_handle_is_accepted() -> None:
    class Handler:
        def __init__(self) -> None:
            self.errors: list[BaseException] = []

        def handle(self, error: BaseException) -> None:
            self.errors.append(error)

    handler = Handler()
    tracker = Tracker("T", Failing(DeliveryError("x")), error_handler=handler)
    assert tracker.track("u", "E") is False
    assert len(handler.errors) == 1


def test_a_duck_typed_delivery_error_counts_as_delivery_failure() -> None:
    class DeliveryError(Exception):  # a user's own, recognised by name
        pass

    seen: list[BaseException] = []
    tracker = Tracker("T", Failing(DeliveryError("queue full")), error_handler=seen.append)
    assert tracker.track("u", "E") is False
    assert len(seen) == 1


def test_the_default_handler_logs_and_does_not_print(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    tracker = Tracker("T", Failing(TransportError("connection refused")))
    with caplog.at_level(logging.ERROR, logger="tracker"):
        assert tracker.track("u", "E") is False
    assert "delivery failed: connection refused" in caplog.text
    assert capsys.readouterr() == ("", "")


def test_other_sink_errors_are_not_swallowed() -> None:
    seen: list[BaseException] = []
    tracker = Tracker("T", Failing(KeyError("bug in the sink")), error_handler=seen.append)
    with pytest.raises(KeyError):
        tracker.track("u", "E")
    assert seen == []


# -- the alias sink --------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def __call__(self, message_type: str, message_json: str) -> None:
        self.sent.append((message_type, message_json))


def test_with_a_plain_callable_alias_goes_through_it() -> None:
    sink = Recorder()
    Tracker("T", sink).alias("new", "old")
    assert [json.loads(m)["event"] for _, m in sink.sent] == ["$create_alias"]


def test_alias_sink_takes_aliases_and_nothing_else() -> None:
    sink, alias_sink = Recorder(), Recorder()
    tracker = Tracker("T", sink, alias_sink=alias_sink)
    tracker.track("u", "E")
    tracker.alias("new", "old")
    tracker.people.set("u", {"a": 1})
    assert [t for t, _ in sink.sent] == ["event", "profile_update"]
    assert [json.loads(m)["event"] for _, m in alias_sink.sent] == ["$create_alias"]


class BufferingSink:
    """A consumer-like sink that exposes endpoints and holds messages until flushed."""

    def __init__(self, endpoints: Any) -> None:
        self.endpoints = endpoints
        self.buffer: list[tuple[str, str]] = []

    def send(self, message_type: str, message_json: str) -> None:
        self.buffer.append((message_type, message_json))


def test_alias_of_a_tracker_on_eu_endpoints_uses_a_consumer_on_the_same_endpoints() -> None:
    from consumers.endpoints import Endpoints

    eu = Endpoints.region("eu")
    tracker = Tracker("T", BufferingSink(eu))
    alias_send = tracker._alias_sink()
    assert alias_send.__self__.endpoints == eu  # type: ignore[attr-defined]
    assert "api.mixpanel.com" not in repr(alias_send.__self__.endpoints)  # type: ignore[attr-defined]


def test_default_consumer_with_a_region_carries_it_to_alias() -> None:
    from consumers.endpoints import Endpoints

    with Tracker("T", region="eu") as tracker:
        consumer = tracker._alias_sink().__self__  # type: ignore[attr-defined]
        assert consumer.endpoints == Endpoints.region("eu")


# -- threads ----------------------------------------------------------------------


def test_one_tracker_shared_by_many_threads() -> None:
    sent: list[tuple[str, str]] = []
    tracker = Tracker("T", lambda t, m: sent.append((t, m)))
    n_threads, per_thread = 8, 400
    start = threading.Barrier(n_threads)

    def work(n: int) -> None:
        start.wait()
        for i in range(per_thread):
            tracker.track(f"user-{n}", "E", {"thread": n, "seq": i, "tags": [n, i]})
            tracker.people.set(f"user-{n}", {"thread": n, "seq": i})

    threads = [threading.Thread(target=work, args=(n,)) for n in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(sent) == 2 * n_threads * per_thread
    insert_ids = set()
    seqs: dict[int, list[int]] = {n: [] for n in range(n_threads)}
    for message_type, m in sent:
        msg = json.loads(m)
        if message_type == "event":
            props = msg["properties"]
            assert props["distinct_id"] == f"user-{props['thread']}"
            assert props["tags"] == [props["thread"], props["seq"]]
            insert_ids.add(props["$insert_id"])
            seqs[props["thread"]].append(props["seq"])
        else:
            assert msg["$distinct_id"] == f"user-{msg['$set']['thread']}"
    assert len(insert_ids) == n_threads * per_thread
    assert all(s == list(range(per_thread)) for s in seqs.values())
