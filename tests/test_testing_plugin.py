"""The test kit users install: RecordingSink, the real-host guard, and the pytest plugin.

The plugin is exercised the way a user meets it: a project outside this
repository (the example under demo/testing_example, and projects written
by the tests) runs its own pytest in a real subprocess, with nothing but
the installed package providing the fixtures.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

from consumers import Consumer
from consumers.testing import RealHostError, RealHostGuard, RecordingSink
from tracker import Tracker

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "demo" / "testing_example"


# -- RecordingSink -----------------------------------------------------------------
def test_recording_sink_keeps_each_call_decoded_by_type() -> None:
    sink = RecordingSink()
    tracker = Tracker("tok", sink)
    tracker.track("u1", "Signed Up", {"plan": "pro", "seats": 3, "meta": {"a": 1, "b": 2}})
    tracker.people.set("u1", {"plan": "pro"})
    tracker.groups.set("company", "acme", {"size": 10})

    assert [r.type for r in sink] == ["event", "profile_update", "group_update"]
    assert len(sink.events) == 1 and sink.events[0]["event"] == "Signed Up"
    assert sink.profile_updates[0]["$set"] == {"plan": "pro"}
    assert sink.group_updates[0]["$group_key"] == "company"
    record = sink.assert_tracked(
        "Signed Up", distinct_id="u1", properties={"plan": "pro", "meta": {"a": 1}}
    )
    assert record.properties["seats"] == 3
    sink.assert_tracked(type="profile_update", distinct_id="u1", properties={"$set": {}})
    sink.assert_tracked("Signed Up", count=1)
    sink.assert_not_tracked("Signed Up", distinct_id="u2")


def test_assert_tracked_failure_names_what_was_wanted_and_what_came() -> None:
    sink = RecordingSink()
    Tracker("tok", sink).track("u1", "Signed Up", {"plan": "free"})

    with pytest.raises(AssertionError) as failure:
        sink.assert_tracked("Signed Up", properties={"plan": "pro"})
    text = str(failure.value)
    assert "event='Signed Up'" in text and "'plan': 'pro'" in text
    assert '"plan": "free"' in text  # what was recorded instead
    with pytest.raises(AssertionError, match="2 time"):
        sink.assert_tracked("Signed Up", count=2)
    with pytest.raises(AssertionError, match="expected no messages"):
        sink.assert_no_events()
    sink.assert_no_events(type="profile_update")
    sink.clear()
    sink.assert_no_events()


def test_recording_sink_refuses_what_no_tracker_makes() -> None:
    sink = RecordingSink()
    with pytest.raises(ValueError, match="not valid JSON"):
        sink("event", "{not json")
    with pytest.raises(ValueError, match="must be a JSON object, got list"):
        sink("event", "[1]")
    assert len(sink) == 0


# -- the guard ---------------------------------------------------------------------
def test_guard_refuses_a_real_host_and_names_the_call_site() -> None:
    message = json.dumps({"event": "x", "properties": {"token": "t", "distinct_id": "u"}})
    with RealHostGuard() as guard:
        with pytest.raises(RealHostError) as refused:
            Consumer(region="eu").send("event", message)
        [attempt] = guard.take()
    assert attempt.host == "api-eu.mixpanel.com"
    here = f"{__file__}:"
    assert here in attempt.call_site and "test_guard_refuses" in attempt.call_site
    assert "api-eu.mixpanel.com" in str(refused.value) and here in str(refused.value)


@pytest.mark.parametrize(
    "host", ["api.mixpanel.com", "API-IN.MIXPANEL.COM.", "us.i.posthog.com", b"eu.i.posthog.com"]
)
def test_guard_covers_every_mixpanel_and_posthog_host(host: object) -> None:
    with RealHostGuard() as guard:
        with pytest.raises(RealHostError):
            socket.getaddrinfo(host, 443)  # type: ignore[arg-type]
        assert len(guard.take()) == 1


def test_guard_leaves_every_other_host_alone() -> None:
    with RealHostGuard() as guard:
        assert socket.getaddrinfo("127.0.0.1", 80)
        with pytest.raises(OSError):  # a look-alike name is not refused, only unknown
            socket.getaddrinfo("notmixpanel.com.invalid", 443)
        assert guard.take() == []
    assert not guard.installed


# -- the plugin, from a project of its own -----------------------------------------
def test_the_plugin_is_registered_by_entry_point() -> None:
    found = metadata.entry_points()
    group = found.select(group="pytest11") if hasattr(found, "select") else found["pytest11"]
    names = {ep.name: ep.value for ep in group}
    assert names.get("tracking_toolkit") == "consumers.testing.plugin"


def _run_pytest(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "TRACKING_"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", *args],
        cwd=project, env=env, capture_output=True, text=True, timeout=240,
    )


def _outcomes(result: subprocess.CompletedProcess[str]) -> dict[str, int]:
    tail = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    return {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|error)", tail)}


def test_the_example_project_passes_with_only_the_installed_package(tmp_path: Path) -> None:
    project = tmp_path / "example"
    shutil.copytree(EXAMPLE, project)
    result = _run_pytest(project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _outcomes(result) == {"passed": 4}, result.stdout


def test_a_test_that_reaches_a_real_host_fails_with_the_line_that_did(tmp_path: Path) -> None:
    (tmp_path / "test_leak.py").write_text(textwrap.dedent("""
        from consumers import BufferedConsumer, Consumer
        from consumers.background import BackgroundConsumer
        from tracker import Tracker

        def test_sync_send():
            Tracker("tok", Consumer(region="eu")).track("u1", "Leaked")

        def test_background_send_swallowed_by_the_consumer():
            consumer = BackgroundConsumer(BufferedConsumer())
            Tracker("tok", consumer).track("u1", "Leaked")
            consumer.close()

        def test_local_is_fine(tracking_collector):
            Tracker("tok", Consumer(region="in")).track("u1", "Kept")
            assert tracking_collector.unique("track")[0]["event"] == "Kept"
    """))
    result = _run_pytest(tmp_path)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "PASSED test_leak.py::test_local_is_fine" in out
    assert "FAILED test_leak.py::test_sync_send" in out
    # the consumer reported the refusal as a loss and went on: the plugin fails the test
    assert "ERROR test_leak.py::test_background_send_swallowed_by_the_consumer" in out
    assert "ERROR test_leak.py::test_sync_send" not in out  # failed once, not twice
    assert out.count("tried to reach the real host api-eu.mixpanel.com") >= 1
    assert "tried to reach the real host api.mixpanel.com" in out
    assert re.search(r"test_leak\.py:7 in test_sync_send", out), out
    assert "tracking-background-consumer" in out  # the thread that tried is named


def test_the_guard_can_be_turned_off_per_test_and_per_project(tmp_path: Path) -> None:
    (tmp_path / "test_allowed.py").write_text(textwrap.dedent("""
        import socket
        import pytest

        @pytest.mark.allow_real_tracking_hosts
        def test_marked():
            try:
                socket.getaddrinfo("api.mixpanel.com", 443)
            except OSError:
                pass  # no network here: the lookup was made, not refused

        def test_unmarked():
            socket.getaddrinfo("api.mixpanel.com", 443)
    """))
    result = _run_pytest(tmp_path)
    assert "PASSED test_allowed.py::test_marked" in result.stdout, result.stdout
    assert "FAILED test_allowed.py::test_unmarked" in result.stdout, result.stdout

    (tmp_path / "pytest.ini").write_text("[pytest]\ntracking_guard = false\n")
    result = _run_pytest(tmp_path, "test_allowed.py::test_marked")
    assert result.returncode == 0, result.stdout
