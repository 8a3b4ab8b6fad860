"""The pytest plugin shipped with the package: two fixtures and the real-host guard.

Registered through the ``pytest11`` entry point, so any project that installs
the package has, in its own tests:

* ``tracking_collector``: a local collector on a free port (read API and fault
  plan as :class:`consumers.collector.Collector`), with every consumer and
  tracker made during the test pointed at it, whatever region they name;
* ``tracking_sink``: a :class:`~consumers.testing.RecordingSink`;
* a guard that fails any test that tries to reach a real Mixpanel or PostHog
  host, naming the call site.  Turn it off for one test with
  ``@pytest.mark.allow_real_tracking_hosts``, or for a project with the ini
  option ``tracking_guard = false``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from consumers.local import LOCAL_COLLECTOR_ENV
from consumers.testing.guard import RealHostGuard
from consumers.testing.sink import RecordingSink

__all__ = ["LOCAL_COLLECTOR_ENV", "tracking_collector", "tracking_sink"]

_MARKER = "allow_real_tracking_hosts"
_GUARD = RealHostGuard()
_CALL_FAILED = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "tracking_guard",
        "fail tests that try to reach real Mixpanel or PostHog hosts (default: true)",
        type="bool",
        default=True,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{_MARKER}: let this test reach real Mixpanel and PostHog hosts"
    )
    if config.getini("tracking_guard"):
        _GUARD.install()


def pytest_unconfigure(config: pytest.Config) -> None:
    _GUARD.uninstall()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed


@pytest.fixture(autouse=True)
def _tracking_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails the test for every refused attempt, including those its code swallowed.

    Checked after the test and its other fixtures finish, so an attempt made
    while a consumer flushes at teardown counts too.
    """
    allowed = request.node.get_closest_marker(_MARKER) is not None
    guarding = _GUARD.installed
    if allowed and guarding:
        _GUARD.uninstall()
    _GUARD.take()
    try:
        yield
    finally:
        if allowed and guarding:
            _GUARD.install()
    if request.node.stash.get(_CALL_FAILED, False):
        _GUARD.take()  # the test already failed (on the refusal itself, as a rule)
    else:
        _fail_on_attempts()


def _fail_on_attempts() -> None:
    attempts = _GUARD.take()
    if attempts:
        more = f" (and {len(attempts) - 1} more attempt(s))" if len(attempts) > 1 else ""
        pytest.fail(attempts[0].describe() + more, pytrace=False)


@pytest.fixture
def tracking_collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A running local collector; every consumer made in the test delivers to it.

    Yields a :class:`consumers.collector.Collector`: ``.url``, ``.unique("track")``,
    ``.messages(...)``, ``.requests()``, ``.stats()``, ``.fail_next(...)`` and the rest
    of its read API and fault plan.
    """
    from consumers.collector import Collector

    with Collector() as collector:
        monkeypatch.setenv(LOCAL_COLLECTOR_ENV, collector.url)
        yield collector


@pytest.fixture
def tracking_sink() -> RecordingSink:
    """A sink that records every message, decoded, with assertion helpers."""
    return RecordingSink()
