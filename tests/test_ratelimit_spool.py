"""The default spool: what one process could not deliver, the next run of the program delivers.

Real processes: one spills while the destination refuses, later ones (two at
once) adopt and replay it exactly once; another program, or another
destination, does not touch it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from consumers._spool_home import ENV_VAR, TEMP_SPOOL, cache_root, default_spool_root
from consumers.background import BackgroundConsumer
from consumers.buffered import BufferedConsumer
from consumers.retry import RetryPolicy

ROOT = Path(__file__).resolve().parents[1]

APP = """
import json, sys
sys.path.insert(0, {root!r})
from consumers.background import BackgroundConsumer
from consumers.buffered import BufferedConsumer
from consumers.retry import RetryPolicy

url, n, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
consumer = BackgroundConsumer(
    BufferedConsumer(api_host=url, retry=RetryPolicy(max_attempts=1)), probe_interval=0.05)
for i in range(n):
    consumer.send("event", json.dumps({{"event": "e", "properties": {{
        "token": "TOKEN", "distinct_id": "u", "time": 1700000000000,
        "$insert_id": tag + "-" + str(i)}}}}))
consumer.close(timeout=2.0 if n else 30.0)
print(json.dumps(consumer.stats()))
"""


def _program(folder: Path, name: str = "app.py") -> Path:
    path = folder / name
    path.write_text(APP.format(root=str(ROOT)))
    return path


def _start(program: Path, url: str, n: int, tag: str = "m") -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(program), url, str(n), tag],
                            stdout=subprocess.PIPE, text=True, env=dict(os.environ))


def _stats(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0
    return dict(json.loads(out.strip().splitlines()[-1]))


def test_the_next_run_of_the_program_delivers_what_the_last_one_spilled(collector, tmp_path):
    program = _program(tmp_path)
    collector.fail_next(10_000, 503, path="/track")
    first = _stats(_start(program, collector.url, 20))
    assert (first["delivered"], first["spilled"]) == (0, 20)
    spools = list(cache_root().iterdir())
    assert len(spools) == 1  # under the user's cache dir (here: this test's own)
    assert "127.0.0.1" not in str(spools[0]) and str(collector.port) not in str(spools[0])
    collector.clear_faults()

    other_program = _program(tmp_path, "other.py")
    assert _stats(_start(other_program, collector.url, 0))["delivered"] == 0
    assert collector.messages("track") == []  # another program's spool is not its business

    # two later runs at once: the spill is replayed by exactly one of them
    both = [_stats(p) for p in [_start(program, collector.url, 0) for _ in range(2)]]
    assert sorted(s["replayed"] for s in both) == [0, 20]
    assert len(collector.unique("track")) == 20
    assert len(collector.messages("track")) == 20  # nothing sent twice


def test_another_destination_does_not_adopt_the_spool(collector, tmp_path):
    from consumers.collector import Collector

    program = _program(tmp_path)
    collector.fail_next(10_000, 503, path="/track")
    assert _stats(_start(program, collector.url, 5))["spilled"] == 5
    with Collector() as elsewhere:
        assert _stats(_start(program, elsewhere.url, 0))["replayed"] == 0
        assert elsewhere.messages("track") == []
    collector.clear_faults()
    assert _stats(_start(program, collector.url, 0))["replayed"] == 5


def test_the_default_root_is_per_program_and_destination_and_names_no_secret(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "/somewhere")
    us = BufferedConsumer(region="us", api_secret="s3cret-value")
    eu = BufferedConsumer(region="eu")
    root = default_spool_root(us)
    assert root is not None and root.parent == Path("/somewhere")
    assert root == default_spool_root(BufferedConsumer(region="us"))
    assert root != default_spool_root(eu)
    assert "s3cret" not in str(root) and "mixpanel" not in str(root)
    assert default_spool_root(lambda t, m: None) is None  # no destination: the temp form
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", "/cache-home")
    if sys.platform.startswith("linux"):
        assert cache_root() == Path("/cache-home/tracking-toolkit/spool")


def test_an_import_of_past_events_keeps_a_spool_of_its_own(monkeypatch):
    from consumers.posthog import PostHogConsumer

    monkeypatch.setenv(ENV_VAR, "/somewhere")
    live = PostHogConsumer("phc_key", region="eu")
    past = PostHogConsumer("phc_key", region="eu", historical_migration=True)
    # what the import keeps is never replayed by the live consumer, nor the other way round
    assert default_spool_root(past) != default_spool_root(live)
    assert default_spool_root(live) == default_spool_root(PostHogConsumer("phc_key", region="eu"))
    for consumer in (live, past):
        consumer.close()


def test_temp_spool_keeps_the_private_temporary_folder(collector):
    collector.fail_next(10_000, 503, path="/track")
    sink = BufferedConsumer(api_host=collector.url, retry=RetryPolicy(max_attempts=1))
    consumer = BackgroundConsumer(sink, spool=TEMP_SPOOL, probe_interval=0.05)
    consumer.send("event", json.dumps({"event": "e", "properties": {
        "token": "TOKEN", "distinct_id": "u", "time": 1700000000000, "$insert_id": "t-1"}}))
    assert consumer.flush(timeout=0.5) is False
    folder = consumer.spool_path
    assert folder is not None and folder.parent == Path(tempfile.gettempdir())
    assert folder.name.startswith(f"tracking-spool-{os.getpid()}-")
    consumer.close(timeout=1.0)
    assert consumer.stats()["spilled"] == 1
    shutil.rmtree(folder, ignore_errors=True)
