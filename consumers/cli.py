"""The command line: ``python -m consumers <command> ...``.

Each subcommand is one ``add_<name>_command(subparsers)`` function that adds
its parser and sets ``func`` (``func(args) -> exit status``); :data:`COMMANDS`
lists them.  A new subcommand is one more function and one more entry.

Credentials never go on the command line (where ``ps`` and shell history
would show them); they come from the environment:

==================================== =============================================
``MIXPANEL_PROJECT_TOKEN``           project token (``/import`` auth fallback)
``MIXPANEL_SERVICE_ACCOUNT_USERNAME`` service account for ``/import``
``MIXPANEL_SERVICE_ACCOUNT_SECRET``  ... its secret
``MIXPANEL_PROJECT_ID``              ... and the project it imports into
``MIXPANEL_API_SECRET``              legacy API secret for ``/import``
==================================== =============================================

Exit status of ``replay``: 0 everything delivered; 1 some lines or records
were rejected (see the reject file); 3 delivery failed and replay stopped
(run it again to resume); 4 replay could not start (no such log, or another
replay of it is running); 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any, Callable, Optional, TextIO

from consumers.endpoints import REGIONS

__all__ = [
    "COMMANDS",
    "EXIT_DELIVERY_FAILED",
    "EXIT_NOT_STARTED",
    "EXIT_OK",
    "EXIT_REJECTED",
    "ProgressBar",
    "add_replay_command",
    "add_worker_command",
    "build_parser",
    "consumer_kwargs_from_env",
    "main",
    "run_worker_command",
]

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_DELIVERY_FAILED = 3
EXIT_NOT_STARTED = 4

Subparsers = Any  # argparse._SubParsersAction, private in typeshed
Command = Callable[[Subparsers], None]


def consumer_kwargs_from_env(env: Optional[Mapping[str, str]] = None) -> dict[str, Any]:
    """Credential keywords for ``Consumer``/``BufferedConsumer`` from ``MIXPANEL_*`` variables."""
    env = os.environ if env is None else env
    kwargs: dict[str, Any] = {}
    if env.get("MIXPANEL_PROJECT_TOKEN"):
        kwargs["project_token"] = env["MIXPANEL_PROJECT_TOKEN"]
    if env.get("MIXPANEL_API_SECRET"):
        kwargs["api_secret"] = env["MIXPANEL_API_SECRET"]
    names = ("USERNAME", "SECRET")
    account = [env.get(f"MIXPANEL_SERVICE_ACCOUNT_{n}", "") for n in names]
    if any(account):
        if not all(account) or not env.get("MIXPANEL_PROJECT_ID"):
            raise ValueError(
                "a service account needs MIXPANEL_SERVICE_ACCOUNT_USERNAME, "
                "MIXPANEL_SERVICE_ACCOUNT_SECRET and MIXPANEL_PROJECT_ID"
            )
        kwargs["service_account"] = (account[0], account[1], env["MIXPANEL_PROJECT_ID"])
    return kwargs


class ProgressBar:
    """A one-line progress bar (events, events/s, ETA) redrawn on a terminal stream."""

    def __init__(self, stream: TextIO, *, width: int = 24, interval: float = 0.1) -> None:
        self._stream = stream
        self._width = width
        self._interval = interval
        self._last = 0.0
        self._drawn = False

    def __call__(self, progress: Any) -> None:
        now = time.monotonic()
        done = progress.bytes_done >= progress.bytes_total
        if not done and now - self._last < self._interval:
            return
        self._last = now
        fraction = progress.bytes_done / progress.bytes_total if progress.bytes_total else 1.0
        fraction = min(fraction, 1.0)
        filled = int(fraction * self._width)
        rate = progress.sent / progress.elapsed if progress.elapsed > 0 else 0.0
        if 0 < fraction < 1:
            remaining = progress.elapsed * (1 - fraction) / fraction
            eta = time.strftime("%H:%M:%S", time.gmtime(remaining))
        else:
            eta = "--:--:--"
        self._stream.write(
            f"\r{fraction:4.0%} [{'#' * filled}{'.' * (self._width - filled)}] "
            f"{progress.sent:,} events  {rate:,.0f} events/s  ETA {eta}\x1b[K"
        )
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()


# -- replay ---------------------------------------------------------------------------------


def add_replay_command(subparsers: Subparsers) -> None:
    """``replay PATH``: deliver a FileConsumer log or spool folder."""
    p = subparsers.add_parser(
        "replay",
        help="deliver a log written by FileConsumer (or the Ruby library)",
        description=(
            "Deliver every line of a log file or spool folder, in confirmed batches, "
            "resuming after the last confirmed batch. Credentials come from MIXPANEL_* "
            "environment variables, never from the command line."
        ),
    )
    p.add_argument("path", help="log file, or spool folder of events-NNNNNN.log segments")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--region", choices=sorted(REGIONS), help="Mixpanel residency (default us)")
    where.add_argument("--api-host", metavar="URL", help="custom base URL (proxy, local collector)")
    p.add_argument("--batch-size", type=_positive_int, default=500, metavar="N",
                   help="messages per confirmed batch (default 500, the service takes <= 2000)")
    p.add_argument("--dry-run", action="store_true",
                   help="validate and count only: send nothing, write nothing")
    p.add_argument("--no-checkpoint", action="store_true",
                   help="start from the beginning and do not record progress")
    p.add_argument("--rejects", metavar="PATH", help="reject file (default beside the log)")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="HTTP read timeout per request")
    p.add_argument("--progress", choices=("auto", "always", "never"), default="auto",
                   help="progress bar on stderr (auto: only when stderr is a terminal)")
    p.set_defaults(func=run_replay)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _build_sink(args: argparse.Namespace) -> Any:
    from consumers import BufferedConsumer

    kwargs = consumer_kwargs_from_env()
    if args.timeout is not None:
        kwargs["timeout"] = args.timeout
    return BufferedConsumer(
        max_batch=args.batch_size, region=args.region, api_host=args.api_host, **kwargs
    )


def _discard(message_type: str, message_json: str) -> None:
    """The dry run's sink (never called: replay validates only)."""


def run_replay(args: argparse.Namespace) -> int:
    """Run ``replay`` as parsed; print one summary line; return the exit status."""
    from consumers.replaying import ReplayInProgressError, replay

    show = args.progress == "always" or (args.progress == "auto" and sys.stderr.isatty())
    bar = ProgressBar(sys.stderr) if show else None
    try:
        sink = _discard if args.dry_run else _build_sink(args)
    except ValueError as e:
        print(f"replay: {e}", file=sys.stderr)
        return EXIT_NOT_STARTED
    try:
        result = replay(
            args.path,
            sink,
            batch_size=args.batch_size,
            checkpoint=not args.no_checkpoint,
            reject_path=args.rejects,
            progress=bar,
            dry_run=args.dry_run,
        )
    except (FileNotFoundError, ReplayInProgressError) as e:
        print(f"replay: {e}", file=sys.stderr)
        return EXIT_NOT_STARTED
    finally:
        if bar is not None:
            bar.close()
        close = getattr(sink, "close", None)
        if callable(close):
            close()
    for note in result.notes:
        print(f"replay: note: {note}", file=sys.stderr)
    for example in result.examples:
        where = f"{example.get('segment')}:{example.get('line')}"
        print(f"replay: rejected {where}: {example['reason']}", file=sys.stderr)
    for segment, line in result.torn_at:
        print(f"replay: incomplete last line {segment}:{line} left for the next run",
              file=sys.stderr)
    print(result.summary())
    if result.error is not None:
        return EXIT_DELIVERY_FAILED
    if result.rejected:
        return EXIT_REJECTED
    return EXIT_OK


def add_worker_command(subparsers: Subparsers) -> None:
    """``worker``: deliver a Redis stream (see :mod:`consumers.redis_worker`)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "worker",
        help="deliver tuples queued on a Redis stream (RedisStreamSink)",
        description=(
            "Read a Redis stream in a consumer group and deliver each tuple to Mixpanel. "
            "Run as many as you like on as many machines: they share the group. "
            "Credentials for /import come from MIXPANEL_* environment variables."
        ),
    )
    _add_worker_arguments(parser)
    parser.set_defaults(func=run_worker_command)


def _add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://localhost:6379/0"),
                        help="Redis URL: redis://, rediss://user:pass@host:port/0, unix:// "
                             "(default: $REDIS_URL or redis://localhost:6379/0)")
    parser.add_argument("--stream", default="tracking", help="stream key (default: tracking)")
    parser.add_argument("--group", default="mixpanel", help="consumer group (default: mixpanel)")
    parser.add_argument("--consumer-name", default=None,
                        help="this worker's name in the group (default: host-pid)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--region", choices=["us", "eu", "in"], default=None,
                       help="Mixpanel data-residency region (default: us)")
    where.add_argument("--api-host", default=None,
                       help="base URL instead of a region (a proxy, the local collector)")
    parser.add_argument("--batch-size", type=int, default=500,
                        help="entries read per XREADGROUP (default: 500)")
    parser.add_argument("--max-batch", type=int, default=None,
                        help="messages per HTTP request (default: the consumer's)")
    parser.add_argument("--claim-idle-ms", type=int, default=60_000,
                        help="reclaim entries another worker held this long (default: 60000)")
    parser.add_argument("--dead-letter-stream", default=None,
                        help="where refused messages go (default: STREAM:dead)")
    parser.add_argument("--max-deliveries", type=int, default=10,
                        help="dead-letter an entry reclaimed from dead workers more often "
                             "than this (default: 10)")
    parser.add_argument("--drain", action="store_true",
                        help="exit once the group has nothing left to read or retry")
    parser.add_argument("--stats", action="store_true",
                        help="print the group's progress as JSON and exit")


def run_worker_command(args: argparse.Namespace) -> int:
    """Run the ``worker`` subcommand; returns the exit status."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from consumers.buffered import BufferedConsumer
    from consumers.redis_stream import connect, import_redis
    from consumers.redis_worker import StreamWorker, stream_stats

    dead = args.dead_letter_stream or f"{args.stream}:dead"
    if args.stats:
        client, _ = connect(args.redis)
        try:
            print(json.dumps(stream_stats(client, args.stream, args.group, dead), indent=2))
        finally:
            client.close()
        return 0
    try:
        extra = consumer_kwargs_from_env()
    except ValueError as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return 2
    if args.max_batch is not None:
        extra["max_batch"] = args.max_batch
    consumer = BufferedConsumer(region=args.region, api_host=args.api_host, **extra)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: Any) -> None:
        logging.getLogger("consumers.redis_worker").info(
            "signal %d: finishing the batch in flight", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    worker = StreamWorker(
        args.redis, consumer, stream=args.stream, group=args.group, name=args.consumer_name,
        batch_size=args.batch_size, claim_idle_ms=args.claim_idle_ms, dead_letter_stream=dead,
        max_deliveries=args.max_deliveries,
    )
    try:
        if args.drain:
            _drain(worker, stop)
        else:
            worker.run(stop)
        try:
            final = worker.stats()
        except import_redis().RedisError:
            final = {"worker": {"name": worker.name, **worker.counters,
                                "last_error": worker.last_error}}
        print(json.dumps(final), flush=True)
    finally:
        worker.close()
        consumer.close()
    return 0


def _drain(worker: Any, stop: threading.Event) -> None:
    """Run ``worker`` until ``stop`` is set or its group has nothing left to read or retry."""
    from consumers.redis_worker import stream_stats

    def _watch() -> None:
        while not stop.wait(0.5):
            info = stream_stats(worker.client, worker.stream, worker.group)
            if info["lag"] == 0 and info["pending"] == 0:
                stop.set()

    watcher = threading.Thread(target=_watch, name="drain-watch", daemon=True)
    watcher.start()
    worker.run(stop)


#: Every subcommand, in the order ``--help`` lists them.
COMMANDS: list[Command] = [add_replay_command, add_worker_command]


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m consumers`` parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="python -m consumers",
        description="Deliver tracked messages: replay logs, run workers.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for add_command in COMMANDS:
        add_command(subparsers)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the subcommand, return its exit status."""
    args = build_parser().parse_args(argv)
    status: int = args.func(args)
    return status
