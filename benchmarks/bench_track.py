"""Cost of building one message: ``Tracker.track`` and ``Client.capture``, floors and peers.

Floors (the least any tracker can do):

* ``json.dumps`` (compact) of the same message, already built;
* orjson: the same message dict built with a fresh 128-bit id (from the
  same seeded generator the tracker uses) and the time, then
  ``orjson.dumps``; the floor the goals are measured against.

Ours, each with a sink that does nothing: ``track()`` with no processors
(goal <= 2x the orjson floor), ``track()`` with super properties and an
active ``context(...)`` (goal <= 2.5x), ``track()`` with only the standard
library's JSON, and the PostHog ``Client.capture``.  Peers: the
``mixpanel`` package's ``Mixpanel.track`` with a no-op consumer, and
``posthog`` 's ``Posthog.capture`` with ``send=False`` (it builds and
checks the message, then does not queue it).

Each call is timed with ``time.perf_counter_ns``; the cases run
interleaved, round after round, and the medians (and p99) of the rounds'
medians are printed with ratios to the orjson floor.

    python3 benchmarks/bench_track.py [--calls 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from typing import Any, Callable

from _common import PROPS

from tracker import _json
from tracker.posthog import Client
from tracker.processors import SuperProperties
from tracker.tracker import Tracker

ORJSON_FLOOR = "floor: orjson, fresh id"


def noop(message_type: str, message_json: str) -> None:
    pass


def timed(fn: Callable[[], Any], calls: int) -> list[int]:
    clock = time.perf_counter_ns
    out = []
    for _ in range(calls):
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out


def summary(samples: list[int]) -> tuple[float, float]:
    samples = sorted(samples)
    return statistics.median(samples), samples[int(len(samples) * 0.99)]


def floors() -> dict[str, Callable[[], Any]]:
    message = {
        "event": "Purchase",
        "properties": {
            "token": "TOKEN", "distinct_id": "user-1234", "time": 1700000000000,
            "$insert_id": "0123456789abcdef0123456789abcdef", "mp_lib": "python",
            "$lib_version": "0.1.0", **PROPS,
        },
    }
    cases: dict[str, Callable[[], Any]] = {
        "floor: json.dumps(message)": lambda: json.dumps(message, separators=(",", ":")),
    }
    try:
        import orjson
    except ImportError:
        print("(orjson not installed: no orjson floor; pip install orjson)")
        return cases
    bits = random.Random(0).getrandbits
    dumps, now = orjson.dumps, time.time_ns

    def orjson_floor() -> bytes:
        return dumps({
            "event": "Purchase",
            "properties": {
                "token": "TOKEN", "distinct_id": "user-1234", "time": now() // 1_000_000,
                "$insert_id": bits(128).to_bytes(16, "big").hex(), "mp_lib": "python",
                "$lib_version": "0.1.0", **PROPS,
            },
        })

    cases[ORJSON_FLOOR] = orjson_floor
    return cases


def ours() -> dict[str, Callable[[], Any]]:
    plain = Tracker("TOKEN", noop)
    shaped = Tracker("TOKEN", noop, processors=[
        SuperProperties({"app": "shop", "release": "2024.05", "region": "eu-west"}),
    ])
    context = shaped.context(plan="pro", request_id="req-42")
    context.__enter__()  # left open: the bench measures calls made inside a request
    stdlib = Tracker("TOKEN", noop)

    def track_stdlib() -> None:
        saved = _json.dumps
        try:
            _json.dumps = _json.dumps_stdlib  # type: ignore[assignment]
            stdlib.track("user-1234", "Purchase", PROPS)
        finally:
            _json.dumps = saved  # type: ignore[assignment]

    client = Client("phc_key", sink=noop)
    return {
        "track(), no processors": lambda: plain.track("user-1234", "Purchase", PROPS),
        "track(), super props + context": lambda: shaped.track("user-1234", "Purchase", PROPS),
        "track(), stdlib json only": track_stdlib,
        "posthog Client.capture": lambda: client.capture("user-1234", "Purchase", PROPS),
    }


def peers() -> dict[str, Callable[[], Any]]:
    cases: dict[str, Callable[[], Any]] = {}
    try:
        import mixpanel

        class NoopConsumer:
            def send(self, *a: Any, **k: Any) -> None:
                pass

        mp = mixpanel.Mixpanel("TOKEN", consumer=NoopConsumer())
        cases[f"peer: mixpanel {mixpanel.__version__} track"] = lambda: mp.track(
            "user-1234", "Purchase", PROPS
        )
    except ImportError:
        print("(mixpanel package not installed: no peer row)")
    try:
        import posthog

        ph = posthog.Posthog("phc_key", send=False)
        cases[f"peer: posthog {posthog.VERSION} capture"] = lambda: ph.capture(
            "Purchase", distinct_id="user-1234", properties=PROPS
        )
    except ImportError:
        print("(posthog package not installed: no peer row)")
    return cases


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    cases = {**floors(), **ours(), **peers()}
    medians: dict[str, list[float]] = {k: [] for k in cases}
    p99s: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.rounds):
        for name, fn in cases.items():
            timed(fn, 500)  # warm up
            med, p99 = summary(timed(fn, args.calls))
            medians[name].append(med)
            p99s[name].append(p99)

    floor_name = ORJSON_FLOOR if ORJSON_FLOOR in cases else "floor: json.dumps(message)"
    floor = statistics.median(medians[floor_name])
    print(f"{args.rounds} rounds x {args.calls} calls, {len(PROPS)} user properties, "
          f"Python {sys.version.split()[0]}, tracker JSON via "
          f"{'orjson' if _json.HAS_ORJSON else 'stdlib'}; ratios to {floor_name!r}")
    print(f"{'case':40s} {'median':>10s} {'p99':>10s} {'x floor':>8s}  rounds' medians (us)")
    for name in cases:
        med = statistics.median(medians[name])
        p99 = statistics.median(p99s[name])
        each = " ".join(f"{m / 1000:.2f}" for m in medians[name])
        print(f"{name:40s} {med / 1000:8.2f}us {p99 / 1000:8.2f}us {med / floor:8.2f}  {each}")
    goals = (("track(), no processors", 2.0), ("track(), super props + context", 2.5))
    if floor_name == ORJSON_FLOOR:
        for name, goal in goals:
            ratio = statistics.median(medians[name]) / floor
            print(f"goal {name}: <= {goal:.1f}x floor: {ratio:.2f}x "
                  f"({'holds' if ratio <= goal else 'does not hold'})")


if __name__ == "__main__":
    main()
