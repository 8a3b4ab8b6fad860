"""``tracker.posthog.Client.capture`` next to the official ``posthog`` package, same collector.

Both clients send to one local collector running as a separate process
(``python -m consumers.collector --port N``), each with its default settings:

* ours: ``Client(key, host=url)``: BackgroundConsumer (queue 10,000, flush
  every 1 s or 100 messages) around PostHogConsumer (gzip on, batches of
  100 / 5 MiB, messages up to 900 KiB, keep-alive; ``$geoip_disable`` on);
* ours, shaped: the same with ``processors=[SuperProperties(...)]`` and an
  active ``client.context(...)``, the cost of the pipeline on the PostHog side;
* ``posthog``: ``Posthog(key, host=url)``: its queue of 10,000, one consumer
  thread, flush_at=100, flush_interval=5 s, gzip off (``disable_geoip`` on,
  as ours).

Two numbers per client and round:

* caller cost: each ``capture()`` timed with ``perf_counter_ns`` while the
  client's own thread delivers in the background (median and p99);
* end to end: events per second from the first ``capture()`` until the
  collector holds all of them (``flush``/``shutdown`` included).

    python3 benchmarks/bench_posthog.py [--events 5000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from typing import Any, Callable

from _common import PROPS, CollectorProcess

from tracker.posthog import Client
from tracker.processors import SuperProperties

KEY = "phc_benchmark_project_key"


def wait_for(collector: CollectorProcess, count: int, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while len(collector.records("posthog")) < count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def ours(url: str) -> tuple[Callable[[int], Any], Callable[[], Any]]:
    client = Client(KEY, url)

    def capture(i: int) -> Any:
        return client.capture(f"user-{i % 100}", "Order placed", PROPS)

    return capture, client.shutdown


def shaped(url: str) -> tuple[Callable[[int], Any], Callable[[], Any]]:
    client = Client(KEY, url, processors=[SuperProperties({"service": "shop", "build": "2024.05"})])
    context = client.context(plan="pro", request_id="req-42")
    context.__enter__()

    def capture(i: int) -> Any:
        return client.capture(f"user-{i % 100}", "Order placed", PROPS)

    def shutdown() -> None:
        context.__exit__(None, None, None)
        client.shutdown()

    return capture, shutdown


def theirs(url: str) -> tuple[Callable[[int], Any], Callable[[], Any]]:
    from posthog import Posthog

    client = Posthog(KEY, host=url)

    def capture(i: int) -> Any:
        return client.capture("Order placed", distinct_id=f"user-{i % 100}", properties=PROPS)

    return capture, client.shutdown


def one_round(
    collector: CollectorProcess, make: Callable[[str], Any], events: int
) -> tuple[list[int], float]:
    collector.reset()
    capture, shutdown = make(collector.url)
    clock = time.perf_counter_ns
    costs = []
    start = time.perf_counter()
    for i in range(events):
        t0 = clock()
        capture(i)
        costs.append(clock() - t0)
    shutdown()
    if not wait_for(collector, events):
        arrived = len(collector.records("posthog"))
        raise RuntimeError(f"only {arrived} of {events} events arrived")
    return costs, events / (time.perf_counter() - start)


def p99(values: list[int]) -> float:
    return sorted(values)[int(len(values) * 0.99)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000,
                        help="events per round (at most 10,000: posthog's queue size)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import posthog

    collector = CollectorProcess()
    results: dict[str, dict[str, list[float]]] = {}
    try:
        for _ in range(args.rounds):
            for name, make in (("ours", ours), ("shaped", shaped), ("posthog", theirs)):
                costs, rate = one_round(collector, make, args.events)
                entry = results.setdefault(name, {"median": [], "p99": [], "rate": []})
                entry["median"].append(statistics.median(costs) / 1000)
                entry["p99"].append(p99(costs) / 1000)
                entry["rate"].append(rate)
    finally:
        collector.close()

    print(f"capture(), {args.events} events x {args.rounds} rounds; "
          f"posthog {posthog.VERSION} with its defaults (gzip off, flush_at=100)")
    print(f"{'client':<10}{'median us':>12}{'p99 us':>12}{'events/s':>12}")
    summary = {}
    for name, entry in results.items():
        med = statistics.median(entry["median"])
        tail = statistics.median(entry["p99"])
        rate = statistics.median(entry["rate"])
        summary[name] = (med, tail, rate)
        print(f"{name:<10}{med:>12.2f}{tail:>12.2f}{rate:>12.0f}")
    (om, op, orate), (pm, pp, prate) = summary["ours"], summary["posthog"]
    print(f"pipeline cost (shaped - ours), median: {summary['shaped'][0] - om:.2f} us")
    print(f"caller cost ratio ours/posthog: median {om / pm:.2f} (target <= 0.50), "
          f"p99 {op / pp:.2f}")
    print(f"end-to-end ratio ours/posthog: {orate / prate:.2f} (target >= 1.00)")


if __name__ == "__main__":
    main()
