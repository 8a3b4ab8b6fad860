"""The ``worker`` command as a process: Redis down, wrong password, no /import credentials."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from redis_server import MISSING, RedisServer, free_port, redis_server_binary

from consumers.redis_stream import RedisStreamSink
from consumers.redis_worker import stream_stats

redis = pytest.importorskip(
    "redis", reason='the redis extra is not installed: pip install ".[redis]"'
)

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parent.parent
CREDENTIALS = {
    "MIXPANEL_SERVICE_ACCOUNT_USERNAME": "user",
    "MIXPANEL_SERVICE_ACCOUNT_SECRET": "s3cret-value",
    "MIXPANEL_PROJECT_ID": "123",
}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MIXPANEL_") and k != "REDIS_URL"}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def _worker(url: str, *args: str, env: dict[str, str] | None = None,
            stderr=subprocess.PIPE) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "consumers", "worker", "--redis", url, *args],
        cwd=ROOT, env=env or _env(), stdout=subprocess.PIPE, stderr=stderr, text=True,
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 30) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
        raise AssertionError(
            f"the worker did not exit within {timeout} s:\n{err[-3000:]}") from None


def _event(i: int) -> str:
    return json.dumps({"event": "Page viewed", "properties": {
        "token": "tok", "distinct_id": f"u{i}", "time": int(time.time() * 1000),
        "$insert_id": f"ev-{i}", "n": i}})


def _import(i: int) -> str:
    return json.dumps({"event": "Imported", "properties": {
        "distinct_id": f"u{i}", "time": int(time.time() * 1000), "$insert_id": f"imp-{i}"}})


def _wait_for(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.parametrize("mode", [[], ["--drain"], ["--stats"]])
def test_redis_down_at_start_is_one_line_and_exit_4(mode: list[str]) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    proc = _worker(url, "--api-host", "http://127.0.0.1:9", *mode)
    _out, err = _finish(proc)
    assert proc.returncode == 4, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("worker: cannot reach Redis at " + url)


@pytest.mark.parametrize("password", ["", "wrong-password"])
def test_wrong_redis_password_is_one_line_and_exit_4(password: str) -> None:
    if redis_server_binary() is None:
        pytest.skip(MISSING)
    with RedisServer(args=["--requirepass", "right-password"]) as srv:
        url = f"redis://:{password}@127.0.0.1:{srv.port}/0" if password else srv.url
        for mode in ([], ["--drain"], ["--stats"]):
            proc = _worker(url, "--api-host", "http://127.0.0.1:9", *mode)
            out, err = _finish(proc)
            assert proc.returncode == 4, err
            assert "Traceback" not in err
            lines = err.strip().splitlines()
            assert len(lines) == 1, err
            assert "refused the credentials" in lines[0]
            assert password == "" or password not in err + out


def test_import_without_credentials_stops_with_exit_4_and_a_later_worker_delivers(
    redis_srv, collector
):
    with RedisStreamSink(redis_srv.url) as sink:
        for i in range(5):
            sink.send("event", _event(i))
        sink.send("import", _import(0))
        for i in range(5, 8):
            sink.send("event", _event(i))
        sink.send("import", _import(1))

        proc = _worker(redis_srv.url, "--api-host", collector.url)  # not --drain: it must stop
        out, err = _finish(proc)
        assert proc.returncode == 4, err
        assert "Traceback" not in err
        line = next(x for x in err.splitlines() if x.startswith("worker: "))
        for name in ("MIXPANEL_SERVICE_ACCOUNT_USERNAME", "MIXPANEL_SERVICE_ACCOUNT_SECRET",
                     "MIXPANEL_PROJECT_ID", "MIXPANEL_API_SECRET"):
            assert name in line
        assert "service_account=" not in err
        stats = stream_stats(sink.client, "tracking", "mixpanel")
        assert stats["dead_lettered"] == 0
        assert collector.unique("import") == []
        assert len(collector.unique("track")) == 5  # what came before it was delivered

        proc = _worker(redis_srv.url, "--api-host", collector.url, "--drain",
                       env=_env(**CREDENTIALS))
        out, err = _finish(proc, timeout=60)
        assert proc.returncode == 0, err
        assert "s3cret-value" not in out + err
        assert sorted(m["properties"]["$insert_id"] for m in collector.unique("import")) == [
            "imp-0", "imp-1"]
        assert len(collector.unique("track")) == 8
        stats = stream_stats(sink.client, "tracking", "mixpanel")
        assert (stats["pending"], stats["lag"], stats["dead_lettered"]) == (0, 0, 0)


def test_drain_exits_3_when_redis_goes_away_and_a_rerun_finishes(redis_srv, collector):
    n = 300
    with RedisStreamSink(redis_srv.url) as sink:
        for i in range(n):
            sink.send("event", _event(i))
    collector.delay_next(3, 1.0)  # the worker is mid-way when Redis goes
    proc = _worker(redis_srv.url, "--api-host", collector.url, "--drain",
                   "--batch-size", "50", "--max-batch", "50", "--give-up-after", "3")
    _wait_for(lambda: len(collector.unique("track")) > 0 or proc.poll() is not None,
              what="the first delivery")
    redis_srv.stop()
    _out, err = _finish(proc, timeout=60)
    assert proc.returncode == 3, err
    assert "Traceback" not in err
    assert "unavailable" in err  # the retries were logged
    assert any(x.startswith("worker: --drain gave up") for x in err.splitlines()), err

    redis_srv.start()  # AOF: the stream and the group come back
    proc = _worker(redis_srv.url, "--api-host", collector.url, "--drain",
                   "--claim-idle-ms", "100")
    _out, err = _finish(proc, timeout=60)
    assert proc.returncode == 0, err
    assert sorted(m["properties"]["n"] for m in collector.unique("track")) == list(range(n))


def test_running_worker_rides_out_a_redis_outage(redis_srv, collector, tmp_path):
    log_path = tmp_path / "worker.log"
    with open(log_path, "w") as log_file:
        proc = _worker(redis_srv.url, "--api-host", collector.url, stderr=log_file)
        try:
            with RedisStreamSink(redis_srv.url) as sink:
                for i in range(100):
                    sink.send("event", _event(i))
            _wait_for(lambda: len(collector.unique("track")) == 100, what="delivery")
            redis_srv.stop()
            _wait_for(lambda: "unavailable" in log_path.read_text(), what="a retry line")
            assert proc.poll() is None, log_path.read_text()
            redis_srv.start()
            with RedisStreamSink(redis_srv.url) as sink:
                for i in range(100, 200):
                    sink.send("event", _event(i))
            _wait_for(lambda: len(collector.unique("track")) == 200, what="delivery after")
        finally:
            proc.send_signal(signal.SIGTERM)
            _finish(proc, timeout=60)
    err = log_path.read_text()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert sorted(m["properties"]["n"] for m in collector.unique("track")) == list(range(200))
