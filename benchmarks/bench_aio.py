"""Event-loop lag while tracking through asyncio consumers, beside posthog-python's AsyncClient.

Each run is one fresh event loop in this process, the collector in a process
of its own (``python -m consumers.collector``).  A probe task sleeps 1 ms in
a loop and records how late it wakes (the loop's lag) while the caller
tracks ``--events`` events, yielding to the loop every 10 calls as an app
serving requests does, and then awaits delivery.

Destinations: ``healthy``; ``slow`` (every answer 50 ms late); ``down``
(a port nobody listens on: connection refused, retried).

Clients, each with its default settings but the queue sized for the burst:

* ``ours-mixpanel``: ``Tracker`` into ``AsyncBackgroundConsumer`` (1000 per request);
* ``ours-posthog``: ``tracker.posthog.Client`` into ``AsyncPostHogConsumer``
  (100 per request, gzip);
* ``ours-durable``: ``ours-mixpanel`` with ``durable=True`` (every message
  written to a spool folder before ``send()`` returns, delivered from it);
* ``baseline``: no client, the probe alone (the machine's own lag: the floor);
* ``track-nosink`` / ``capture-nosink``: the same ``Tracker.track`` /
  ``Client.capture`` calls into a sink that does nothing (what building the
  message costs; the consumer's share of a call is the difference);
* ``posthog-async``: ``posthog.AsyncClient`` (100 per request, its own
  httpx client; ``max_queue_size`` raised to the burst so it drops nothing).

Per run: the loop's max and p99 lag; the max lag less the machine's late
wake-ups (the loop's selector notes each wait the machine ended later than
its timeout, rounded up to whole milliseconds as epoll does: time that is
the machine's whatever runs on the loop); the max lag less all the
selector's oversleeping, the rounding too (what callbacks on the loop
held it: ours, the probe's, the caller's); the longest garbage-collector pause
inside the run (a pause of the whole process, whoever allocated), the
caller's median cost per call (timed per chunk of 10 calls, the chunks the
caller yields between), delivered events per second (first call to all
delivered; not for ``down``).  Each run starts on a collected heap
(``gc.collect()``), so no run pays for the garbage an earlier one left.
Medians over the rounds with the rounds' range; max lag also as a ratio to
the floor of the same round; runs interleaved by client, after one round
that is not counted (imports, the TLS context, first-use caches).

    python3 benchmarks/bench_aio.py [--events 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import math
import selectors
import socket
import statistics
import time
from typing import Any, Callable

from _common import PROPS, CollectorProcess

KEY = "phc_benchmark_project_key"
CHUNK = 10


class WakeWatch(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """The loop's own selector, noting each time the machine woke it later than asked.

    A wait with a timeout should end when the timeout (rounded up to whole
    milliseconds by epoll and poll) has passed; on a shared virtual machine
    an idle process is sometimes woken milliseconds later.  That time is the
    machine's, whatever runs on the loop.
    """

    ROUNDS_TO_MS = selectors.DefaultSelector.__name__ in (
        "EpollSelector", "PollSelector", "DevpollSelector")

    def __init__(self) -> None:
        super().__init__()
        self.late: list[float] = []  # per wait: seconds past its timeout rounded up
        self.over: list[float] = []  # per wait: seconds past its timeout as asked

    def select(self, timeout: Any = None) -> Any:
        start = time.perf_counter()
        ready = super().select(timeout)
        if timeout is not None and timeout > 0:
            took = time.perf_counter() - start
            rounded = math.ceil(timeout * 1e3) * 1e-3 if self.ROUNDS_TO_MS else timeout
            if took > timeout:
                self.over.append(took - timeout)
                self.late.append(max(0.0, took - rounded))
        return ready


class LagProbe:
    """How late a 1 ms sleep wakes, sampled continuously on the running loop.

    Each wake-up's lag is also given less what the loop's selector
    overslept meanwhile (:class:`WakeWatch`): less the machine's late
    wake-ups (``machine``), and less those and the selector's rounding up to
    whole milliseconds (``sleeping``), which leaves the time callbacks ran.
    """

    def __init__(self, watch: WakeWatch) -> None:
        self.lags: list[float] = []
        self.less_machine: list[float] = []
        self.callbacks: list[float] = []
        self._watch = watch
        self._task: Any = None

    async def _run(self) -> None:
        clock, late, over = time.perf_counter, self._watch.late, self._watch.over
        while True:
            start, seen = clock(), len(late)
            await asyncio.sleep(0.001)
            lag = max(0.0, clock() - start - 0.001)
            self.lags.append(lag)
            self.less_machine.append(max(0.0, lag - sum(late[seen:])))
            self.callbacks.append(max(0.0, lag - sum(over[seen:])))

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> dict[str, float]:
        """Max and p99 lag, and the max lags less the machine, and less all sleeping (ms)."""
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        lags = sorted(self.lags) or [0.0]
        return {"max_ms": lags[-1] * 1000,
                "p99_ms": lags[int(len(lags) * 0.99) - 1 if len(lags) > 1 else 0] * 1000,
                "machine_ms": max(self.less_machine, default=0.0) * 1000,
                "callbacks_ms": max(self.callbacks, default=0.0) * 1000}


def run_on_watched_loop(main: Any, *args: Any) -> Any:
    """``asyncio.run(main(*args, watch))``, on a loop whose selector is a :class:`WakeWatch`."""
    watch = WakeWatch()
    loop = asyncio.SelectorEventLoop(watch)
    try:
        return loop.run_until_complete(main(*args, watch))
    finally:
        try:
            left = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in left:
                task.cancel()
            if left:
                loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def ours_mixpanel(url: str, n: int, down: bool,
                        durable: bool = False) -> tuple[Callable[[int], Any], Any, Any]:
    import shutil
    import tempfile

    from consumers.aio import AsyncBackgroundConsumer
    from consumers.retry import RetryPolicy
    from tracker import Tracker

    folder = tempfile.mkdtemp(prefix="bench-aio-spool-") if durable else None
    consumer = AsyncBackgroundConsumer(
        api_host=url, spool=folder or False, durable=durable,
        retry=RetryPolicy(max_attempts=3, initial_backoff=0.05) if down else None)
    consumer.start()
    tracker = Tracker("project-token", consumer)

    def call(i: int) -> Any:
        return tracker.track(f"user-{i % 100}", "Order placed", PROPS)

    async def done() -> None:
        await consumer.flush(60.0)

    async def close() -> None:
        await consumer.aclose(timeout=0.5)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    return call, done, close


async def ours_durable(url: str, n: int, down: bool) -> tuple[Callable[[int], Any], Any, Any]:
    """``ours_mixpanel`` in durable mode: every message on disk before ``send()`` returns."""
    return await ours_mixpanel(url, n, down, durable=True)


async def ours_posthog(url: str, n: int, down: bool) -> tuple[Callable[[int], Any], Any, Any]:
    from consumers.aio import AsyncPostHogConsumer
    from consumers.retry import RetryPolicy
    from tracker.posthog import Client

    consumer = AsyncPostHogConsumer(KEY, url, spool=False, retry=RetryPolicy(
        max_attempts=3, initial_backoff=0.05) if down else None)
    consumer.start()
    client = Client(KEY, sink=consumer)

    def call(i: int) -> Any:
        return client.capture(f"user-{i % 100}", "Order placed", PROPS)

    async def done() -> None:
        await consumer.flush(60.0)

    async def close() -> None:
        await consumer.aclose(timeout=0.5)

    return call, done, close


async def posthog_async(url: str, n: int, down: bool) -> tuple[Callable[[int], Any], Any, Any]:
    from posthog import AsyncClient

    client = AsyncClient(KEY, host=url, max_queue_size=n + 1000,
                         max_retries=2 if down else 3)

    def call(i: int) -> Any:
        return client.capture("Order placed", distinct_id=f"user-{i % 100}", properties=PROPS)

    async def done() -> None:
        await client.flush(60.0)

    async def close() -> None:
        try:
            await asyncio.wait_for(client.shutdown(), 5.0)
        except asyncio.TimeoutError:  # down: its retries outlast the wait; the loop moves on
            pass

    return call, done, close


async def baseline(url: str, n: int, down: bool) -> tuple[Callable[[int], Any], Any, Any]:
    """No client: the lag this machine's loop shows anyway (other processes, timers)."""

    def call(i: int) -> Any:
        return None

    async def nothing() -> None:
        await asyncio.sleep(0.5)

    return call, nothing, nothing


async def track_nosink(url: str, n: int, down: bool) -> tuple[Callable[[int], Any], Any, Any]:
    from tracker import Tracker

    tracker = Tracker("project-token", lambda message_type, message_json: None)

    def call(i: int) -> Any:
        return tracker.track(f"user-{i % 100}", "Order placed", PROPS)

    return call, _nothing, _nothing


async def capture_nosink(url: str, n: int, down: bool) -> tuple[Callable[[int], Any], Any, Any]:
    from tracker.posthog import Client

    client = Client(KEY, sink=lambda message_type, message_json: None)

    def call(i: int) -> Any:
        return client.capture(f"user-{i % 100}", "Order placed", PROPS)

    return call, _nothing, _nothing


async def _nothing() -> None:
    pass


CLIENTS = {"baseline": (baseline, "track"), "track-nosink": (track_nosink, "track"),
           "capture-nosink": (capture_nosink, "posthog"),
           "ours-mixpanel": (ours_mixpanel, "track"),
           "ours-durable": (ours_durable, "track"), "ours-posthog": (ours_posthog, "posthog"),
           "posthog-async": (posthog_async, "posthog")}


class GcPauses:
    """The garbage collector's pauses while :attr:`on`."""

    def __init__(self) -> None:
        self.on = False
        self.longest = 0.0
        self._started = 0.0
        gc.callbacks.append(self._note)

    def _note(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self.on:
            self.longest = max(self.longest, time.perf_counter() - self._started)

    def close(self) -> None:
        gc.callbacks.remove(self._note)


async def one_run(make: Any, url: str, n: int, down: bool, watch: WakeWatch) -> dict[str, float]:
    call, done, close = await make(url, n, down)
    probe = LagProbe(watch)
    pauses = GcPauses()
    pauses.on = True
    probe.start()
    await asyncio.sleep(0.05)
    costs: list[float] = []
    started = time.perf_counter()
    for base in range(0, n, CHUNK):
        t0 = time.perf_counter_ns()
        for i in range(base, min(n, base + CHUNK)):
            call(i)
        costs.append((time.perf_counter_ns() - t0) / CHUNK / 1000)
        await asyncio.sleep(0)
    if down:
        await asyncio.sleep(2.0)  # retries and probes run against the refused port
    else:
        await done()
    elapsed = time.perf_counter() - started
    lags = await probe.stop()
    pauses.on = False
    pauses.close()
    await close()
    return {**lags, "gc_ms": pauses.longest * 1000,
            "call_us": statistics.median(costs), "elapsed": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", default="healthy,slow,down")
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--gc-off", action="store_true",
                        help="disable the garbage collector (tells its pauses from ours)")
    parser.add_argument("--shared-cpus", action="store_true",
                        help="do not give the collector a CPU of its own")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # the down case logs every refused attempt
    if args.gc_off:
        gc.disable()
    cases = args.cases.split(",")
    clients = args.clients.split(",")
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    with CollectorProcess() as collector:
        separate = False if args.shared_cpus else collector.separate_cpus()
        print(f"{args.events} events per run, {args.rounds} rounds; collector on its own "
              f"CPU: {separate}")
        for round_ in range(args.rounds + 1):
            for case in cases:
                for name in clients:
                    make, endpoint = CLIENTS[name]
                    collector.reset()
                    url = collector.url
                    if case == "slow":
                        collector.add_latency(0.05)
                    elif case == "down":
                        url = f"http://127.0.0.1:{free_port()}"
                    gc.collect()  # this run does not collect what an earlier one left
                    row = run_on_watched_loop(one_run, make, url, args.events, case == "down")
                    if case != "down" and name in ("ours-mixpanel", "ours-durable",
                                                   "ours-posthog", "posthog-async"):
                        got = len(collector.records(endpoint))
                        row["delivered"] = got
                        row["per_s"] = got / row["elapsed"]
                    if round_:  # the first round warms up: imports, TLS context, caches
                        results.setdefault((case, name), []).append(row)
    report(results, cases)


def report(results: dict[tuple[str, str], list[dict[str, float]]], cases: list[str]) -> None:
    """Medians over the rounds, each with the rounds' range; ratios to the floor and to posthog."""
    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r.get(key, float("nan")) for r in rows)

    def spread(rows: list[dict[str, float]], key: str, form: str) -> str:
        values = [r[key] for r in rows if key in r]
        if not values:
            return ""
        return f"{statistics.median(values):{form}} [{min(values):{form}}-{max(values):{form}}]"

    print("max lag: as measured; less machine: less the machine's late wake-ups; "
          "callbacks: less all the selector's oversleeping (epoll rounds up to whole ms)")
    print(f"{'case':8} {'client':15} {'max lag ms [range]':>20} {'x floor':>7} "
          f"{'p99 ms':>6} {'less machine':>19} {'callbacks':>19} {'gc ms':>6} "
          f"{'call us [range]':>18} {'events/s':>9} {'got':>6}")
    for (case, name), rows in results.items():
        floor = results.get((case, "baseline"), [])
        ratios = [r["max_ms"] / f["max_ms"] for r, f in zip(rows, floor) if f["max_ms"] > 0]
        ratio = f"{statistics.median(ratios):7.2f}" if ratios and name != "baseline" else ""
        print(f"{case:8} {name:15} {spread(rows, 'max_ms', '.2f'):>20} {ratio:>7} "
              f"{med(rows, 'p99_ms'):6.2f} {spread(rows, 'machine_ms', '.2f'):>19} "
              f"{spread(rows, 'callbacks_ms', '.2f'):>19} "
              f"{med(rows, 'gc_ms'):6.2f} "
              f"{spread(rows, 'call_us', '.2f'):>18} {med(rows, 'per_s'):9.0f} "
              f"{med(rows, 'delivered'):6.0f}")
    for case in cases:
        theirs = results.get((case, "posthog-async"))
        for name, nosink in (("ours-posthog", "capture-nosink"), ("ours-mixpanel", "track-nosink"),
                             ("ours-durable", "track-nosink")):
            ours, bare = results.get((case, name)), results.get((case, nosink))
            if ours and bare:
                print(f"{case}: {name} call {med(ours, 'call_us'):.2f} us, of which the "
                      f"consumer {med(ours, 'call_us') - med(bare, 'call_us'):.2f} us "
                      f"(the rest builds the message: {med(bare, 'call_us'):.2f} us)")
            if ours and theirs:
                print(f"{case}: {name} call costs "
                      f"{med(ours, 'call_us') / med(theirs, 'call_us'):.2f}x posthog-async's")
                if case != "down" and "per_s" in theirs[0]:
                    print(f"{case}: {name} delivers "
                          f"{med(ours, 'per_s') / med(theirs, 'per_s'):.2f}x posthog-async's "
                          f"events/s")


if __name__ == "__main__":
    main()
