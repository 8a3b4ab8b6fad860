"""Cost of ``Tracker.track`` with a no-op sink, next to its floor and a peer.

Floor: ``json.dumps`` (compact) of the same message, already built.  Peer:
the ``mixpanel`` package's ``Mixpanel.track`` with a no-op consumer.  Each
call is timed with ``time.perf_counter_ns``; medians and p99 over several
rounds are printed, with ratios to the floor.

    python3 benchmarks/bench_track.py [--calls 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any, Callable

from _common import PROPS

from tracker import _json
from tracker.tracker import Tracker


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    tracker = Tracker("TOKEN", noop)
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
        "Tracker.track (orjson)" if _json.HAS_ORJSON else "Tracker.track": lambda: tracker.track(
            "user-1234", "Purchase", PROPS
        ),
    }
    if _json.HAS_ORJSON:
        stdlib_tracker = Tracker("TOKEN", noop)

        def track_stdlib() -> None:
            saved = _json.dumps
            try:
                _json.dumps = _json.dumps_stdlib  # type: ignore[assignment]
                stdlib_tracker.track("user-1234", "Purchase", PROPS)
            finally:
                _json.dumps = saved  # type: ignore[assignment]

        cases["Tracker.track (stdlib json only)"] = track_stdlib
    try:
        import mixpanel

        class NoopConsumer:
            def send(self, *a: Any, **k: Any) -> None:
                pass

        peer = mixpanel.Mixpanel("TOKEN", consumer=NoopConsumer())
        cases[f"peer: mixpanel {mixpanel.__version__} Mixpanel.track"] = lambda: peer.track(
            "user-1234", "Purchase", PROPS
        )
    except ImportError:
        print("(mixpanel package not installed: no peer row)")

    medians: dict[str, list[float]] = {k: [] for k in cases}
    p99s: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.rounds):
        for name, fn in cases.items():
            timed(fn, 500)  # warm up
            med, p99 = summary(timed(fn, args.calls))
            medians[name].append(med)
            p99s[name].append(p99)

    floor = statistics.median(medians["floor: json.dumps(message)"])
    print(f"{args.rounds} rounds x {args.calls} calls, {len(PROPS)} user properties, "
          f"Python {sys.version.split()[0]}, orjson={'yes' if _json.HAS_ORJSON else 'no'}")
    print(f"{'case':46s} {'median':>10s} {'p99':>10s} {'x floor':>8s}")
    for name in cases:
        med = statistics.median(medians[name])
        p99 = statistics.median(p99s[name])
        print(f"{name:46s} {med / 1000:8.2f}us {p99 / 1000:8.2f}us {med / floor:8.2f}")


if __name__ == "__main__":
    main()
