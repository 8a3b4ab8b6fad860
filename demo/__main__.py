"""The toolkit's main job, end to end, against an embedded local collector.

1. Tracking through a custom block (the Ruby library's ``Tracker.new(token) do |type, message|``).
2. Log now, replay later: the app writes a log; a second process replays it.
3. EU data residency: everything the tracker sends, alias included, goes to the EU host.

Nothing leaves the machine: the collector listens on 127.0.0.1, and requests for
Mixpanel's real hostnames are routed to it (see ``demo/_local_routing.py``).
Run with ``python3 -m demo``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from consumers import BufferedConsumer, Consumer, FileConsumer
from consumers.collector import Collector
from demo._local_routing import local_session
from tracker import Tracker

TOKEN = "demo-project-token"
ROOT = Path(__file__).resolve().parent.parent


def custom_block(collector: Collector) -> None:
    """The Ruby block form: any callable receives ``(type, message_json)``."""
    print("\n1. Tracking through a custom block")
    consumer = BufferedConsumer(api_host=collector.url)
    seen: Counter[str] = Counter()

    def block(type_: str, message: str) -> None:
        seen[type_] += 1
        consumer.send(type_, message)

    tracker = Tracker(TOKEN, block)
    tracker.track("user-1", "Sent Message")
    tracker.track("user-1", "Plan Upgraded", {"Old Plan": "Business", "New Plan": "Premium"})
    tracker.people.set("user-1", {"$first_name": "John", "$email": "john.doe@example.com"},
                       ip=0, optional_params={"$ignore_time": True})
    tracker.people.increment("user-1", {"Logins used": 1, "Logins remaining": -1})
    tracker.groups.set("Company", "Acme", {"$name": "Acme, Inc.", "plan": "Premium"})
    consumer.flush()
    consumer.close()
    print(f"   the block saw {dict(seen)}")


def log_then_replay(collector: Collector) -> None:
    """The app logs tuples; another process replays the log into the service."""
    print("\n2. Log now, replay later (in another process)")
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "mixpanel.log"
        with FileConsumer(log) as log_consumer:
            tracker = Tracker(TOKEN, log_consumer)
            for n in range(200):
                tracker.track(f"user-{n % 7}", "Page Viewed", {"page": f"/docs/{n}"})
            tracker.people.increment("user-1", {"Messages Sent": 1})
        print(f"   wrote {sum(1 for _ in log.open())} lines to {log.name}")
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        done = subprocess.run(
            [sys.executable, "-m", "consumers", "replay", str(log), "--api-host", collector.url],
            env=env, capture_output=True, text=True, check=False,
        )
        said = done.stdout.strip() or done.stderr.strip()
        print(f"   replay process exited {done.returncode}: {said}")


def eu_routing(collector: Collector) -> None:
    """``region="eu"`` reaches every request, including the synchronous alias."""
    print("\n3. EU data residency")
    hosts = ("api.mixpanel.com", "api-eu.mixpanel.com", "api-in.mixpanel.com")
    session = local_session(collector.url, hosts)
    eu = BufferedConsumer(Consumer(region="eu", session=session))
    tracker = Tracker(TOKEN, eu)
    tracker.track("user-eu", "Signed Up", {"plan": "pro"})
    tracker.alias("user-eu", "anon-42")      # sent at once, to the EU host as well
    tracker.people.set("user-eu", {"$name": "Ada"})
    eu.flush()
    by_host = Counter(r["headers"].get("Host", "?") for r in collector.requests()
                      if r["headers"].get("Host", "").startswith("api"))
    print(f"   requests per host: {dict(by_host)}")


def main() -> None:
    """Run the three scenarios and print what the collector received."""
    with Collector() as collector:
        print(f"local collector on {collector.url}")
        custom_block(collector)
        log_then_replay(collector)
        eu_routing(collector)
        stats = collector.stats()
        print("\nWhat the collector received:")
        for endpoint in ("track", "engage", "groups", "import"):
            raw = len(collector.messages(endpoint))
            unique = len(collector.unique(endpoint))
            print(f"   /{endpoint:<7} {raw:4d} messages, {unique:4d} after deduplication")
        print(f"   {stats.get('requests', '?')} requests in all")


if __name__ == "__main__":
    main()
