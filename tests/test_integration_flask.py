"""The Flask extension: real requests through Flask (test client and gunicorn --preload)."""

from __future__ import annotations

import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.framework_apps import (
    events_named,
    free_port,
    popen,
    run_script,
    sent_twice,
    stop,
    wait_for,
    wait_http,
    write,
)

pytest.importorskip("flask", reason="the Flask integration needs Flask (in the test extra)")

APP = """
    import os
    import time
    from flask import Flask, request
    from tracker.integrations.flask import Tracking

    tracking = Tracking(context=lambda: {
        "distinct_id": request.headers.get("X-User"), "path": request.path,
    })

    def create_app():
        app = Flask(__name__)
        app.config["TRACKING_TOKEN"] = "flask-token"
        app.config["TRACKING_API_HOST"] = os.environ["COLLECTOR"]
        tracking.init_app(app)

        @app.post("/signup")
        def signup():
            tracking.tracker.track(None, "Signed Up", {"plan": request.args["plan"]})
            time.sleep(float(request.args.get("pause", 0)))  # keeps a sync worker busy
            return {"pid": os.getpid()}

        @app.get("/boom")
        def boom():
            raise RuntimeError("the view failed")

        return app

    app = create_app()
"""


def test_requests_carry_the_context_and_exit_delivers_everything(collector, tmp_path: Path):
    write(tmp_path, "flask_app.py", APP)
    result = run_script(tmp_path, "drive.py", """
        from flask_app import app, tracking
        client = app.test_client()
        for i in range(50):
            r = client.post(f"/signup?plan=p{i % 3}", headers={"X-User": f"user-{i}"})
            assert r.status_code == 200, r.data
        assert client.get("/boom").status_code == 500
        print("done")
        # no close(): the interpreter's exit must deliver what is queued
    """, COLLECTOR=collector.url)
    assert result.returncode == 0, result.stdout + result.stderr
    events = events_named(collector, "Signed Up")
    assert len(events) == 50 and sent_twice(collector) == 0
    by_user = {e["properties"]["distinct_id"]: e["properties"] for e in events}
    assert by_user["user-7"]["path"] == "/signup"
    assert by_user["user-7"]["plan"] == "p1"
    assert by_user["user-7"]["token"] == "flask-token"


def test_a_tracker_call_outside_a_request_has_no_context(collector, tmp_path: Path):
    write(tmp_path, "flask_app.py", APP)
    result = run_script(tmp_path, "outside.py", """
        from flask_app import app, tracking
        from tracker.errors import InvalidInputError
        client = app.test_client()
        client.post("/signup?plan=x", headers={"X-User": "inside"})
        with app.app_context():
            try:
                tracking.tracker.track(None, "Outside")
            except InvalidInputError as error:
                print("refused:", error)
            tracking.tracker.track("someone", "Outside")
    """, COLLECTOR=collector.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "refused:" in result.stdout and "distinct_id" in result.stdout
    [outside] = events_named(collector, "Outside")
    assert outside["properties"]["distinct_id"] == "someone"
    assert "path" not in outside["properties"]


def test_gunicorn_preload_workers_deliver_every_request_once(collector, tmp_path: Path):
    pytest.importorskip("gunicorn", reason="needs gunicorn (in the test extra)")
    write(tmp_path, "flask_app.py", APP)
    port = free_port()
    server = popen([sys.executable, "-m", "gunicorn", "--preload", "-w", "3",
                    "-b", f"127.0.0.1:{port}", "--graceful-timeout", "20", "flask_app:app"],
                   tmp_path, COLLECTOR=collector.url)
    import requests

    try:
        wait_http(f"http://127.0.0.1:{port}/boom", server)
        def signup(i: int) -> int:
            # six at a time, each holding its worker 20 ms: the three workers share them
            answer = requests.post(f"http://127.0.0.1:{port}/signup?plan=team&pause=0.02",
                                   headers={"X-User": f"g-{i}"}, timeout=30)
            assert answer.status_code == 200
            return int(answer.json()["pid"])

        with ThreadPoolExecutor(6) as pool:
            pids = set(pool.map(signup, range(90)))
    finally:
        out = stop(server, signal.SIGTERM)
    assert server.returncode == 0, out
    wait_for(lambda: len(events_named(collector, "Signed Up")) >= 90, 10, "90 events")
    events = events_named(collector, "Signed Up")
    assert len(events) == 90 and sent_twice(collector) == 0, out
    assert {e["properties"]["distinct_id"] for e in events} == {f"g-{i}" for i in range(90)}
    assert len(pids) >= 2, "the requests should have reached several workers"
