"""A local Mixpanel-compatible ingestion server: standard library only.

It accepts what Mixpanel's ingestion API accepts (``/track``, ``/engage``,
``/groups``, ``/import``), PostHog's ``/batch/`` and Segment's ``/v1/batch``
(so peers' libraries can be measured against it too), validates with the real
service's limits, answers with the real response shapes, remembers what it
accepted, and can be told to misbehave (status codes, ``Retry-After``,
delays, dropped connections)::

    with Collector() as c:                 # 127.0.0.1, a free port
        Consumer(api_host=c.url).send("event", message_json)
        assert c.unique("track")[0]["event"] == "Signed up"

Command line: ``python -m consumers.collector --port 8080``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from types import FrameType, TracebackType
from typing import Any, Callable, Optional, Union

from consumers._collector.app import App, Credentials
from consumers._collector.bodies import fast_loads
from consumers._collector.idle import WHEN, IdleFault
from consumers._collector.servers import MODES, AsyncioServer, ThreadedServer
from consumers._collector.store import ENDPOINTS, Fault, FaultPlan, Store

__all__ = ["ENDPOINTS", "EXIT_NOT_STARTED", "MODES", "Collector", "build_parser", "main"]

_Server = Union[ThreadedServer, AsyncioServer]


class Collector:
    """The local ingestion server, serving in background threads.

    ``port=0`` picks a free port.  ``mode`` is ``"threaded"`` (``http.server``,
    the default) or ``"asyncio"`` (a minimal HTTP/1.1 server on one event
    loop, faster for a single busy client).  ``gc_freeze=True`` periodically
    moves everything alive into ``gc.freeze()``'s permanent generation so the
    stored records stop slowing down the cyclic GC: about twice the throughput
    under load, at the price of a process-wide side effect (the command line
    turns it on; in-process it is off unless asked for).  ``fast_json=True``
    decodes with orjson when it is installed (falling back to the standard
    library for anything orjson refuses, so acceptance is unchanged); the
    collector itself needs nothing beyond the standard library.
    /import credentials: see
    :class:`consumers._collector.app.Credentials`; with none configured, any
    service account with a ``project_id`` and any token or API secret as the
    Basic user (empty password) are accepted.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        service_accounts: Optional[Mapping[str, str]] = None,
        project_id: Optional[str] = None,
        project_token: Optional[str] = None,
        api_secret: Optional[str] = None,
        mode: str = "threaded",
        on_request: Optional[Callable[[dict[str, Any]], None]] = None,
        gc_freeze: bool = False,
        fast_json: bool = False,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.host = host
        self.mode = mode
        self._port = port
        self._store = Store(gc_freeze=gc_freeze)
        self._faults = FaultPlan()
        self._idle = IdleFault()
        loads = fast_loads() if fast_json else None
        self.fast_json = loads is not None
        self._app = App(
            self._store,
            self._faults,
            Credentials(service_accounts, project_id, project_token, api_secret),
            on_request,
            loads or json.loads,
        )
        self._server: Optional[_Server] = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = self.url if self._server is not None else "stopped"
        return f"Collector({state}, mode={self.mode!r})"

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> Collector:
        """Start serving (idempotent); returns self."""
        with self._lock:
            if self._server is None:
                address = (self.host, self._port)
                server: _Server
                if self.mode == "asyncio":
                    server = AsyncioServer(address, self._app, self._idle)
                else:
                    server = ThreadedServer(address, self._app, self._idle)
                server.start()
                self._port = server.port
                self._server = server
        return self

    def stop(self) -> None:
        """Stop serving and close open connections (idempotent); records are kept."""
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.stop()

    def __enter__(self) -> Collector:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port served on (the free port picked, once started)."""
        return self._port

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self._port}"

    # -- what arrived ----------------------------------------------------------------

    def records(self, endpoint: Optional[str] = None) -> list[dict[str, Any]]:
        """Accepted records in arrival order, before dedup: ``{"endpoint", "message"}``."""
        return self._store.records(endpoint)

    def messages(self, endpoint: str) -> list[Any]:
        """The message dicts accepted on one endpoint (raw, duplicates included)."""
        return self._store.messages(endpoint)

    def unique(self, endpoint: str) -> list[Any]:
        """Messages after dedup on (event, time, distinct_id, $insert_id); PostHog: uuid."""
        return self._store.unique(endpoint)

    def requests(self) -> list[dict[str, Any]]:
        """Request log: method, path, query, headers (redacted), status, n_records, bytes, peer."""
        return self._store.requests()

    def stats(self) -> dict[str, Any]:
        """Counters: requests, bytes, faults; accepted/raw/unique/rejected per endpoint."""
        return self._store.stats()

    def reset(self) -> None:
        """Forget every record, request and counter, and clear the fault plan."""
        self._store.reset()
        self._faults.clear()
        self._idle.clear()

    # -- fault plan ------------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        *,
        retry_after: Union[int, float, str, None] = None,
        body: Union[str, bytes, dict[str, Any], None] = None,
        path: Optional[str] = None,
    ) -> None:
        """Answer the next ``n`` matching requests with ``status`` (records are not stored)."""
        self._faults.add(Fault(n, status=status, retry_after=retry_after, body=body, path=path))

    def delay_next(
        self, n: int, seconds: float, *, path: Optional[str] = None, after_headers: bool = False
    ) -> None:
        """Process the next ``n`` matching requests, then wait ``seconds`` before answering.

        ``after_headers``: send the status and headers at once and wait before the body.
        """
        self._faults.add(Fault(n, delay=seconds, path=path, after_headers=after_headers))

    def drop_next(self, n: int = 1, *, path: Optional[str] = None) -> None:
        """Close the connection of the next ``n`` matching requests without an answer."""
        self._faults.add(Fault(n, drop=True, path=path))

    def rate_limit(
        self,
        per_second: Optional[int],
        *,
        retry_after: Union[int, float, str, None] = None,
        path: Optional[str] = None,
    ) -> None:
        """Admit ``per_second`` requests per second on each endpoint; answer the rest 429.

        The 429 carries ``Retry-After``: when the next request would be
        admitted, or ``retry_after`` as given.  ``path`` limits only the
        endpoints it prefixes; ``None`` lifts the limit.  See
        :mod:`consumers._collector.ratelimit`.
        """
        self._app.limiter.configure(per_second, retry_after=retry_after, path=path)

    def rate_limited(self) -> int:
        """How many requests the rate limit has refused since it was set."""
        return self._app.limiter.refused

    def close_idle(
        self, after: Optional[float], *, reset: bool = False, when: str = "idle"
    ) -> None:
        """Close keep-alive connections left idle for ``after`` seconds (None: keep them).

        ``when="idle"`` closes them at that moment (a server's keep-alive
        timeout); ``when="request"`` closes one as the client's next request
        arrives on it, leaving that request unread (the timer firing while the
        client sends; a NAT that forgot the connection).  ``reset=True`` sends
        a TCP RST instead of a clean close.  See :mod:`consumers._collector.idle`.
        """
        self._idle.set(after, reset=reset, when=when)

    def idle_closed(self) -> int:
        """How many connections the idle fault has closed or reset so far."""
        return self._idle.count

    def clear_faults(self) -> None:
        """Forget every planned fault (the records stay)."""
        self._faults.clear()
        self._idle.clear()

    def faults(self) -> list[dict[str, Any]]:
        """The faults still planned, in order."""
        return self._faults.pending()


def _summary(entry: dict[str, Any]) -> str:
    fault = f" [{entry['fault']}]" if entry.get("fault") else ""
    return (
        f"{entry['method']} {entry['path']} -> {entry['status']} "
        f"records={entry['n_records']} accepted={entry['accepted']} "
        f"rejected={entry['rejected']} bytes={entry['bytes']}{fault}"
    )


#: Exit status when the collector could not start (busy port, unknown host):
#: the same meaning as the toolkit's main command line gives it.
EXIT_NOT_STARTED = 4


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, got {port}")
    return port


def _service_account(text: str) -> tuple[str, str]:
    user, sep, secret = text.partition(":")
    if not sep or not user or not secret:
        raise argparse.ArgumentTypeError("expected USER:SECRET, both non-empty")
    return user, secret


def build_parser() -> argparse.ArgumentParser:
    """The collector's command-line options, each with its default in ``--help``."""
    command = os.path.basename(sys.argv[0]) if sys.argv else ""
    parser = argparse.ArgumentParser(
        prog=command if command == "tracking-collector" else "python -m consumers.collector",
        description=(
            "Local Mixpanel-compatible ingestion server (/track, /engage, /groups, /import), "
            "plus PostHog /batch/ and Segment /v1/batch. Prints one line per request and, "
            "on Ctrl-C or SIGTERM, the per-endpoint counters as JSON."
        ),
        epilog=(
            "Inspector page: GET /_collector/inspector. "
            "Read API: GET /_collector/records, /_collector/requests, /_collector/stats; "
            "POST /_collector/reset; GET/POST /_collector/faults. "
            f"Exit status: 0 after Ctrl-C or SIGTERM, 2 for bad options, "
            f"{EXIT_NOT_STARTED} when it cannot listen (port in use, unknown host)."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=_port, default=8080,
                        help="port to listen on; 0 picks a free port (default: %(default)s)")
    parser.add_argument("--mode", choices=MODES, default="threaded",
                        help="server: threaded (one thread per connection) or asyncio "
                             "(one event loop) (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", default=False,
                        help="do not print a line per request (default: print one)")
    parser.add_argument("--fast-json", action="store_true", default=False,
                        help="decode with orjson if it is installed, same acceptance "
                             "(default: the standard library's json)")
    parser.add_argument("--close-idle", type=float, default=None, metavar="SECONDS",
                        help="close keep-alive connections idle this long "
                             "(default: keep them open)")
    parser.add_argument("--idle-reset", action="store_true", default=False,
                        help="with --close-idle: reset them (TCP RST) "
                             "(default: close them cleanly)")
    parser.add_argument("--idle-when", choices=WHEN, default="idle",
                        help="with --close-idle: at the idle timer, or as the next request "
                             "arrives, leaving it unread (default: %(default)s)")
    parser.add_argument("--project-id", default=None,
                        help="with --service-account: the project_id /import must name "
                             "(default: any)")
    parser.add_argument(
        "--service-account", action="append", type=_service_account, default=[],
        metavar="USER:SECRET",
        help="accept only these service accounts on /import, repeatable "
             "(default: any well-formed credentials)",
    )
    parser.add_argument("--rate-limit", type=int, default=None, metavar="N",
                        help="admit N requests per second per endpoint, answer the rest "
                             "429 with Retry-After (default: no limit)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the collector in the foreground until Ctrl-C or SIGTERM; return the exit status."""
    args = build_parser().parse_args(argv)
    accounts = dict(args.service_account)

    def report(entry: dict[str, Any]) -> None:
        print(_summary(entry), flush=True)

    collector = Collector(
        args.host, args.port, service_accounts=accounts or None, project_id=args.project_id,
        mode=args.mode, on_request=None if args.quiet else report, gc_freeze=True,
        fast_json=args.fast_json,
    )
    if args.rate_limit is not None:
        if args.rate_limit < 1:
            print("collector: --rate-limit must be at least 1", file=sys.stderr, flush=True)
            return 2
        collector.rate_limit(args.rate_limit)
    if args.close_idle is not None:
        try:
            collector.close_idle(args.close_idle, reset=args.idle_reset, when=args.idle_when)
        except ValueError as exc:
            print(f"collector: --close-idle: {exc}", file=sys.stderr, flush=True)
            return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: Optional[FrameType]) -> None:
        stop.set()

    # both stop the loop below, whenever they arrive (no KeyboardInterrupt to race with)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        collector.start()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print(f"collector: cannot listen on {args.host}:{args.port}: {reason}",
              file=sys.stderr, flush=True)
        return EXIT_NOT_STARTED
    decoder = "orjson" if collector.fast_json else "json"
    print(
        f"collector listening on {collector.url} ({collector.mode}, {decoder}); "
        f"inspector at {collector.url}/_collector/inspector; Ctrl-C stops",
        flush=True,
    )
    try:
        stop.wait()
    finally:
        collector.stop()
        print(json.dumps(collector.stats()["endpoints"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
