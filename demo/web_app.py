"""Background tracking in a threaded web app: requests never wait for the analytics service.

One ``Tracker`` is shared by every request thread.  It hands each message to a
``BackgroundConsumer``, which queues it and returns; one worker thread batches
the messages (``BufferedConsumer``) and posts them.  The destination here is the
embedded local collector, so nothing leaves the machine.

Run it::

    python -m demo.web_app --requests 500 --concurrency 16

It starts the collector, serves the app on 127.0.0.1, fires the requests
concurrently, closes the consumer (which delivers what is still queued) and
prints what the collector received.
"""

from __future__ import annotations

import argparse
import json
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


def run(requests: int = 300, concurrency: int = 16, *, out: Optional[Any] = None) -> dict[str, Any]:
    """Serve the app, fire ``requests`` concurrent requests, return what was received."""
    with Collector() as collector:
        consumer = BackgroundConsumer(BufferedConsumer(api_host=collector.url))
        tracker = Tracker("demo-token", consumer)
        server = make_server("127.0.0.1", 0, make_app(tracker),
                             server_class=ThreadingWSGIServer, handler_class=QuietHandler)
        serving = threading.Thread(target=server.serve_forever, daemon=True)
        serving.start()
        base = f"http://127.0.0.1:{server.server_port}"

        def hit(path: str) -> int:
            with urllib.request.urlopen(base + path, timeout=30) as response:
                return int(response.status)

        try:
            with ThreadPoolExecutor(concurrency) as pool:
                statuses = list(pool.map(hit, _paths(requests)))
        finally:
            server.shutdown()
            server.server_close()
        consumer.close()  # delivers whatever is still queued
        result = {
            "requests": len(statuses),
            "ok": statuses.count(200),
            "events": len(collector.unique("track")),
            "profile_updates": len(collector.unique("engage")),
            "http_posts_to_collector": len(collector.requests()),
            "consumer": consumer.stats(),
        }
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)
    result = run(args.requests, args.concurrency)
    print(f"{result['ok']}/{result['requests']} requests answered 200")
    print(f"collector received {result['events']} events and "
          f"{result['profile_updates']} profile updates "
          f"in {result['http_posts_to_collector']} HTTP posts")
    print("consumer stats:", result["consumer"])
    expected_events = result["requests"]
    return 0 if result["events"] == expected_events else 1


if __name__ == "__main__":
    raise SystemExit(main())
