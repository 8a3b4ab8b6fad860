"""Celery: a real prefork worker on a filesystem broker, the caller's context carried into tasks."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from tests.framework_apps import events_named, popen, run_script, sent_twice, stop, wait_for, write

pytest.importorskip("celery", reason="the Celery integration needs Celery (in the test extra)")

TASKS = """
    import os
    from celery import Celery
    from tracker.integrations import Tracking
    from tracker.integrations.celery import connect

    folder = os.environ["BROKER_DIR"]
    app = Celery("tasks", broker="filesystem://", broker_transport_options={
        "data_folder_in": folder, "data_folder_out": folder,
        "processed_folder": folder + "-done", "store_processed": False,
    })
    app.conf.worker_hijack_root_logger = False
    tracking = Tracking("celery-token", api_host=os.environ["COLLECTOR"])
    connect(tracking)

    @app.task
    def work(i, user=None):
        tracking.tracker.track(user, "Task Done", {"i": i, "pid": os.getpid()})
"""


def test_tasks_run_in_the_callers_context_and_every_event_arrives(collector, tmp_path: Path):
    broker = tmp_path / "broker"
    broker.mkdir()
    (tmp_path / "broker-done").mkdir()
    write(tmp_path, "tasks.py", TASKS)
    env = {"COLLECTOR": collector.url, "BROKER_DIR": str(broker)}
    published = run_script(tmp_path, "publish.py", """
        from tasks import tracking, work
        with tracking.tracker.context(distinct_id="caller-7", plan="pro"):
            for i in range(20):
                work.delay(i)
        for i in range(20, 25):
            work.delay(i, "system")  # no context here: the task runs without one
    """, **env)
    assert published.returncode == 0, published.stdout + published.stderr

    worker = popen([sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool=prefork",
                    "--concurrency=2", "--loglevel=warning", "--without-gossip",
                    "--without-mingle", "--without-heartbeat"], tmp_path, **env)
    try:
        wait_for(lambda: len(events_named(collector, "Task Done")) >= 25, 90,
                 "every task's event")
    finally:
        out = stop(worker, signal.SIGTERM)
    events = events_named(collector, "Task Done")
    with_context = [e for e in events if e["properties"]["i"] < 20]
    assert len(with_context) == 20 and sent_twice(collector) == 0, out
    assert {e["properties"]["distinct_id"] for e in with_context} == {"caller-7"}
    assert {e["properties"]["plan"] for e in with_context} == {"pro"}
    without = [e["properties"] for e in events if e["properties"]["i"] >= 20]
    assert len(without) == 5 and len(events) == 25, out
    # a worker child runs many tasks: one task's context never leaks into the next
    assert all(p["distinct_id"] == "system" and "plan" not in p for p in without)
