"""Where one batch POST's time goes: each layer of our request path beside the ones below it.

The same pre-built batch bodies (``--batch`` events each) go to one local
collector in its own process (``--mode asyncio --fast-json``), layer by
layer, in turns within each round:

* ``http.client``: a raw keep-alive ``HTTPConnection`` loop, the floor;
* ``urllib3``: ``HTTPConnectionPool.urlopen`` with retries off;
* ``requests``: ``requests.Session.post``, as a plain client sends;
* ``HttpTransport.post``: our transport (retries, pace, answers read);
* ``Consumer.send_batch``: plus building the body and reading ``{"status"}``;
* ``BufferedConsumer.send``: plus buffering one message at a time and flushing.

Per request: wall time and this process's CPU time, medians over the
rounds, and each layer's events/s as a share of the floor's in the same
round.  The collector must hold every event once after each measurement.

    python3 benchmarks/bench_transport.py [--requests 400] [--batch 50] [--rounds 5]
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import time
from typing import Callable

import requests
import urllib3
from _common import CollectorProcess
from bench_buffered import build_messages

from consumers._http import USER_AGENT, HttpTransport
from consumers.buffered import BufferedConsumer
from consumers.consumer import Consumer

PATH = "/track?verbose=1&ip=0"
HEADERS = {"User-Agent": USER_AGENT, "Content-Type": "application/json"}

Layer = Callable[[], Callable[[], None]]  # builds a client, returns "send every batch"


def layers(collector: CollectorProcess, batches: list[list[str]]) -> dict[str, Layer]:
    bodies = [("[" + ",".join(batch) + "]").encode() for batch in batches]
    url = collector.url

    def raw() -> Callable[[], None]:
        conn = http.client.HTTPConnection("127.0.0.1", collector.port, timeout=30)

        def run() -> None:
            for body in bodies:
                conn.request("POST", PATH, body=body, headers=HEADERS)
                conn.getresponse().read()
        return run

    def pool() -> Callable[[], None]:
        connections = urllib3.HTTPConnectionPool("127.0.0.1", collector.port, maxsize=1,
                                                 retries=False, timeout=30)

        def run() -> None:
            for body in bodies:
                _ = connections.urlopen("POST", PATH, body=body, headers=HEADERS).data
        return run

    def session() -> Callable[[], None]:
        plain = requests.Session()

        def run() -> None:
            for body in bodies:
                _ = plain.post(url + PATH, data=body, headers=HEADERS, timeout=(5, 30)).content
        return run

    def transport() -> Callable[[], None]:
        ours = HttpTransport()
        params = {"verbose": "1", "ip": "0"}

        def run() -> None:
            for body in bodies:
                ours.post(url + "/track", body, {"Content-Type": "application/json"},
                          params=params)
        return run

    def consumer() -> Callable[[], None]:
        ours = Consumer(api_host=url)

        def run() -> None:
            for batch in batches:
                ours.send_batch("event", batch)
        return run

    def buffered() -> Callable[[], None]:
        ours = BufferedConsumer(api_host=url, max_batch=len(batches[0]))
        messages = [m for batch in batches for m in batch]

        def run() -> None:
            for message in messages:
                ours.send("event", message)
            ours.flush()
        return run

    return {"http.client (floor)": raw, "urllib3 urlopen": pool,
            "requests Session.post": session, "HttpTransport.post": transport,
            "Consumer.send_batch": consumer, "BufferedConsumer.send": buffered}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    messages = build_messages(args.requests * args.batch, int(time.time() * 1000) - 60_000, "l")
    batches = [messages[i:i + args.batch] for i in range(0, len(messages), args.batch)]
    events = len(messages)
    collector = CollectorProcess("--mode", "asyncio", "--fast-json")
    made = layers(collector, batches)
    rows: dict[str, list[tuple[float, float, float]]] = {name: [] for name in made}
    try:
        print(f"Python {sys.version.split()[0]}, requests {requests.__version__}, urllib3 "
              f"{urllib3.__version__}, {args.requests} requests of {args.batch} events, "
              f"{args.rounds} rounds")
        for r in range(args.rounds):
            floor_wall = 0.0
            for name, make in made.items():
                run = make()
                run()  # warm: opens the connection; these events are not counted
                collector.reset()
                wall0, cpu0 = time.perf_counter(), time.process_time()
                run()
                wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
                got = collector.stats()["endpoints"]["track"]
                if got["unique"] != events or got["accepted"] != events:
                    raise SystemExit(f"{name}: sent {events}, the collector has {got}")
                collector.reset()
                floor_wall = floor_wall or wall
                rows[name].append((wall / args.requests * 1e6, cpu / args.requests * 1e6,
                                   floor_wall / wall))
            print(f"  round {r + 1}/{args.rounds} done", flush=True)
    finally:
        collector.close()
    print(f"\n{'layer':24s} {'wall us/req':>12s} {'CPU us/req':>11s} {'x floor ev/s':>13s}"
          f"  per round")
    for name, values in rows.items():
        wall = statistics.median(v[0] for v in values)
        cpu = statistics.median(v[1] for v in values)
        share = statistics.median(v[2] for v in values)
        spread = ", ".join(f"{v[2]:.2f}" for v in sorted(values, key=lambda v: v[2]))
        print(f"{name:24s} {wall:12.1f} {cpu:11.1f} {share:12.2f}x  {spread}")


if __name__ == "__main__":
    main()
