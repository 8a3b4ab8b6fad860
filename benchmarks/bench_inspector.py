"""The inspector with many stored messages: its JSON calls, and the page in headless Chromium.

    python benchmarks/bench_inspector.py [--messages 100000] [--rounds 5]

The collector runs as ``python -m consumers.collector`` in its own process;
the messages are sent in batches of 50 by a BufferedConsumer.  Reported:
median milliseconds per call (the first ``messages`` call also summarises
everything stored, so it is reported apart), and, when Chromium and
Playwright are installed, the time from navigation until the first page of
rows is on screen, and from typing a filter until the filtered rows are.
No peer library has an inspector, so there is nothing to compare with.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request

from _common import PROPS, CollectorProcess

from consumers import BufferedConsumer


def fill(url: str, count: int) -> float:
    consumer = BufferedConsumer(api_host=url)
    started = time.perf_counter()
    for i in range(count):
        consumer.send("event", json.dumps({"event": f"Event {i % 20}", "properties": {
            "token": "bench", "distinct_id": f"user-{i % 5000}", "time": 1_700_000_000_000 + i,
            "$insert_id": f"bench-{i}", **PROPS}}))
    consumer.flush()
    return time.perf_counter() - started


def get_ms(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as answer:
        answer.read()
    return (time.perf_counter() - started) * 1000


def rss_mb(pid: int) -> float:
    """The process's resident memory (Linux), in MB."""
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def calls(url: str, rounds: int, pid: int) -> dict[str, float]:
    base = url + "/_collector/inspector/"
    before = rss_mb(pid)
    first = get_ms(base + "messages")
    after = rss_mb(pid)
    last = json.loads(urllib.request.urlopen(base + "messages?limit=1", timeout=60).read())["last"]
    cases = {
        "messages, newest 100": "messages?limit=100",
        "messages, 100 older than the middle": f"messages?limit=100&before={last // 2}",
        "messages, filtered by event (1 in 20)": "messages?event=event%207&limit=100",
        "messages, filtered by a rare distinct_id (20 of all)": "messages?distinct_id=user-4242",
        "poll: after the newest (nothing new)": f"messages?after={last}",
        "state (counters, faults, refused)": "state",
        "one message": f"message?seq={last // 3}",
    }
    out = {"first messages call (summarises every stored message)": first,
           "collector RSS MB before the first call": before,
           "collector RSS MB after it": after}
    for name, path in cases.items():
        out[name] = statistics.median(get_ms(base + path) for _ in range(rounds))
    return out


def browser(url: str, rounds: int) -> dict[str, float]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("playwright is not installed: no browser figures", file=sys.stderr)
        return {}
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    loads, filters = [], []
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=chromium, args=args, headless=True)
        page = context.new_page()
        for _ in range(rounds):
            started = time.perf_counter()
            page.goto(url + "/_collector/inspector")
            page.wait_for_function("document.querySelectorAll('#messages tbody tr').length == 100")
            loads.append((time.perf_counter() - started) * 1000)
            dom = page.evaluate("document.querySelectorAll('#messages tbody tr').length")
            started = time.perf_counter()
            page.fill("#f-distinct_id", "user-4242")
            page.wait_for_function("document.querySelectorAll('#messages tbody tr').length == 20")
            filters.append((time.perf_counter() - started) * 1000)
        context.close()
    return {"page load until 100 rows shown": statistics.median(loads),
            "type a distinct_id filter until its 20 rows shown (200 ms debounce included)":
                statistics.median(filters),
            "message rows in the page (of 100,000 stored)": float(dom)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with CollectorProcess() as collector:
        seconds = fill(collector.url, args.messages)
        print(f"stored {collector.stats()['accepted']} messages in {seconds:.1f} s")
        for name, ms in {**calls(collector.url, args.rounds, collector.proc.pid),
                         **browser(collector.url, args.rounds)}.items():
            unit = "" if name.startswith(("message rows", "collector RSS")) else " ms"
            print(f"  {name}: {ms:.1f}{unit}")


if __name__ == "__main__":
    main()
