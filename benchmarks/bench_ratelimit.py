"""Under a rate limit: 429s provoked, events delivered before shutdown returned, wall time.

The collector (its own process, ``python -m consumers.collector --rate-limit N``)
admits N requests per second on each endpoint and answers the rest 429 with
``Retry-After``.  Each client, with its DEFAULT settings, tracks the events
from one thread as fast as it can, then shuts down; the collector is asked
at once how many distinct events it accepted.  Clients:

* ours: ``Tracker`` -> ``BackgroundConsumer(BufferedConsumer(...))``, then ``close()``;
* ``posthog`` (``Posthog.capture``), then ``flush()`` + ``shutdown()``;
* ``segment-analytics-python`` (``Client.track``), then ``flush()`` + ``join()``.

The clients run interleaved, round by round, so the machine's noise hits all
alike; medians over the rounds with the spread (min-max).  Goal for ours:
every event delivered before ``close()`` returns, at most a third of the best
peer's 429s, and no slower than the best peer.

    python3 benchmarks/bench_ratelimit.py [--rounds 3] [--settings 5:5000,2:3000]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from typing import Any, Callable

from _common import CollectorProcess
from bench_background import Client, Ours, PostHogPeer, SegmentPeer, received

_PATHS = {"track": "/track", "posthog": "/batch", "segment": "/v1/batch"}


def refused(collector: CollectorProcess, endpoint: str) -> int:
    """429s the collector answered on the client's endpoint since the last reset."""
    path = _PATHS[endpoint]
    return sum(1 for r in collector.get("/_collector/requests")
               if r["status"] == 429 and r["path"].startswith(path))


def requests_made(collector: CollectorProcess, endpoint: str) -> int:
    path = _PATHS[endpoint]
    return sum(1 for r in collector.get("/_collector/requests") if r["path"].startswith(path))


def run_once(make: Callable[[], Client], collector: CollectorProcess, n: int) -> dict[str, Any]:
    collector.reset()
    time.sleep(1.1)  # the limiter's window from the previous client is over
    client = make()
    marker = f"rl-{os.urandom(4).hex()}"
    started = time.perf_counter()
    for _ in range(n):
        client.call(marker)
    client.finish()
    wall = time.perf_counter() - started
    got = received(collector, client.endpoint, marker)
    return {"name": client.name, "delivered": got, "sent": n, "wall_s": wall,
            "429s": refused(collector, client.endpoint),
            "requests": requests_made(collector, client.endpoint)}


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.4g} ({min(values):.4g}-{max(values):.4g})"


def setting(per_second: int, n: int, rounds: int, spool: str) -> None:
    print(f"\n## {per_second} requests/s per endpoint, {n} events, {rounds} rounds")
    with CollectorProcess("--rate-limit", str(per_second)) as collector:
        makers: dict[str, Callable[[], Client]] = {
            "ours": lambda: Ours(collector.url, spool),
            "posthog": lambda: PostHogPeer(collector.url),
            "segment": lambda: SegmentPeer(collector.url),
        }
        rows: dict[str, list[dict[str, Any]]] = {k: [] for k in makers}
        for _ in range(rounds):
            for key, make in makers.items():
                rows[key].append(run_once(make, collector, n))
    print(f"{'client':58} {'delivered':>18} {'429s':>14} {'requests':>14} {'wall s':>20}")
    for results in rows.values():
        print(f"{results[0]['name'][:58]:58} "
              f"{_spread([r['delivered'] for r in results]):>18} "
              f"{_spread([r['429s'] for r in results]):>14} "
              f"{_spread([r['requests'] for r in results]):>14} "
              f"{_spread([r['wall_s'] for r in results]):>20}")
    ours = rows["ours"]
    best_429 = min(statistics.median([r["429s"] for r in rows[k]]) for k in ("posthog", "segment"))
    best_wall = min(statistics.median([r["wall_s"] for r in rows[k]])
                    for k in ("posthog", "segment"))
    all_delivered = all(r["delivered"] == n for r in ours)
    ours_429 = statistics.median([r["429s"] for r in ours])
    ours_wall = statistics.median([r["wall_s"] for r in ours])
    print(f"ours delivered every event before close() returned in every round: {all_delivered}")
    print(f"ours 429s {ours_429:g} vs best peer {best_429:g} (goal: at most a third)")
    print(f"ours wall {ours_wall:.3g} s vs best peer {best_wall:.3g} s "
          f"(ratio {ours_wall / best_wall:.2f}; goal: at most 1)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settings", default="5:5000,2:3000",
                        help="comma-separated PER_SECOND:EVENTS (default: %(default)s)")
    args = parser.parse_args()
    # the peers log every 429 they get; the figures are what matters here
    for name in ("posthog", "segment", "analytics", "consumers", "backoff"):
        logging.getLogger(name).disabled = True
    with tempfile.TemporaryDirectory() as spool:
        for spec in args.settings.split(","):
            per_second, n = (int(x) for x in spec.split(":"))
            setting(per_second, n, args.rounds, spool)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
