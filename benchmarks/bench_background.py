"""Background delivery: caller cost, end-to-end throughput and losses, next to two peers.

Clients, each sending to the same local collector (a separate process,
``python -m consumers.collector``):

* ours: ``Tracker`` -> ``BackgroundConsumer`` -> ``BufferedConsumer`` (defaults);
  also ``BackgroundConsumer.send`` alone (the queueing cost without message building);
* ``posthog`` (``Posthog.capture``) -> the collector's PostHog ``/batch/``;
* ``segment-analytics-python`` (``Client.track``) -> ``/v1/batch``.

Phases:

1. caller cost: each call timed with ``perf_counter_ns`` (median, p99) while the
   client's own worker delivers in the background; measured twice where the
   machine has two CPUs or more: (a) with the collector on a CPU of its own, as
   a remote service would be, and (b) with the collector sharing the client's
   CPUs, where the scheduler pauses the caller for whole time slices while the
   collector works (that shows in p99, for every client alike);
2. burst: ``--burst`` events as fast as possible, then flush; events/s from the
   first call until the collector has them, client CPU per event
   (``time.process_time``), and delivered vs sent (what each client lost).

    python3 benchmarks/bench_background.py [--calls 5000] [--rounds 3] [--burst 50000]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from typing import Any, Callable, Optional

from _common import PROPS, CollectorProcess

from consumers.background import BackgroundConsumer
from consumers.buffered import BufferedConsumer
from tracker import Tracker


# -- what arrived ---------------------------------------------------------------------
def received(collector: CollectorProcess, endpoint: str, marker: str) -> int:
    """Distinct events with ``marker`` in their name that the collector accepted."""
    seen = set()
    for record in collector.records(endpoint):
        message = record.get("message", record)
        if marker not in str(message.get("event", "")):
            continue
        props = message.get("properties") or {}
        seen.add(message.get("uuid") or message.get("messageId") or props.get("$insert_id")
                 or json.dumps(message, sort_keys=True))
    return len(seen)


# -- clients -----------------------------------------------------------------------------
class Client:
    """One client under test: ``call(event_name)`` tracks; ``finish()`` delivers everything."""

    name = ""
    endpoint = ""

    def call(self, event: str) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        raise NotImplementedError


class Ours(Client):
    endpoint = "track"

    max_batch: Optional[int] = None

    def __init__(self, url: str, spool: str) -> None:
        batch = {} if self.max_batch is None else {"max_batch": self.max_batch}
        self.name = "ours: Tracker -> BackgroundConsumer" + (
            f" (max_batch={self.max_batch})" if self.max_batch else "")
        self.consumer = BackgroundConsumer(BufferedConsumer(api_host=url, **batch), spool=spool)
        self.tracker = Tracker("TOKEN", self.consumer)

    def call(self, event: str) -> None:
        self.tracker.track("user-1234", event, PROPS)

    def finish(self) -> None:
        self.consumer.close(timeout=600)


class OursBigBatch(Ours):
    """Mixpanel accepts 2000 events per request: fewer requests, less worker time per event."""

    max_batch = 1000


class OursSend(Ours):
    """The queueing cost alone: a prebuilt message handed to ``send``."""

    def __init__(self, url: str, spool: str) -> None:
        super().__init__(url, spool)
        self.name = "ours: BackgroundConsumer.send only"
        self._prefix = '{"event":"'
        self._rest = ('","properties":{"token":"TOKEN","distinct_id":"user-1234",'
                      '"time":1700000000000,"$insert_id":"%s","plan":"premium"}}')
        self._n = 0

    def call(self, event: str) -> None:
        self._n += 1
        self.consumer.send("event", self._prefix + event + self._rest % self._n)


class PostHogPeer(Client):
    endpoint = "posthog"

    def __init__(self, url: str) -> None:
        import posthog

        self.name = f"posthog {posthog.VERSION}: Posthog.capture"
        self.client = posthog.Posthog("phc_bench", host=url, disable_geoip=True)

    def call(self, event: str) -> None:
        self.client.capture(event, distinct_id="user-1234", properties=PROPS)

    def finish(self) -> None:
        self.client.flush()
        self.client.shutdown()


class SegmentPeer(Client):
    endpoint = "segment"

    def __init__(self, url: str) -> None:
        from segment.analytics.client import Client as SegmentClient
        from segment.analytics.version import VERSION

        self.name = f"segment-analytics-python {VERSION}: Client.track"
        self.client = SegmentClient("write-key", host=url)

    def call(self, event: str) -> None:
        self.client.track("user-1234", event, PROPS)

    def finish(self) -> None:
        self.client.flush()
        self.client.join()


# -- measurements --------------------------------------------------------------------------
def timed(fn: Callable[[str], None], event: str, calls: int) -> list[int]:
    clock = time.perf_counter_ns
    out = []
    for _ in range(calls):
        t0 = clock()
        fn(event)
        out.append(clock() - t0)
    return out


def caller_cost(make: Callable[[], Client], calls: int, rounds: int) -> tuple[str, float, float]:
    medians, p99s = [], []
    name = ""
    for r in range(rounds):
        client = make()
        name = client.name
        timed(client.call, f"warmup-{r}", 200)
        samples = sorted(timed(client.call, f"cost-{r}", calls))
        medians.append(statistics.median(samples))
        p99s.append(samples[int(len(samples) * 0.99)])
        client.finish()
    return name, statistics.median(medians), statistics.median(p99s)


def burst(make: Callable[[], Client], collector: CollectorProcess, n: int) -> dict[str, Any]:
    client = make()
    marker = f"burst-{os.urandom(4).hex()}"
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        client.call(marker)
    sent_s = time.perf_counter() - wall0
    client.finish()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    got = received(collector, client.endpoint, marker)
    return {"name": client.name, "sent": n, "delivered": got, "lost": n - got,
            "events_per_s": got / wall, "cpu_us_per_event": cpu / n * 1e6,
            "send_loop_s": sent_s, "wall_s": wall}


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--burst", type=int, default=50_000)
    args = parser.parse_args(argv)
    # peers log one warning per dropped event (counted below instead)
    # (posthog resets its logger's level in every constructor, so levels are not enough)
    for name in ("posthog", "segment", "analytics", "consumers"):
        logging.getLogger(name).disabled = True

    collector = CollectorProcess()
    url = collector.url
    spool = tempfile.mkdtemp(prefix="bench-spool-")
    makers: dict[str, Callable[[], Client]] = {
        "ours": lambda: Ours(url, spool),
        "ours-1000": lambda: OursBigBatch(url, spool),
        "ours-send": lambda: OursSend(url, spool),
        "posthog": lambda: PostHogPeer(url),
        "segment": lambda: SegmentPeer(url),
    }
    try:
        print(f"Python {sys.version.split()[0]}, collector {url} (separate process), "
              f"{os.cpu_count()} CPUs")
        placements = [("collector sharing the client's CPUs", False)]
        if collector.separate_cpus():
            placements.insert(0, ("collector on a CPU of its own, as a remote service is", True))
        for i, (placement, alone) in enumerate(placements):
            if alone:
                collector.separate_cpus()
            else:
                collector.share_cpus()
            print(f"\n1{'ab'[i]}. caller cost, {placement}: "
                  f"{args.rounds} rounds x {args.calls} timed calls")
            costs = {}
            for key, make in makers.items():
                collector.reset()
                costs[key] = caller_cost(make, args.calls, args.rounds)
            best_peer = min(("posthog", "segment"), key=lambda k: costs[k][1])
            print(f"{'client':58s} {'median':>9s} {'p99':>9s} {'x best peer':>12s}")
            for _key, (name, med, p99) in costs.items():
                ratio = med / costs[best_peer][1]
                print(f"{name:58s} {med / 1000:7.2f}us {p99 / 1000:7.2f}us {ratio:12.2f}")
        collector.share_cpus()

        print(f"\n2. burst: {args.burst} events as fast as one thread can, then flush")
        print(f"{'client':58s} {'delivered':>10s} {'lost':>7s} {'events/s':>9s} "
              f"{'CPU/event':>10s}")
        for key in ("ours", "ours-1000", "posthog", "segment"):
            collector.reset()
            row = burst(makers[key], collector, args.burst)
            print(f"{row['name']:58s} {row['delivered']:10d} {row['lost']:7d} "
                  f"{row['events_per_s']:9.0f} {row['cpu_us_per_event']:8.1f}us")
    finally:
        collector.close()


if __name__ == "__main__":
    main()
