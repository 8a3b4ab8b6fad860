"""The inspector page in a real browser: headless Chromium, driven by Playwright.

Chromium is Debian's (``apt-get install chromium``, at /usr/bin/chromium or
$CHROMIUM) and Playwright's Python package drives it; .ci/run installs both.
The screenshot is kept in $TRACKING_TOOLKIT_ARTIFACTS (.ci/run sets it),
else in the test's tmp_path.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.collector_messages import form

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def page(tmp_path: Path) -> Iterator:
    """A fresh page in headless Chromium, with a user-data-dir of its own."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set $CHROMIUM)")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, args=ARGS,
            headless=True, viewport={"width": 1400, "height": 900})
        try:
            yield context.new_page()
        finally:
            context.close()


def artifact(tmp_path: Path, name: str) -> Path:
    folder = Path(os.environ.get("TRACKING_TOOLKIT_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def test_tracked_events_appear_live_filter_and_open(collector, session, page, tmp_path):
    from playwright.sync_api import expect

    from consumers import Consumer
    from tracker import Tracker

    page.goto(f"{collector.url}/_collector/inspector")
    expect(page.locator("#live")).to_have_text("live")
    expect(page.locator("#no-messages")).to_be_visible()
    page.evaluate("window.notReloaded = true")

    tracker = Tracker("browser-token", Consumer(api_host=collector.url))
    assert tracker.track("ann", "Signed up", {"plan": "pro"})
    assert tracker.track("bob", "Purchased", {"amount": 42})
    assert tracker.people.set("bob", {"$name": "Bob"})
    session.post(f"{collector.url}/track", data=form({"event": "x", "properties": {}}),
                 timeout=30)
    collector.fail_next(2, 503, path="/engage")

    rows = page.locator("#messages tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("profile_update")
    expect(rows.nth(1)).to_contain_text("Purchased")
    expect(rows.nth(2)).to_contain_text("Signed up")
    refused = page.locator("#refused tbody tr")
    expect(refused).to_have_count(1)  # the page's own requests are not in the log
    expect(refused).to_contain_text("POST /track")
    expect(refused).to_contain_text("'properties.token' is required (1 of 1 records refused)")
    expect(page.locator("#faults")).to_contain_text("next 2 request(s) to /engage: answer 503")
    expect(page.locator("#counters tbody")).to_contain_text("track")
    assert page.evaluate("window.notReloaded") is True

    page.fill("#f-distinct_id", "bob")
    expect(rows).to_have_count(2)
    expect(page.locator("#summary")).to_have_text("2 matching of 3 stored")
    page.fill("#f-event", "purch")
    expect(rows).to_have_count(1)
    rows.nth(0).click()
    expect(page.locator("#detail")).to_contain_text('"event": "Purchased"')
    expect(page.locator("#detail")).to_contain_text('"amount": 42')

    # still live while filtered: a new matching event shows up, others do not
    assert tracker.track("bob", "Purchased again")
    assert tracker.track("ann", "Purchased too")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("Purchased again")
    assert page.evaluate("window.notReloaded") is True

    shot = artifact(tmp_path, "inspector.png")
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    page.click("#clear")
    expect(rows).to_have_count(0)
    expect(refused).to_have_count(0)
    assert collector.stats()["requests"] == 0


def test_many_messages_are_paged_not_all_put_in_the_page(collector, page):
    from playwright.sync_api import expect

    from consumers import BufferedConsumer

    consumer = BufferedConsumer(api_host=collector.url)
    for i in range(2000):
        consumer.send("event", json.dumps({"event": f"Event {i}", "properties": {
            "token": "tok", "distinct_id": f"user-{i % 10}", "time": 1_700_000_000_000 + i,
            "$insert_id": f"many-{i}"}}))
    consumer.flush()
    page.goto(f"{collector.url}/_collector/inspector")
    rows = page.locator("#messages tbody tr")
    expect(rows).to_have_count(100)
    expect(rows.nth(0)).to_contain_text("Event 1999")
    expect(page.locator("#summary")).to_have_text("2000 stored")
    for shown in (200, 300, 400, 500, 500):
        page.click("#older")
        expect(rows).to_have_count(shown)  # never more than the window of 500
    expect(rows.nth(499)).to_contain_text("Event 1400")
    page.fill("#f-distinct_id", "user-3")
    expect(page.locator("#summary")).to_have_text("200 matching of 2000 stored")
    expect(rows).to_have_count(100)
    expect(rows.nth(0)).to_contain_text("Event 1993")
