"""A user's program, written against the public API only.

CI type-checks it with ``mypy --strict`` against the installed package (it
must pass with no error), and runs it: it tracks into a local collector,
logs to a file and replays the log, and exits 0 when everything arrived.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from consumers import (
    BufferedConsumer,
    Collector,
    Consumer,
    DeliveryError,
    FileConsumer,
    ReplayResult,
    RetryPolicy,
    replay,
)
from tracker import InvalidInputError, People, Tracker


def track_signup(tracker: Tracker, user: str) -> bool:
    people: People = tracker.people
    sent = tracker.track(user, "Signed up", {"plan": "pro", "seats": 3})
    return people.increment(user, {"Logins": 1}) and sent


def replay_log(path: Path, url: str) -> ReplayResult:
    return replay(path, BufferedConsumer(Consumer(api_host=url), max_batch=100))


def main() -> int:
    with Collector() as collector:
        retry = RetryPolicy()
        direct = BufferedConsumer(api_host=collector.url, retry=retry)
        tracker = Tracker("project-token", direct)
        ok = track_signup(tracker, "user-1")
        tracker.groups.set("Company", "Acme", {"$name": "Acme, Inc."})
        direct.flush()
        try:
            tracker.track("user-1", "")
        except InvalidInputError as error:
            print(f"refused at the call site: {error}")
        with tempfile.TemporaryDirectory() as tmp:
            log = Path(tmp) / "events.log"
            with FileConsumer(log) as log_consumer:
                Tracker("project-token", log_consumer).track("user-2", "Logged in")
            try:
                result = replay_log(log, collector.url)
            except DeliveryError as error:
                print(f"replay failed: {error}")
                return 1
        tracked = len(collector.messages("track"))
        print(f"ok={ok} replayed={result.sent} tracked={tracked}")
        return 0 if ok and result.sent == 1 and tracked == 2 else 1


if __name__ == "__main__":
    sys.exit(main())
