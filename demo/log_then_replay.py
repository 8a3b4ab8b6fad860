"""Log now, deliver later, from another process: the Ruby docs' log-then-replay pattern.

1. A web-app-like writer tracks events, profile and group updates with a
   ``Tracker`` whose sink is a ``FileConsumer`` spool folder: tracking costs
   one append to a local file and never waits for the network.
2. A separate process runs ``python -m consumers replay SPOOL --api-host URL``,
   which delivers the spool in confirmed batches (and could be killed and
   restarted at any moment without losing or double-counting anything).
3. The destination is an embedded local collector, so nothing leaves this
   machine; the script prints what it received.

Run: ``python demo/log_then_replay.py``
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from consumers import Collector  # noqa: E402
from consumers.file import FileConsumer, list_segments  # noqa: E402

USERS = 25
EVENTS_PER_USER = 8


def write_log(spool: str) -> int:
    """Track a small burst of activity into the spool; return how many messages were logged."""
    try:
        from tracker import Tracker
    except ImportError:  # the tracker is a separate part; fall back to hand-built messages
        return _write_by_hand(spool)
    count = 0
    with FileConsumer(spool, rotate_bytes=16_384, fsync="batch") as log:
        tracker = Tracker("demo-project-token", log)
        for u in range(USERS):
            user = f"user-{u:03d}"
            for e in range(EVENTS_PER_USER):
                tracker.track(user, "Page Viewed", {"page": f"/docs/{e}", "plan": "pro"})
                count += 1
            tracker.people.set(user, {"$name": f"User {u}", "Plan": "pro"}, ip=0)
            tracker.groups.set("Company", f"acme-{u % 3}", {"Seats": u})
            count += 2
        log.flush()
    return count


def _write_by_hand(spool: str) -> int:
    import json
    import time
    import uuid

    count = 0
    with FileConsumer(spool, rotate_bytes=16_384) as log:
        for u in range(USERS):
            for e in range(EVENTS_PER_USER):
                log.send("event", json.dumps({"event": "Page Viewed", "properties": {
                    "token": "demo-project-token", "distinct_id": f"user-{u:03d}",
                    "time": int(time.time() * 1000), "$insert_id": uuid.uuid4().hex,
                    "page": f"/docs/{e}"}}))
                count += 1
    return count


def replay_in_another_process(spool: str, url: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "consumers", "replay", spool, "--api-host", url,
         "--batch-size", "100"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


def describe(collector: Any) -> None:
    records = collector.records()
    by_endpoint = Counter(r["endpoint"] for r in records)
    print(f"collector received {len(records)} messages: "
          + ", ".join(f"{n} on /{e}" for e, n in sorted(by_endpoint.items())))
    print(f"unique events after $insert_id dedup: {len(collector.unique('track'))}")
    requests = collector.requests()
    print(f"in {len(requests)} HTTP requests of up to "
          f"{max((r['n_records'] for r in requests), default=0)} messages each")
    events = collector.messages("track")
    if events:
        first = events[0]
        print(f"first event: {first['event']!r} by {first['properties']['distinct_id']} "
              f"($insert_id {first['properties']['$insert_id']})")


def main() -> int:
    """Run the whole pipeline; return 0 when the collector received every logged message."""
    with tempfile.TemporaryDirectory() as tmp, Collector() as collector:
        spool = os.path.join(tmp, "spool") + "/"
        logged = write_log(spool)
        segments = list_segments(spool)
        print(f"logged {logged} messages into {len(segments)} segment(s) of {spool}")
        proc = replay_in_another_process(spool, collector.url)
        sys.stdout.write(f"replay process (exit {proc.returncode}): {proc.stdout}")
        if proc.stderr:
            sys.stdout.write(proc.stderr)
        describe(collector)
        ok = proc.returncode == 0 and len(collector.records()) == logged
        print("all messages delivered" if ok else "NOT everything was delivered")
        return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
