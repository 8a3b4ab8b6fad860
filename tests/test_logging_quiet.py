"""Logging by the library convention, in a real interpreter against the real collector.

An application that configures no logging sees nothing on stderr, even when
deliveries are retried and fail for good.  One that logs at DEBUG sees each
retry attempt at DEBUG and each lost batch once at ERROR.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# Three deliveries in one process, each retried and then lost for good:
#  1. Tracker -> Consumer: /track answers 503, 503, then 400 (twice: two batches);
#  2. Tracker -> BackgroundConsumer -> BufferedConsumer: one batch of 5, 503, 503, then
#     400 for the batch and for every part it is split into;
#  3. the PostHog client during an outage of /batch/, shut down with nothing spooled.
# argv: collector URL, then "configure" to log everything at DEBUG to stdout.
SCRIPT = r"""
import sys

if sys.argv[2:] == ["configure"]:
    import logging
    logging.basicConfig(level=logging.DEBUG, stream=sys.stdout,
                        format="%(levelname)s|%(name)s|%(message)s")
    logging.getLogger("urllib3").setLevel(logging.INFO)

import consumers
import tracker
from consumers import __all__ as consumer_names
from tracker import __all__ as tracker_names

for name in consumer_names:
    if name not in ("RedisStreamSink", "StreamWorker"):  # optional extra
        getattr(consumers, name)
for name in tracker_names:
    getattr(tracker, name)

from consumers import BackgroundConsumer, BufferedConsumer, Consumer, RetryPolicy
from consumers.posthog import POSTHOG_RETRY_STATUSES
from tracker import Tracker
from tracker.posthog import Client

url = sys.argv[1]
fast = dict(max_attempts=3, initial_backoff=0.001, rate_limit_backoff=0.001,
            max_backoff=0.01, jitter=0.0)

sync = Tracker("TOKEN", Consumer(api_host=url, retry=RetryPolicy(**fast)))
assert sync.track("user-1", "First") is False
assert sync.track("user-1", "Second") is False

background = BackgroundConsumer(
    BufferedConsumer(api_host=url, retry=RetryPolicy(**fast), max_batch=5),
    atexit_drain=False,
)
batched = Tracker("TOKEN", background)
for n in range(5):
    assert batched.track("user-2", f"Batched {n}") is True
background.close(timeout=10)
assert background.stats()["failed"] == 5, background.stats()

posthog = Client(
    "phc_project_key", host=url,
    consumer_options={"retry": RetryPolicy(retry_statuses=POSTHOG_RETRY_STATUSES, **fast)},
    background_options={"overflow": "drop", "probe_interval": 0.05, "atexit_drain": False},
)
assert posthog.capture("user-3", "movie played") is True
posthog.shutdown(timeout=0.5)
"""


BISECTED_400S = 9  # 5 -> 2 + 3 -> 1 + 1 + 1 + 2 -> 1 + 1


def run(collector: Any, *args: str) -> subprocess.CompletedProcess[str]:
    collector.fail_next(2, 503, path="/track")
    collector.fail_next(1, 400, path="/track")
    collector.fail_next(2, 503, path="/track")
    collector.fail_next(1, 400, path="/track")
    collector.fail_next(2, 503, path="/track")
    # a 400 is bisected down to single messages: 9 requests refuse all five of them
    collector.fail_next(BISECTED_400S, 400, path="/track")
    collector.fail_next(10_000, 503, path="/batch")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, collector.url, *args],
        env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=120,
    )


def records(stdout: str) -> list[tuple[str, str, str]]:
    """(level, logger, message) of each line the DEBUG configuration printed."""
    lines = [line.split("|", 2) for line in stdout.splitlines() if line.count("|") >= 2]
    return [(level, name, message) for level, name, message in lines]


def test_retries_and_failures_print_nothing_without_logging_configured(collector: Any) -> None:
    result = run(collector)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == ""
    # the faults were really met: every planned /track failure was used
    statuses = [r["status"] for r in collector.requests() if r["path"] == "/track"]
    assert statuses == [503, 503, 400] * 2 + [503, 503] + [400] * BISECTED_400S
    assert any(r["path"].startswith("/batch") for r in collector.requests())


def test_at_debug_each_retry_is_debug_and_each_lost_batch_one_error(collector: Any) -> None:
    result = run(collector, "configure")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    logged = records(result.stdout)

    retries = [(level, name) for level, name, message in logged
               if message.startswith("delivery attempt")]
    # /track: 2 retries in each of 3 batches; /batch/: 2 per flush of the outage
    assert retries.count(("DEBUG", "consumers.retry")) == len(retries) >= 6
    assert not any(level != "DEBUG" and "retrying" in message for level, _, message in logged)

    errors = [(name, message) for level, name, message in logged if level == "ERROR"]
    assert [name for name, _ in errors] == [
        "tracker", "tracker", "consumers.background", "tracker.posthog"
    ], errors
    assert "5 message(s) not delivered" in errors[2][1]
    assert "1 PostHog message(s) not delivered" in errors[3][1]

    kept = [level for level, name, message in logged if "kept to send again" in message]
    assert kept == ["WARNING"]  # not lost: reported once, not once per probe


def test_no_message_repeats_its_loggers_name(collector: Any) -> None:
    logged = records(run(collector, "configure").stdout)
    ours = [(name, message) for _, name, message in logged
            if name.split(".")[0] in ("tracker", "consumers")]
    assert ours
    for name, message in ours:
        for part in name.split("."):
            assert not message.lower().startswith(part), (name, message)
        assert not message.lower().startswith(("background consumer", "posthog:"))


def test_the_top_loggers_have_a_null_handler() -> None:
    import logging

    import consumers
    import tracker

    assert consumers and tracker
    for top in ("tracker", "consumers"):
        handlers = logging.getLogger(top).handlers
        assert [type(h) for h in handlers] == [logging.NullHandler]
