"""Background tracking in a threaded web app: requests never wait for the analytics service.

One ``Tracker`` is shared by every request thread.  It hands each message to a
``BackgroundConsumer``, which queues it and returns; one worker thread batches
the messages (``BufferedConsumer``) and posts them.  The destination here is the
embedded local collector, so nothing leaves the machine.

Run it::

    python -m demo.web_app --requests 500 --concurrency 16
    python -m demo.web_app --workers 3     # forked worker processes, like gunicorn --preload

It starts the collector, serves the app on 127.0.0.1, fires the requests
concurrently, closes the consumer (which delivers what is still queued) and
prints what the collector received.

With ``--workers N`` the app, its tracker and the listening socket are made
once and the process forks N workers that serve from the same socket, as
``gunicorn --preload`` does.  The parent tracks a "Server started" event
before forking, so every worker inherits a running consumer with a queue,
a worker thread and a pooled connection; each worker still delivers only its
own events, on its own connections.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socketserver
import threading
import urllib.request
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from consumers.background import BackgroundConsumer
from consumers.buffered import BufferedConsumer
from consumers.collector import Collector
from tracker import Tracker

StartResponse = Callable[..., Any]


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    """wsgiref's server, one thread per request."""

    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def make_app(tracker: Tracker) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """A tiny shop: ``/signup``, ``/view`` and ``/buy`` each track one event."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        user = query.get("user", "anonymous-visitor")
        path = environ.get("PATH_INFO", "/")
        if path == "/signup":
            tracker.track(user, "Signed up", {"plan": query.get("plan", "free")})
            tracker.people.set(user, {"$name": user, "plan": query.get("plan", "free")})
        elif path == "/view":
            tracker.track(user, "Viewed item", {"item": query.get("item", "?")})
        elif path == "/buy":
            tracker.track(user, "Bought item", {"item": query.get("item", "?"),
                                                "price": float(query.get("price", "0"))})
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"ok": True, "user": user}).encode()]

    return app


def _paths(n: int) -> list[str]:
    kinds = ["/signup?user=u{i}&plan=pro", "/view?user=u{i}&item=book{i}",
             "/buy?user=u{i}&item=book{i}&price=9.5"]
    return [kinds[i % 3].format(i=i) for i in range(n)]


def run(
    requests: int = 300, concurrency: int = 16, *, workers: int = 0
) -> dict[str, Any]:
    """Serve the app, fire ``requests`` concurrent requests, return what was received.

    ``workers``: serve from that many forked processes instead of this one.
    """
    with Collector() as collector:
        consumer = BackgroundConsumer(BufferedConsumer(api_host=collector.url))
        tracker = Tracker("demo-token", consumer)
        server = make_server("127.0.0.1", 0, make_app(tracker),
                             server_class=ThreadingWSGIServer, handler_class=QuietHandler)
        base = f"http://127.0.0.1:{server.server_port}"
        children: list[int] = []
        if workers:
            tracker.track("server", "Server started", {"workers": workers})
            consumer.flush()  # the worker thread runs and a connection waits in the pool
            children = [_fork_worker(server, consumer) for _ in range(workers)]
        else:
            threading.Thread(target=server.serve_forever, daemon=True).start()

        def hit(path: str) -> int:
            with urllib.request.urlopen(base + path, timeout=30) as response:
                return int(response.status)

        try:
            with ThreadPoolExecutor(concurrency) as pool:
                statuses = list(pool.map(hit, _paths(requests)))
        finally:
            if children:
                for pid in children:
                    os.kill(pid, signal.SIGTERM)
                failed = [pid for pid in children if os.waitpid(pid, 0)[1] != 0]
                if failed:
                    raise RuntimeError(f"worker processes {failed} did not exit cleanly")
            else:
                server.shutdown()
            server.server_close()
        consumer.close()  # delivers whatever is still queued
        events = collector.messages("track")
        result = {
            "requests": len(statuses),
            "ok": statuses.count(200),
            "events": len(collector.unique("track")),
            "events_sent_twice": len(events) - len(collector.unique("track")),
            "profile_updates": len(collector.unique("engage")),
            "http_posts_to_collector": len(collector.requests()),
            "client_connections": len({entry["peer"] for entry in collector.requests()}),
            "consumer": consumer.stats(),
        }
    return result


def _fork_worker(server: WSGIServer, consumer: BackgroundConsumer) -> int:
    """Fork one process serving ``server`` until SIGTERM; returns its pid (in the parent)."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        # Every worker waits on the same socket: when one takes a connection, the
        # others' accept() must come back empty instead of blocking.
        server.socket.setblocking(False)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        while not stop.wait(0.1):
            pass
        server.shutdown()
        consumer.close()  # this worker's own events; os._exit skips the atexit drain
        code = 0
    finally:
        os._exit(code)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=0,
                        help="serve from this many forked processes (default: threads only)")
    args = parser.parse_args(argv)
    result = run(args.requests, args.concurrency, workers=args.workers)
    print(f"{result['ok']}/{result['requests']} requests answered 200")
    print(f"collector received {result['events']} events and "
          f"{result['profile_updates']} profile updates "
          f"in {result['http_posts_to_collector']} HTTP posts "
          f"on {result['client_connections']} connections; "
          f"{result['events_sent_twice']} events sent twice")
    print("parent's consumer stats:", result["consumer"])
    expected_events = result["requests"] + (1 if args.workers else 0)
    return 0 if result["events"] == expected_events and not result["events_sent_twice"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
