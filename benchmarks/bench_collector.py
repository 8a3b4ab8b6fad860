"""How many /track requests per second the local collector takes from ONE keep-alive client.

Each request is a form POST of ``data=base64(<50 events>)``, the way the
Mixpanel libraries send a batch.  The collector runs as a real subprocess
(``python -m consumers.collector --quiet --mode M``) so the client does not
share its interpreter; the client is a raw socket sending pre-built request
bytes, one request at a time (no pipelining), so it stays out of the way.

    python3 benchmarks/bench_collector.py [--runs 5] [--seconds 1.5] [--batch 50]

Prints, per server mode, the median over the runs of requests/s and events/s,
and each mode's ratio to the first.  Store is reset between runs.  Modes:
``threaded`` and ``asyncio`` (standard library only), and the same with
``+orjson`` (the collector's ``--fast-json``).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import statistics
import time
import urllib.parse
import urllib.request

from _common import CollectorProcess


def _event(i: int) -> dict[str, object]:
    return {
        "event": "Signed up",
        "properties": {
            "token": "bench-token",
            "distinct_id": f"user-{i % 97}",
            "time": 1_700_000_000_000 + i,
            "$insert_id": f"bench-{i:08d}",
            "mp_lib": "python",
            "$lib_version": "1.0.0",
            "plan": "pro",
            "price": 12.5,
        },
    }


def build_request(port: int, batch: int) -> bytes:
    """One complete HTTP/1.1 request: POST /track with form data=base64(JSON array)."""
    payload = json.dumps([_event(i) for i in range(batch)], separators=(",", ":"))
    data = base64.b64encode(payload.encode()).decode()
    body = urllib.parse.urlencode({"data": data}).encode()
    head = (
        "POST /track HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


def _read_response(sock: socket.socket, buffer: bytearray) -> bytes:
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(buffer[:end]).lower()
            start = head.find(b"content-length:")
            length = int(head[start + 15:].split(b"\r\n", 1)[0]) if start >= 0 else 0
            total = end + 4 + length
            if len(buffer) >= total:
                status = bytes(buffer[9:12])
                del buffer[:total]
                return status
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("collector closed the connection")
        buffer += chunk


def run_once(port: int, request: bytes, seconds: float) -> float:
    """Requests per second over ``seconds`` on one keep-alive connection."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = bytearray()
    count = 0
    try:
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            for _ in range(50):
                sock.sendall(request)
                if _read_response(sock, buffer) != b"200":
                    raise RuntimeError("collector refused the benchmark request")
            count += 50
            now = time.perf_counter()
            if now >= deadline:
                return count / (now - start)
    finally:
        sock.close()


def bench_mode(mode: str, runs: int, seconds: float, batch: int) -> list[float]:
    mode, _, extra = mode.partition("+")
    flags = ["--fast-json"] if extra == "orjson" else []
    with CollectorProcess("--mode", mode, *flags) as collector:
        request = build_request(collector.port, batch)
        run_once(collector.port, request, 0.3)  # warm-up
        rates = []
        for _ in range(runs):
            collector.reset()
            rates.append(run_once(collector.port, request, seconds))
            assert collector.stats()["endpoints"]["track"]["rejected"] == 0
        return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--modes", default="threaded,asyncio,threaded+orjson,asyncio+orjson",
                        help="server modes; +orjson adds the collector's --fast-json")
    args = parser.parse_args()
    print(f"one keep-alive client, POST /track data=base64(JSON array of {args.batch} events), "
          f"{args.runs} runs x {args.seconds}s, cores={os.cpu_count()}")
    medians = {}
    for mode in args.modes.split(","):
        rates = bench_mode(mode, args.runs, args.seconds, args.batch)
        med = statistics.median(rates)
        medians[mode] = med
        runs = " ".join(f"{r:,.0f}" for r in rates)
        print(f"{mode:>15}: median {med:,.0f} req/s  {med * args.batch:,.0f} events/s  "
              f"(runs: {runs})")
    base = next(iter(medians))
    for mode, med in medians.items():
        print(f"ratio {mode}/{base}: {med / medians[base]:.2f}x")


if __name__ == "__main__":
    main()
