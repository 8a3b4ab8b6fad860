"""uWSGI: a real uWSGI serves a small WSGI app that tracks through a BackgroundConsumer.

With and without ``--enable-threads``: a worker that runs no Python threads
(uWSGI 2.0.23 without the option, for one; 2.0.31 always runs
them) is told so once, with the fix; any other worker says nothing.  In
every case the events queued when the worker is reloaded, and when uWSGI
shuts down, are delivered: the collector ends with each exactly once.

The installed ``uwsgi`` is used; ``TRACKING_TOOLKIT_UWSGI_OLD`` may name an
older binary (one that runs no threads by default) to add its cases.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = str(Path(__file__).resolve().parent.parent)

APP = textwrap.dedent("""
    import json, logging, os, sys, time
    logging.basicConfig(stream=sys.stderr, format="APPLOG %(levelname)s %(message)s")
    from consumers.background import BackgroundConsumer
    from consumers.buffered import BufferedConsumer
    import uwsgi

    with open(os.environ["TT_HAS_THREADS"], "w") as f:
        f.write(str(uwsgi.has_threads))
    consumer = BackgroundConsumer(BufferedConsumer(api_host=os.environ["TT_COLLECTOR"]))

    def application(environ, start_response):
        consumer.send("event", json.dumps({"event": "Served", "properties": {
            "token": "tok", "distinct_id": "u", "time": int(time.time() * 1000),
            "$insert_id": environ.get("QUERY_STRING", "")}}))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
""")


def binaries() -> list[Any]:
    found = []
    installed = shutil.which("uwsgi")
    if installed:
        found.append(pytest.param(installed, id="installed"))
    old = os.environ.get("TRACKING_TOOLKIT_UWSGI_OLD")
    if old:
        found.append(pytest.param(old, id="old"))
    return found or [pytest.param(None, id="none")]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, query: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(f"http://127.0.0.1:{port}/?{query}", timeout=10).raise_for_status()
            return
        except requests.ConnectionError:  # a worker being (re)started
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.mark.parametrize("threads", [False, True], ids=["default", "enable-threads"])
@pytest.mark.parametrize("uwsgi", binaries())
def test_events_queued_at_reload_and_shutdown_are_delivered_once(
        collector: Any, tmp_path: Path, uwsgi: Any, threads: bool) -> None:
    if uwsgi is None:
        pytest.skip("no uwsgi binary (pip install uwsgi: it is in the test extra)")
    app = tmp_path / "app.py"
    app.write_text(APP)
    fifo = tmp_path / "fifo"
    has_threads = tmp_path / "has_threads"
    port = free_port()
    env = dict(os.environ, PYTHONPATH=ROOT, TT_COLLECTOR=collector.url,
               TT_HAS_THREADS=str(has_threads))
    args = [uwsgi, "--http-socket", f"127.0.0.1:{port}", "--wsgi-file", str(app),
            "--master", "--processes", "1", "--master-fifo", str(fifo), "--need-app",
            "--disable-logging"]
    if threads:
        args.append("--enable-threads")
    server = subprocess.Popen(args, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    expected = []
    try:
        for i in range(10):
            get(port, f"before-{i}")
            expected.append(f"before-{i}")
        collector.delay_next(1, 1.0)  # the worker is busy in a slow POST ...
        for i in range(10):
            get(port, f"reload-{i}")  # ... while these queue up
            expected.append(f"reload-{i}")
        fifo.write_text("r")  # graceful reload: the old worker must deliver them on its way out
        for i in range(5):
            get(port, f"after-{i}")  # served by the new worker
            expected.append(f"after-{i}")
        collector.delay_next(1, 1.0)
        for i in range(5):
            get(port, f"last-{i}")
            expected.append(f"last-{i}")
        fifo.write_text("q")  # graceful shutdown
        output = server.communicate(timeout=60)[0]
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0, output
    ids = [m["properties"]["$insert_id"] for m in collector.messages("track")]
    assert sorted(ids) == sorted(expected)  # raw, so exactly once after dedup as well
    warnings = [line for line in output.splitlines() if "enable-threads" in line
                and line.startswith("APPLOG")]
    if has_threads.read_text() == "0":  # this worker runs no Python threads
        assert len(warnings) == 2, output  # once per worker process (two: before and after)
        assert "--enable-threads" in warnings[0]
    else:
        assert warnings == [], output
