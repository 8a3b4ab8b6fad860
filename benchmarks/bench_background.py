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
2. bursts: ``--bursts`` events (default 20,000 and 100,000) as fast as one
   thread can, then flush, each client with its DEFAULT settings, the clients
   interleaved round by round (``--repeat``) so the machine's noise hits all
   alike: every call timed (median, p99, p99.9), events/s from the first call
   until the collector has them, client CPU per event (``time.process_time``),
   delivered vs sent (what each client lost); ours also in durable mode
   (write-ahead to the spool), to show its cost.  Medians over the rounds,
   with the spread (min-max), and ratios to segment's.

    python3 benchmarks/bench_background.py [--calls 5000] [--rounds 3]
        [--bursts 20000,100000] [--repeat 3] [--skip-cost]
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


class OursDurable(Ours):
    """Durable mode: every message written ahead to the spool before send() returns."""

    def __init__(self, url: str, spool: str) -> None:
        self.name = "ours: Tracker -> BackgroundConsumer(durable=True)"
        self.consumer = BackgroundConsumer(BufferedConsumer(api_host=url), spool=spool,
                                           durable=True)
        self.tracker = Tracker("TOKEN", self.consumer)


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


class Floor(Client):
    """What the machine itself costs a caller: the same Tracker calls into a list (no thread).

    The messages stay in memory as a queue's would, so page faults of a growing
    heap and the scheduler's pauses show here too: no client's tail can be below it.
    """

    endpoint = "track"
    name = "floor: Tracker -> list.append (nothing sent)"

    def __init__(self) -> None:
        self.kept: list[tuple[str, str]] = []
        self.tracker = Tracker("TOKEN", lambda t, m: self.kept.append((t, m)))

    def call(self, event: str) -> None:
        self.tracker.track("user-1234", event, PROPS)

    def finish(self) -> None:
        self.kept = []


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
    call = client.call
    clock = time.perf_counter_ns
    samples = [0] * n
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for i in range(n):
        t0 = clock()
        call(marker)
        samples[i] = clock() - t0
    sent_s = time.perf_counter() - wall0
    client.finish()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    got = received(collector, client.endpoint, marker)
    samples.sort()
    return {"name": client.name, "sent": n, "delivered": got, "lost": n - got,
            "median_us": samples[n // 2] / 1000, "p99_us": samples[int(n * 0.99)] / 1000,
            "p999_us": samples[int(n * 0.999)] / 1000,
            "events_per_s": got / wall, "cpu_us_per_event": cpu / n * 1e6,
            "send_loop_s": sent_s, "wall_s": wall}


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.4g} ({min(values):.4g}-{max(values):.4g})"


def bursts(makers: dict[str, Callable[[], Client]], collector: CollectorProcess, n: int,
           repeat: int) -> None:
    keys = ("floor", "ours", "ours-durable", "posthog", "segment")
    rows: dict[str, list[dict[str, Any]]] = {k: [] for k in keys}
    for _ in range(repeat):  # interleaved: one burst of each client per round
        for key in keys:
            collector.reset()
            row = burst(makers[key], collector, n)
            if key == "floor":
                row["lost"] = 0  # it sends nothing by design
                row["events_per_s"] = row["cpu_us_per_event"] = float("nan")
            rows[key].append(row)
    print(f"\n2. burst: {n} events as fast as one thread can, then flush; "
          f"median (min-max) of {repeat} interleaved rounds")
    fields = ("median_us", "p99_us", "p999_us", "events_per_s", "cpu_us_per_event", "lost")
    print(f"{'client':52s} " + " ".join(f"{f:>22s}" for f in fields))
    for key in keys:
        name = rows[key][0]["name"]
        print(f"{name[:52]:52s} " + " ".join(
            f"{_spread([r[f] for r in rows[key]]):>22s}" for f in fields))
    seg = rows["segment"]
    for key in ("ours", "ours-durable"):
        rate = statistics.median(r["events_per_s"] for r in rows[key]) / statistics.median(
            r["events_per_s"] for r in seg)
        cpu = statistics.median(r["cpu_us_per_event"] for r in rows[key]) / statistics.median(
            r["cpu_us_per_event"] for r in seg)
        print(f"{key}: events/s {rate:.2f}x segment's, CPU/event {cpu:.2f}x segment's")


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bursts", default="20000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-cost", action="store_true")
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
        "ours-durable": lambda: OursDurable(url, spool),
        "floor": Floor,
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
        for i, (placement, alone) in enumerate([] if args.skip_cost else placements):
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

        for n in (int(x) for x in args.bursts.split(",")):
            bursts(makers, collector, n, args.repeat)
    finally:
        collector.close()


if __name__ == "__main__":
    main()
