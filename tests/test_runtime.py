"""Green threads: under gevent's and eventlet's monkey-patching everything is delivered, once.

Each case is a real child process that patches first thing (as gunicorn's
gevent and eventlet workers do), tracks through a ``BackgroundConsumer`` (file
spool included) and the PostHog ``Client``, and exits without closing
anything: the exit drain must deliver it all.  The collector then holds
every event exactly once.  The rest of the background, PostHog, fork and
exit tests run patched in the green lanes (``nox -s green``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from consumers import _runtime

ROOT = str(Path(__file__).resolve().parent.parent)
GREEN_DIR = str(Path(__file__).resolve().parent / "green")
N = 3000
MAX_QUEUE_BYTES = 64 * 1024

CHILD = textwrap.dedent("""
    import sys
    library = sys.argv[1]
    if library == "gevent":
        from gevent import monkey
        monkey.patch_all()
    else:
        import eventlet
        eventlet.monkey_patch()
    import json, time
    from consumers import _runtime
    from consumers.background import BackgroundConsumer
    from consumers.buffered import BufferedConsumer
    from tracker.posthog import Client

    assert _runtime.green_library() == library, _runtime.green_library()
    url, n, spool, max_bytes = sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
    bc = BackgroundConsumer(BufferedConsumer(api_host=url), max_queue_bytes=max_bytes,
                            spool=spool)
    client = Client("phc_key", url, background_options={"max_queue_bytes": max_bytes})
    peak = 0
    for i in range(n):
        bc.send("event", json.dumps({"event": "Green", "properties": {
            "token": "tok", "distinct_id": "u", "time": int(time.time() * 1000),
            "$insert_id": f"g{i}", "pad": "x" * 200}}))
        client.capture("u", "green", {"i": i, "pad": "x" * 200})
        peak = max(peak, bc.stats()["queued_bytes"])
    print(json.dumps({"peak": peak}), flush=True)
    # no close(), no shutdown(): the exit drain delivers what is left
""")


def run_child(library: str, collector: Any, spool: Path) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("TRACKING_TOOLKIT_GREEN", None)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, library, collector.url, str(N), str(spool),
         str(MAX_QUEUE_BYTES)],
        env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


@pytest.mark.parametrize("library", ["gevent", "eventlet"])
def test_everything_is_delivered_once_under_green_threads_with_bounded_memory(
        collector: Any, tmp_path: Path, library: str) -> None:
    if importlib.util.find_spec(library) is None:
        pytest.skip(f"{library} is not installed (it is in the test extra)")
    report = run_child(library, collector, tmp_path / "spool")
    assert report["peak"] <= MAX_QUEUE_BYTES
    events = collector.unique("track")
    assert sorted(m["properties"]["$insert_id"] for m in events) == sorted(
        f"g{i}" for i in range(N))
    assert len(collector.messages("track")) == N  # not even a duplicate to dedup
    captured = collector.unique("posthog")
    assert sorted(m["properties"]["i"] for m in captured) == list(range(N))
    assert len(collector.messages("posthog")) == N


def test_real_threads_are_not_reported_green() -> None:
    if os.environ.get("TRACKING_TOOLKIT_GREEN"):
        assert _runtime.green_library() == os.environ["TRACKING_TOOLKIT_GREEN"]
        assert _runtime.current_greenlet() is not None
    else:
        assert _runtime.green_library() is None
        assert _runtime.current_greenlet() is None


@pytest.mark.parametrize("library", ["gevent", "eventlet"])
def test_the_green_lane_patches_every_child_process_first(library: str) -> None:
    # not imported here: importing eventlet alone hooks every later fork of this process
    if importlib.util.find_spec(library) is None:
        pytest.skip(f"{library} is not installed (it is in the test extra)")
    env = dict(os.environ, TRACKING_TOOLKIT_GREEN=library,
               PYTHONPATH=os.pathsep.join([GREEN_DIR, ROOT]))
    probe = ("import sys; from consumers import _runtime; "
             "print(_runtime.green_library(), 'threading' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                          text=True, timeout=60, check=True)
    assert done.stdout.split() == [library, "True"]


def test_outside_uwsgi_nothing_is_said_about_threads() -> None:
    assert not _runtime.threads_disabled_by_uwsgi()
    assert not _runtime.warn_uwsgi_without_threads("BackgroundConsumer")
