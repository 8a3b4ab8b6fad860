"""Consumers across os.fork(): the child opens its own connections and never resends the parent's.

Each test forks the test process itself (as gunicorn or Celery prefork
would); the child reports through its exit status.
"""

from __future__ import annotations

import json
import os
import signal
import traceback
from typing import Any, Callable

import pytest

from consumers.buffered import BufferedConsumer
from consumers.consumer import Consumer
from consumers.file import FileConsumer
from consumers.posthog import PostHogConsumer

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def event(name: str) -> str:
    return json.dumps({"event": "Forked", "properties": {
        "token": "tok", "distinct_id": "u1", "time": 1_700_000_000_000, "$insert_id": name}})


def capture(name: str) -> str:
    return json.dumps({"event": "Forked", "distinct_id": "u1", "uuid": name,
                       "properties": {"tag": name}})


def in_child(body: Callable[[], None]) -> None:
    """Run ``body`` in a forked child (killed after 30 s); fail unless it returns cleanly."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.alarm(30)  # a child stuck on an inherited lock must not hang the suite
            body()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child failed (its traceback is above)"


def peers(collector: Any) -> list[str]:
    return [entry["peer"] for entry in collector.requests()]


def test_a_child_opens_its_own_connection_and_leaves_the_parents_working(collector: Any) -> None:
    consumer = Consumer(api_host=collector.url)
    consumer.send("event", event("parent-1"))  # leaves a keep-alive connection in the pool
    in_child(lambda: consumer.send("event", event("child")))
    consumer.send("event", event("parent-2"))
    parent_1, child, parent_2 = peers(collector)
    assert child != parent_1  # sharing it, both would write requests onto one socket
    assert parent_2 == parent_1  # the child closed only its own copy
    assert [m["properties"]["$insert_id"] for m in collector.messages("track")] == [
        "parent-1", "child", "parent-2"]


def test_a_session_passed_in_gets_new_connections_in_the_child_too(collector: Any) -> None:
    import requests

    with requests.Session() as session:
        consumer = Consumer(api_host=collector.url, session=session)
        consumer.send("event", event("parent-1"))
        in_child(lambda: consumer.send("event", event("child")))
        consumer.send("event", event("parent-2"))
    parent_1, child, parent_2 = peers(collector)
    assert child != parent_1 == parent_2


def test_a_child_does_not_resend_what_the_parent_buffered(collector: Any) -> None:
    buffered = BufferedConsumer(api_host=collector.url)
    buffered.send("event", event("warm-up"))
    buffered.flush()
    for i in range(3):
        buffered.send("event", event(f"parent-{i}"))

    def child() -> None:
        assert buffered.pending() == 0
        buffered.send("event", event("child"))
        buffered.flush()

    in_child(child)
    assert buffered.pending() == 3
    buffered.close()
    sent = [m["properties"]["$insert_id"] for m in collector.messages("track")]
    assert sorted(sent) == ["child", "parent-0", "parent-1", "parent-2", "warm-up"]
    assert len(set(peers(collector))) == 2


def test_a_posthog_consumer_child_starts_empty_on_its_own_connection(collector: Any) -> None:
    consumer = PostHogConsumer("phc_key", collector.url)
    consumer.send("posthog", capture("warm-up"))
    consumer.flush()
    consumer.send("posthog", capture("parent"))

    def child() -> None:
        assert consumer.pending() == 0
        consumer.send("posthog", capture("child"))
        consumer.flush()

    in_child(child)
    consumer.close()
    assert sorted(m["uuid"] for m in collector.messages("posthog")) == [
        "child", "parent", "warm-up"]
    assert len(set(peers(collector))) == 2


def test_a_lock_held_at_the_fork_does_not_stop_the_childs_file_writes(tmp_path: Any) -> None:
    path = tmp_path / "events.log"
    consumer = FileConsumer(path)
    # As if another thread were halfway through send() at the instant of the fork.
    with consumer._lock:
        in_child(lambda: consumer.send("event", event("child")))
    consumer.send("event", event("parent"))
    consumer.close()
    lines = path.read_text().splitlines()
    assert [json.loads(json.loads(line)[1])["properties"]["$insert_id"] for line in lines] == [
        "child", "parent"]


def test_reset_after_fork_does_nothing_in_the_process_that_made_the_consumer(
    collector: Any,
) -> None:
    buffered = BufferedConsumer(api_host=collector.url)
    buffered.send("event", event("kept"))
    buffered.reset_after_fork()  # a wrapper calling it by mistake loses nothing
    assert buffered.pending() == 1
    buffered.close()
    assert [m["properties"]["$insert_id"] for m in collector.messages("track")] == ["kept"]
