"""The toolkit's three uses, end to end, against an embedded local collector.

1. Tracking through a custom block (the Ruby library's ``Tracker.new(token) do |type, message|``).
2. Log now, replay later: the app writes a log; a second process replays it.
3. EU data residency: everything the tracker sends, alias included, goes to the EU host.

Nothing leaves the machine: a collector listens on 127.0.0.1, and
``consumers.use_local_collector`` sends it what the code meant for Mixpanel's
real hosts (the host chosen travels in the ``X-Forwarded-Host`` header).
Run with ``python3 -m demo`` (``--help`` for the options).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from consumers import BufferedConsumer, FileConsumer, use_local_collector
from consumers.collector import Collector
from tracker import Tracker

TOKEN = "demo-project-token"
ROOT = Path(__file__).resolve().parent.parent
HERE = "demo/__main__.py"


def custom_block(collector: Collector) -> None:
    """The Ruby block form: any callable receives ``(type, message_json)``."""
    print(f"\n1. Tracking through a custom block  (code: {HERE}, custom_block)")
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
    consumer.close()  # a BufferedConsumer sends on flush or close
    print(f"   the block was called {sum(seen.values())} times: {dict(seen)}")
    print("   (event = track, profile_update = people.*, group_update = groups.*); it handed")
    print(f"   each tuple to a BufferedConsumer posting to the collector at {collector.url}")


def log_then_replay(collector: Collector, log_dir: Path) -> None:
    """The app logs tuples; another process replays the log into the service."""
    print(f"\n2. Log now, replay later, in another process  (code: {HERE}, log_then_replay)")
    log = log_dir / "mixpanel.log"
    with FileConsumer(log) as log_consumer:
        tracker = Tracker(TOKEN, log_consumer)
        for n in range(200):
            tracker.track(f"user-{n % 7}", "Page Viewed", {"page": f"/docs/{n}"})
        tracker.people.increment("user-1", {"Messages Sent": 1})
    with log.open(encoding="utf-8") as lines:
        count = sum(1 for _ in lines)
    print(f"   the app wrote {count} lines to {log}")
    print("   (one JSON line [type, message_json] per call, as the Ruby library's block writes)")
    command = [sys.executable, "-m", "consumers", "replay", str(log), "--api-host", collector.url]
    print(f"   then ran: python -m consumers replay {log} --api-host {collector.url}")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    said = done.stdout.strip() or done.stderr.strip()
    print(f"   the replay process exited {done.returncode} and said:\n     {said}")
    print("   sent: messages the collector confirmed; rejected: lines set aside in the reject")
    print("   file, of which corrupt = unreadable lines and refused = refused by the service;")
    print("   torn: a last line still without its newline (a writer mid-write), left for the")
    print(f"   next run. Progress is kept in {log}.checkpoint: a second run sends nothing twice.")


def eu_routing(collector: Collector) -> None:
    """``region="eu"`` reaches every request, including the synchronous alias."""
    print(f"\n3. EU data residency  (code: {HERE}, eu_routing)")
    before = len(collector.requests())
    with use_local_collector(collector.url):
        eu = BufferedConsumer(region="eu")  # exactly what production code writes
        tracker = Tracker(TOKEN, eu)
        tracker.track("user-eu", "Signed Up", {"plan": "pro"})
        tracker.alias("user-eu", "anon-42")  # sent at once, to the EU host as well
        tracker.people.set("user-eu", {"$name": "Ada"})
        eu.close()
    meant = Counter(
        str(r["headers"].get("X-Forwarded-Host")) for r in collector.requests()[before:]
    )
    print('   BufferedConsumer(region="eu") chose the hosts below; each request was served by')
    print(f"   the local collector at {collector.url} instead (use_local_collector), so none")
    print("   left the machine. Requests per host the code chose:")
    for host, n in sorted(meant.items()):
        print(f"     {host}: {n} request(s), served locally")
    print("   (the alias went at once, on its own request; the event and the profile update")
    print("   went as batches on close)")


def summary(collector: Collector) -> None:
    """What the collector received, and what each number means."""
    stats = collector.stats()
    print("\nWhat the local collector received (collector.stats(), collector.messages()):")
    for endpoint in ("track", "engage", "groups", "import"):
        raw = len(collector.messages(endpoint))
        unique = len(collector.unique(endpoint))
        print(f"   /{endpoint:<7} {raw:4d} messages accepted, {unique:4d} after deduplication")
    print(f"   {stats.get('requests', '?')} HTTP requests in all")
    print("   /track holds events (aliases too), /engage profile updates, /groups group updates,")
    print("   /import historical events. Deduplication is Mixpanel's: events with the same")
    print("   $insert_id, time, name and distinct_id count once, so a resent event (a retry")
    print("   after a lost answer, a replay after a crash) does not count twice.")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The demo's options (``--help`` prints them and exits)."""
    parser = argparse.ArgumentParser(
        prog="python -m demo",
        description=(
            "Run the toolkit's three uses against an embedded local collector on 127.0.0.1: "
            "tracking through a custom block, log-then-replay in a second process, and EU "
            "data residency. Nothing leaves the machine. Each part's code is in "
            "demo/__main__.py; more scenarios: python -m demo.log_then_replay, "
            "python -m demo.posthog_demo, python -m demo.web_app, python -m demo.redis_pipeline."
        ),
    )
    parser.add_argument(
        "--log-dir", type=Path, default=None,
        help="folder for the log of part 2, kept after the demo (default: a new folder under "
             "the temporary directory, kept too; its path is printed)",
    )
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Run the three scenarios and say what the collector received."""
    args = parse_args(argv)
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="tracking-demo-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    with Collector() as collector:
        print(f"A local collector (consumers.collector) is listening on {collector.url}.")
        print("Everything below is sent to it; nothing leaves this machine.")
        custom_block(collector)
        log_then_replay(collector, log_dir)
        eu_routing(collector)
        summary(collector)
    print(f"\nThe log of part 2 is kept in {log_dir} (mixpanel.log and its checkpoint);")
    print(f"delete the folder when done, or choose it with --log-dir. Code: {HERE}.")


if __name__ == "__main__":
    main()
