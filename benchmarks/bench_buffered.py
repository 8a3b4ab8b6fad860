"""Buffered delivery: our ``BufferedConsumer`` next to the ``mixpanel`` package's, same collector.

Both clients post to one local collector running in a separate process
(``python -m consumers.collector --mode asyncio --fast-json --quiet``, its
fastest configuration), so the server's work does not count against the
client.  Cases:

* ``track/50``: ``send`` of pre-built event JSON strings, batches of 50
  (mixpanel's maximum): ours ``BufferedConsumer(api_host=...).send("event", m)``,
  peer ``mixpanel.BufferedConsumer(events_url=...).send("events", m)``.  The
  same strings go to both, so only buffering and delivery are measured.
* ``track+build/50``: the same through the trackers, message building
  included: ``Tracker.track`` vs ``Mixpanel.track``, same properties.
* ``import``: pre-built historical events with service-account auth; ours at
  batch 2000 (its default gzip'd, strict JSON body), the peer at 50: its
  ``BufferedConsumer`` caps ``max_size`` at 50 on every endpoint.
* the floor, in both ``send`` cases: the bodies ours sends (same batches, same
  JSON array or gzip'd JSON, same query, headers and auth), built before the
  clock starts and POSTed by a raw keep-alive ``http.client.HTTPConnection``
  loop (30 s socket timeout, as a client needs one) to the same collector.
  No buffering, no retries, no error handling: what sending costs at least.
  Ours is reported as a ratio of it (ours events/s / floor events/s).

Each measurement creates a fresh consumer, posts one warm-up batch (opening
the keep-alive connection), resets the collector, then times sending
``--events`` messages plus the final ``flush()``: delivered events/s
(wall clock, ``perf_counter``) and client CPU per event
(``time.process_time`` of this process).  After each measurement the
collector's ``/_collector/stats`` must show every event accepted, none
rejected and no duplicate, or the benchmark stops.  Rounds alternate which
client goes first; medians over the rounds, each round's values and
ratios are printed.

    python3 benchmarks/bench_buffered.py [--events 20000] [--import-events 40000]
                                         [--rounds 5] [--batch 50] [--import-batch 2000]
                                         [--only track,import] [--quick]
"""

from __future__ import annotations

import argparse
import base64
import gzip
import http.client
import json
import os
import statistics
import sys
import time
from typing import Any, Callable, Optional

import mixpanel
from _common import PROPS, CollectorProcess

from consumers._http import USER_AGENT
from consumers.buffered import BufferedConsumer
from tracker import Tracker

TOKEN = "bench-token"
ACCOUNT = ("bench-user", "bench-secret", "12345")

# -- messages --------------------------------------------------------------------------
def build_messages(n: int, time_ms: int, tag: str) -> list[str]:
    """``n`` distinct compact event JSON strings (as both libraries would send them)."""
    out = []
    for i in range(n):
        message = {
            "event": "Purchase",
            "properties": {
                "token": TOKEN, "distinct_id": f"user-{i % 997}", "time": time_ms + i,
                "$insert_id": f"{tag}-{i:09d}", "mp_lib": "python",
                "$lib_version": "0.1.0", **PROPS,
            },
        }
        out.append(json.dumps(message, separators=(",", ":")))
    return out


# -- clients ---------------------------------------------------------------------------
class Case:
    """One way of delivering ``n`` events; ``run(i)`` hands over the i-th, ``finish`` flushes."""

    endpoint = "track"

    def run(self, i: int) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        raise NotImplementedError


class OursSend(Case):
    def __init__(self, url: str, messages: list[str], message_type: str, batch: int) -> None:
        kwargs: dict[str, Any] = {"api_host": url, "max_batch": batch}
        if message_type == "import":
            kwargs["service_account"] = ACCOUNT
        self.consumer = BufferedConsumer(**kwargs)
        self.endpoint = message_type if message_type == "import" else "track"
        self._send = self.consumer.send
        self._type = message_type
        self._messages = messages

    def run(self, i: int) -> None:
        self._send(self._type, self._messages[i])

    def finish(self) -> None:
        self.consumer.close()


class PeerSend(Case):
    def __init__(self, url: str, messages: list[str], message_type: str, batch: int) -> None:
        self.consumer = mixpanel.BufferedConsumer(
            max_size=batch,
            events_url=url + "/track",
            people_url=url + "/engage",
            groups_url=url + "/groups",
            import_url=url + "/import",
            credentials=mixpanel.ServiceAccountCredentials(*ACCOUNT),
        )
        self.endpoint = "import" if message_type == "import" else "track"
        self._send = self.consumer.send
        self._type = "imports" if message_type == "import" else "events"
        self._messages = messages

    def run(self, i: int) -> None:
        self._send(self._type, self._messages[i])

    def finish(self) -> None:
        self.consumer.flush()


class Floor(Case):
    """Pre-built bodies, as ours would send them, POSTed by a raw keep-alive ``http.client`` loop.

    ``run(i)`` posts the body of the batch that event ``i`` completes: the
    events ``0 .. n - 1`` in batches of ``batch``, then the warm-up events
    ``n ..`` likewise, so :func:`measure` drives it as it drives the clients.
    """

    def __init__(
        self, port: int, messages: list[str], message_type: str, batch: int, n: int, warmup: int
    ) -> None:
        imports = message_type == "import"
        self.endpoint = "import" if imports else "track"
        self._headers = {"User-Agent": USER_AGENT, "Content-Type": "application/json"}
        if imports:
            self._path = f"/import?strict=1&project_id={ACCOUNT[2]}"
            self._headers["Content-Encoding"] = "gzip"
            user_secret = f"{ACCOUNT[0]}:{ACCOUNT[1]}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(user_secret).decode()
        else:
            self._path = "/track?verbose=1&ip=0"
        self._bodies: dict[int, bytes] = {}
        for first, end in ((0, n), (n, n + warmup)):
            for start in range(first, end, batch):
                stop = min(start + batch, end)
                body = ("[" + ",".join(messages[start:stop]) + "]").encode("utf-8")
                if imports:  # as ours: gzip level 1
                    body = gzip.compress(body, compresslevel=1, mtime=0)
                self._bodies[stop - 1] = body
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def run(self, i: int) -> None:
        body = self._bodies.get(i)
        if body is None:
            return
        self._conn.request("POST", self._path, body=body, headers=self._headers)
        response = self._conn.getresponse()
        answer = response.read()
        if response.status != 200:
            raise SystemExit(f"floor: the collector answered {response.status}: {answer[:200]!r}")

    def finish(self) -> None:
        """Every batch was posted by ``run``; the connection stays open (keep-alive)."""


class OursTrack(Case):
    def __init__(self, url: str, batch: int) -> None:
        self.consumer = BufferedConsumer(api_host=url, max_batch=batch)
        self.tracker = Tracker(TOKEN, self.consumer)

    def run(self, i: int) -> None:
        self.tracker.track("user-1234", "Purchase", PROPS)

    def finish(self) -> None:
        self.consumer.close()


class PeerTrack(Case):
    def __init__(self, url: str, batch: int) -> None:
        self.consumer = mixpanel.BufferedConsumer(max_size=batch, events_url=url + "/track")
        self.mp = mixpanel.Mixpanel(TOKEN, consumer=self.consumer)

    def run(self, i: int) -> None:
        self.mp.track("user-1234", "Purchase", PROPS)

    def finish(self) -> None:
        self.consumer.flush()


# -- measuring -------------------------------------------------------------------------
def measure(
    make: Callable[[], Case], collector: CollectorProcess, n: int, warmup: int
) -> dict[str, float]:
    """Time ``n`` events through a fresh client; verify the collector has every one."""
    case = make()
    for i in range(warmup):  # one batch: opens the connection, warms the code
        case.run(n + i)
    case.finish()
    collector.reset()
    run = case.run
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for i in range(n):
        run(i)
    case.finish()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    stats = collector.stats()
    got = stats["endpoints"][case.endpoint]
    if got["accepted"] != n or got["unique"] != n or got["rejected"] or stats["rejected"]:
        raise SystemExit(f"delivery check failed: sent {n}, collector has {got}")
    return {"events_per_s": n / wall, "cpu_us": cpu / n * 1e6, "requests": got["requests"]}


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per /track measurement")
    parser.add_argument("--import-events", type=int, default=40_000,
                        help="events per /import measurement")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=50, help="/track batch size (both)")
    parser.add_argument("--import-batch", type=int, default=2000, help="our /import batch")
    parser.add_argument("--quick", action="store_true", help="smoke run: few events, 1 round")
    parser.add_argument("--only", default="", help="comma-separated case names to run")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.import_events, args.rounds = 1000, 4000, 1

    now_ms = int(time.time() * 1000)
    track_msgs = build_messages(args.events + 2 * args.batch, now_ms - 60_000, "t")
    import_msgs = build_messages(args.import_events + 2 * args.import_batch,
                                 now_ms - 10 * 86_400_000, "i")
    peer_import_batch = min(args.import_batch, 50)

    collector = CollectorProcess("--mode", "asyncio", "--fast-json")
    url = collector.url
    port = collector.port
    # name -> (makers by client, events, warm-up events); the floor only where messages are
    # pre-built (the track+send case builds its own)
    cases: dict[str, tuple[dict[str, Callable[[], Case]], int, int]] = {
        f"track/{args.batch} send": ({
            "ours": lambda: OursSend(url, track_msgs, "event", args.batch),
            "peer": lambda: PeerSend(url, track_msgs, "event", args.batch),
            "floor": lambda: Floor(port, track_msgs, "event", args.batch,
                                   args.events, args.batch),
        }, args.events, args.batch),
        f"track/{args.batch} track+send": ({
            "ours": lambda: OursTrack(url, args.batch),
            "peer": lambda: PeerTrack(url, args.batch),
        }, args.events, args.batch),
        f"import/{args.import_batch} (peer /{peer_import_batch}) send": ({
            "ours": lambda: OursSend(url, import_msgs, "import", args.import_batch),
            "peer": lambda: PeerSend(url, import_msgs, "import", peer_import_batch),
            "floor": lambda: Floor(port, import_msgs, "import", args.import_batch,
                                   args.import_events, args.import_batch),
        }, args.import_events, args.import_batch),
    }
    if args.only:
        wanted = args.only.split(",")
        cases = {k: v for k, v in cases.items() if any(w in k for w in wanted)}
    results: dict[str, dict[str, list[dict[str, float]]]] = {
        k: {who: [] for who in makers} for k, (makers, _, _) in cases.items()
    }
    try:
        print(f"Python {sys.version.split()[0]}, mixpanel {mixpanel.__version__}, "
              f"collector {url} (separate process, asyncio+orjson), {os.cpu_count()} CPUs, "
              f"{args.rounds} round(s), the clients take turns going first")
        for r in range(args.rounds):
            for name, (makers, n, warmup) in cases.items():
                order = list(makers.items())
                shift = r % len(order)
                for who, make in order[shift:] + order[:shift]:
                    results[name][who].append(measure(make, collector, n, warmup))
            print(f"  round {r + 1}/{args.rounds} done", flush=True)
    finally:
        collector.close()

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(row[key] for row in rows)

    print(f"\n{'case':34s} {'client':6s} {'events':>7s} {'reqs':>5s} {'events/s':>10s} "
          f"{'CPU us/ev':>10s} {'ours/it ev/s':>13s} {'it/ours CPU':>12s}")
    for name, by in results.items():
        n = cases[name][1]
        ev_ours, cpu_ours = med(by["ours"], "events_per_s"), med(by["ours"], "cpu_us")
        for who, rows in by.items():
            ev, cpu = med(rows, "events_per_s"), med(rows, "cpu_us")
            reqs = int(med(rows, "requests"))
            extra = (f" {ev_ours / ev:12.2f}x {cpu / cpu_ours:11.2f}x" if who != "ours" else "")
            print(f"{name:34s} {who:6s} {n:7d} {reqs:5d} {ev:10,.0f} {cpu:10.2f}{extra}")
        for who, rows in by.items():
            spread = ", ".join(f"{row['events_per_s']:,.0f}" for row in rows)
            print(f"{'':34s} rounds events/s {who}: {spread}")
        if "floor" in by:
            ratios = sorted(o["events_per_s"] / f["events_per_s"]
                            for o, f in zip(by["ours"], by["floor"]))
            print(f"{'':34s} ours/floor per round: "
                  + ", ".join(f"{x:.2f}" for x in ratios) + " (sorted)")
    print("\nevery measurement verified: the collector accepted every event once, none rejected")
    if any(k.startswith("import") for k in results):
        print(f"note: mixpanel.BufferedConsumer caps max_size at 50, so its /import batches "
              f"hold {peer_import_batch} events (form-encoded, Basic auth + project_id); "
              f"ours sends {args.import_batch} per request (gzip'd JSON, strict=1)")
    print("floor: the same bodies as ours, pre-built, POSTed by a raw keep-alive "
          "http.client loop; 'ours/it ev/s' on a floor row is ours as a share of the floor")


if __name__ == "__main__":
    main()
