"""RedisStreamSink against a real redis-server."""

from __future__ import annotations

import json

import pytest
from redis_server import RedisServer, free_port

from consumers.errors import TransportError
from consumers.redis_stream import RedisStreamSink, StreamFullError

redis = pytest.importorskip(
    "redis", reason='the redis extra is not installed: pip install ".[redis]"'
)

pytestmark = pytest.mark.redis


def _entries(srv: RedisServer, stream: str = "tracking") -> list[tuple[str, str]]:
    client = redis.Redis.from_url(srv.url, decode_responses=True)
    try:
        return [(f["type"], f["message"]) for _id, f in client.xrange(stream)]
    finally:
        client.close()


MSG = json.dumps({"event": "Signed up", "properties": {"distinct_id": "u1", "é": "ü"}})


def test_send_appends_the_message_string_unchanged(redis_srv):
    with RedisStreamSink(redis_srv.url) as sink:
        sink.send("event", MSG)
        sink("profile_update", '{"$set":{"a":1}}')
    assert _entries(redis_srv) == [("event", MSG), ("profile_update", '{"$set":{"a":1}}')]


def test_batch_mode_writes_on_size_and_on_flush(redis_srv):
    with RedisStreamSink(redis_srv.url, "s", batch_size=3, flush_interval=3600) as sink:
        for i in range(4):
            sink.send("event", f'{{"n":{i}}}')
        assert len(_entries(redis_srv, "s")) == 3
        assert sink.pending() == 1
        sink.flush()
        assert len(_entries(redis_srv, "s")) == 4
        sink.send("event", '{"n":4}')
    assert [m for _t, m in _entries(redis_srv, "s")] == [f'{{"n":{i}}}' for i in range(5)]


def test_unreachable_redis_raises_transport_error_carrying_the_message():
    sink = RedisStreamSink(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(TransportError) as info:
        sink.send("event", MSG)
    assert info.value.messages == [("event", MSG)]
    assert "could not queue" in str(info.value)


def test_unreachable_redis_uses_the_fallback_sink(caplog):
    spooled: list[tuple[str, str]] = []
    sink = RedisStreamSink(
        f"redis://127.0.0.1:{free_port()}/0", fallback=lambda t, m: spooled.append((t, m))
    )
    sink.send("event", MSG)
    sink.send("event", "{}")
    assert spooled == [("event", MSG), ("event", "{}")]
    assert "fallback" in caplog.text


def test_full_stream_refuses_instead_of_trimming(redis_srv):
    spooled: list[tuple[str, str]] = []
    with RedisStreamSink(redis_srv.url, maxlen=2) as sink:
        sink.send("event", '{"n":0}')
        sink.send("event", '{"n":1}')
        with pytest.raises(StreamFullError) as info:
            sink.send("event", '{"n":2}')
    assert info.value.messages == [("event", '{"n":2}')]
    spool = lambda t, m: spooled.append((t, m))  # noqa: E731
    with RedisStreamSink(redis_srv.url, maxlen=3, batch_size=5, fallback=spool) as sink:
        for i in range(2, 5):
            sink.send("event", f'{{"n":{i}}}')
    assert [m for _t, m in _entries(redis_srv)] == ['{"n":0}', '{"n":1}', '{"n":2}']
    assert spooled == [("event", '{"n":3}'), ("event", '{"n":4}')]


def test_repr_hides_the_password():
    sink = RedisStreamSink("redis://user:s3cret@127.0.0.1:1/0")
    assert "s3cret" not in repr(sink)
    assert "***" in repr(sink)


def test_sink_survives_a_redis_restart(redis_srv):
    with RedisStreamSink(redis_srv.url) as sink:
        sink.send("event", '{"n":0}')
        redis_srv.restart()
        sink.send("event", '{"n":1}')
    assert [m for _t, m in _entries(redis_srv)] == ['{"n":0}', '{"n":1}']


def test_fallback_to_a_file_spool_keeps_every_message(tmp_path):
    from consumers.file import FileConsumer

    spool = FileConsumer(str(tmp_path / "spool") + "/")
    sink = RedisStreamSink(f"redis://127.0.0.1:{free_port()}/0", fallback=spool)
    sink.send("event", MSG)
    sink.send("profile_update", '{"$set":{"a":1}}')
    spool.close()
    lines = [
        json.loads(line)
        for f in sorted((tmp_path / "spool").glob("events-*.log"))
        for line in f.read_text().splitlines()
    ]
    assert lines == [["event", MSG], ["profile_update", '{"$set":{"a":1}}']]


def test_a_forked_child_does_not_write_the_parents_batch(redis_srv):
    import os

    with RedisStreamSink(redis_srv.url, "s", batch_size=10, flush_interval=3600) as sink:
        sink.send("event", '{"n":"parent"}')
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = 0 if sink.pending() == 0 else 3
                sink.send("event", '{"n":"child"}')
                sink.flush()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert sink.pending() == 1
    assert sorted(m for _t, m in _entries(redis_srv, "s")) == ['{"n":"child"}', '{"n":"parent"}']
