"""Keep-alive connections that die while idle: resent at once when provably unread, else retried.

The collector's idle fault kills connections the client's pool still holds
(see ``consumers._collector.idle``).  Every test ends by counting, in the
collector's raw records (before dedup), each event exactly once.
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from consumers import Consumer, _stale
from consumers._http import HttpTransport
from consumers.collector import Collector, build_parser
from consumers.errors import TransportError
from consumers.retry import RetryPolicy


def event(i: int) -> str:
    return json.dumps({"event": "Stale", "properties": {
        "token": "tok", "distinct_id": "u", "time": int(time.time() * 1000),
        "$insert_id": f"stale-{i}"}})


def consumer_for(collector: Collector, attempts: int, waits: list[float]) -> Consumer:
    transport = HttpTransport(retry=RetryPolicy(max_attempts=attempts), sleep=waits.append)
    consumer = Consumer(api_host=collector.url, transport=transport)
    consumer.test_transport = transport  # type: ignore[attr-defined]
    return consumer


def raw_ids(collector: Collector) -> list[str]:
    return sorted(m["properties"]["$insert_id"] for m in collector.messages("track"))


def adapter_of(consumer: Consumer):
    return consumer.test_transport.session.get_adapter("http://127.0.0.1/")


@pytest.mark.parametrize("mode", ["threaded", "asyncio"])
def test_a_reset_reused_connection_is_resent_at_once_outside_the_retry_budget(mode):
    waits: list[float] = []
    with Collector(mode=mode) as collector:
        collector.close_idle(0.2, reset=True, when="request")
        consumer = consumer_for(collector, attempts=1, waits=waits)  # no retry at all
        for i in range(4):
            consumer.send("event", event(i))  # each one on a connection idle too long
            time.sleep(0.35)
        assert raw_ids(collector) == [f"stale-{i}" for i in range(4)]
        assert collector.idle_closed() == 3  # the first request came on a new connection
        assert adapter_of(consumer).stale_resends == 3
        assert waits == []  # resent at once: nothing waited, no attempt used


def test_a_clean_close_without_an_answer_is_not_resent_for_free(collector):
    """The server may have accepted what it did not answer: only the retry policy resends."""
    collector.close_idle(0.2, when="request")
    waits: list[float] = []
    consumer = consumer_for(collector, attempts=1, waits=waits)
    consumer.send("event", event(0))
    time.sleep(0.35)
    with pytest.raises(TransportError, match="RemoteDisconnected"):
        consumer.send("event", event(1))
    assert adapter_of(consumer).stale_resends == 0

    retrying = consumer_for(collector, attempts=2, waits=waits)
    retrying.send("event", event(1))
    time.sleep(0.35)
    retrying.send("event", event(2))  # the dead connection costs one counted retry
    assert len(waits) == 1
    assert raw_ids(collector) == ["stale-0", "stale-1", "stale-2"]


def test_an_answer_lost_after_the_server_read_the_request_is_not_resent_for_free(collector):
    waits: list[float] = []
    consumer = consumer_for(collector, attempts=1, waits=waits)
    consumer.send("event", event(0))  # the connection is now a reused one
    collector.drop_next(1)  # read, then closed without an answer
    with pytest.raises(TransportError):
        consumer.send("event", event(1))
    assert adapter_of(consumer).stale_resends == 0
    assert raw_ids(collector) == ["stale-0"]


@pytest.mark.parametrize("reset", [False, True], ids=["close", "reset"])
def test_connections_the_server_closed_while_idle_are_not_reused(collector, reset):
    collector.close_idle(0.2, reset=reset)
    waits: list[float] = []
    consumer = consumer_for(collector, attempts=1, waits=waits)
    for i in range(3):
        consumer.send("event", event(i))
        time.sleep(0.35)
    assert collector.idle_closed() == 3
    assert raw_ids(collector) == ["stale-0", "stale-1", "stale-2"]
    assert waits == []


def test_a_connection_idle_longer_than_max_idle_is_replaced(collector, monkeypatch):
    monkeypatch.setattr(_stale, "MAX_IDLE", 0.1)
    consumer = consumer_for(collector, attempts=1, waits=[])
    consumer.send("event", event(0))
    consumer.send("event", event(1))  # at once: the same connection
    time.sleep(0.2)
    consumer.send("event", event(2))  # idle too long: a new one
    peers = [r["peer"] for r in collector.requests()]
    assert peers[0] == peers[1] != peers[2]
    assert raw_ids(collector) == ["stale-0", "stale-1", "stale-2"]


def test_the_idle_fault_resets_with_rst(collector):
    collector.close_idle(0.1, reset=True, when="request")
    with socket.create_connection(("127.0.0.1", collector.port)) as sock:
        time.sleep(0.2)
        sock.sendall(b"POST /track HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        with pytest.raises(ConnectionResetError):
            sock.recv(100)
    assert collector.requests() == []  # never read


def test_the_idle_fault_checks_its_arguments_and_is_cleared(collector):
    with pytest.raises(ValueError, match="after"):
        collector.close_idle(0)
    with pytest.raises(ValueError, match="when"):
        collector.close_idle(1.0, when="later")
    collector.close_idle(0.1)
    collector.clear_faults()
    consumer = consumer_for(collector, attempts=1, waits=[])
    consumer.send("event", event(0))
    time.sleep(0.2)
    consumer.send("event", event(1))
    assert collector.idle_closed() == 0


def test_the_command_line_sets_the_idle_fault():
    args = build_parser().parse_args(["--close-idle", "2.5", "--idle-reset",
                                      "--idle-when", "request"])
    assert (args.close_idle, args.idle_reset, args.idle_when) == (2.5, True, "request")
