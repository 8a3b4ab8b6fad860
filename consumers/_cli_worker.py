"""The ``worker`` command: deliver a Redis stream (see :mod:`consumers.redis_worker`)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from typing import Any

from consumers._cli_common import (
    EXIT_DELIVERY_FAILED,
    EXIT_NOT_STARTED,
    EXIT_OK,
    IMPORT_CREDENTIALS,
    Subparsers,
    add_destination_arguments,
    consumer_kwargs_from_env,
    positive_int,
)

__all__ = ["add_worker_command", "run_worker_command"]


def add_worker_command(subparsers: Subparsers) -> None:
    """``worker``: deliver a Redis stream (see :mod:`consumers.redis_worker`)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "worker",
        help="deliver tuples queued on a Redis stream (RedisStreamSink)",
        description=(
            "Read a Redis stream in a consumer group and deliver each tuple to Mixpanel.\n"
            "Run as many as you like on as many machines: they share the group.\n"
            "Credentials for /import come from MIXPANEL_* environment variables."
        ),
        epilog=_WORKER_EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_worker_arguments(parser)
    parser.set_defaults(func=run_worker_command)


#: The ``worker`` exit statuses, as ``--help`` shows them.
_WORKER_EXIT_STATUS = """\
exit status:
  0  stopped by SIGTERM/SIGINT after the batch in flight, or --drain found nothing left
  3  --drain gave up: Redis or the service kept failing for --give-up-after seconds
     (what was not delivered stays in the stream: run again)
  4  could not start or must not go on: Redis unreachable or refusing the password,
     a bad --redis URL, the redis package missing, incomplete MIXPANEL_* variables,
     or an /import entry without /import credentials (it stays in the stream)
  2  bad usage"""

def _add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    # The default of --redis is spelled out, not interpolated: $REDIS_URL may hold a password.
    parser.add_argument("--redis", metavar="URL",
                        default=os.environ.get("REDIS_URL", "redis://localhost:6379/0"),
                        help="Redis URL: redis://, rediss://user:pass@host:port/0, unix:// "
                             "(default: $REDIS_URL, else redis://localhost:6379/0)")
    parser.add_argument("--stream", default="tracking", metavar="KEY",
                        help="stream key (default: %(default)s)")
    parser.add_argument("--group", default="mixpanel", metavar="NAME",
                        help="consumer group (default: %(default)s)")
    parser.add_argument("--consumer-name", default=None, metavar="NAME",
                        help="this worker's name in the group (default: HOSTNAME-PID)")
    add_destination_arguments(parser)
    parser.add_argument("--batch-size", type=positive_int, default=500, metavar="N",
                        help="entries read per XREADGROUP (default: %(default)s)")
    parser.add_argument("--max-batch", type=_request_batch, default=50, metavar="N",
                        help="messages per HTTP request, at most 2000 (default: %(default)s)")
    parser.add_argument("--claim-idle-ms", type=positive_int, default=60_000, metavar="MS",
                        help="reclaim entries another worker held this long "
                             "(default: %(default)s)")
    parser.add_argument("--dead-letter-stream", default=None, metavar="KEY",
                        help="where refused messages go (default: STREAM:dead)")
    parser.add_argument("--max-deliveries", type=positive_int, default=10, metavar="N",
                        help="dead-letter an entry reclaimed from dead workers more often "
                             "than this (default: %(default)s)")
    parser.add_argument("--drain", action="store_true",
                        help="exit once the group has nothing left to read or retry "
                             "(default: off, run until SIGTERM)")
    parser.add_argument("--give-up-after", type=_positive_seconds, default=60.0,
                        metavar="SECONDS",
                        help="with --drain, exit 3 when Redis or the service has kept "
                             "failing this long (default: %(default)s)")
    parser.add_argument("--stats", action="store_true",
                        help="print the group's progress as JSON and exit (default: off)")


def _request_batch(text: str) -> int:
    from consumers.consumer import MAX_BATCH

    value = positive_int(text)
    if value > MAX_BATCH:
        raise argparse.ArgumentTypeError(
            f"must be at most {MAX_BATCH} (the service's limit per request), got {text}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _worker_error(text: str) -> int:
    print(f"worker: {text}", file=sys.stderr)
    return EXIT_NOT_STARTED


def _redis_problem(redis_mod: Any, where: str, exc: Exception) -> str:
    """One line saying why Redis at ``where`` cannot be used, and what to do."""
    if isinstance(exc, redis_mod.AuthenticationError):
        return (f"Redis at {where} refused the credentials ({exc}); put the right user and "
                "password in the --redis URL or REDIS_URL")
    if isinstance(exc, redis_mod.ConnectionError):
        return f"cannot reach Redis at {where} ({exc}); start it, or fix --redis / REDIS_URL"
    return f"Redis at {where} refused to serve the worker ({exc})"


def run_worker_command(args: argparse.Namespace) -> int:
    """Run the ``worker`` subcommand; returns the exit status."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from consumers.buffered import BufferedConsumer
    from consumers.redis_stream import connect, describe, import_redis
    from consumers.redis_worker import StreamWorker, stream_stats

    try:
        redis_mod = import_redis()
    except ImportError as exc:
        return _worker_error(str(exc))
    where = describe(args.redis)
    dead = args.dead_letter_stream or f"{args.stream}:dead"
    if args.stats:
        try:
            client, _ = connect(args.redis)
        except ValueError as exc:
            return _worker_error(f"bad --redis URL {where}: {exc}")
        try:
            print(json.dumps(stream_stats(client, args.stream, args.group, dead), indent=2))
        except redis_mod.RedisError as exc:
            return _worker_error(_redis_problem(redis_mod, where, exc))
        finally:
            client.close()
        return EXIT_OK
    try:
        extra = consumer_kwargs_from_env()
    except ValueError as exc:
        return _worker_error(str(exc))
    consumer = BufferedConsumer(
        region=args.region, api_host=args.api_host, max_batch=args.max_batch, **extra
    )
    try:
        worker = StreamWorker(
            args.redis, consumer, stream=args.stream, group=args.group,
            name=args.consumer_name, batch_size=args.batch_size,
            claim_idle_ms=args.claim_idle_ms, dead_letter_stream=dead,
            max_deliveries=args.max_deliveries,
        )
    except ValueError as exc:
        consumer.close()
        return _worker_error(f"bad --redis URL {where}: {exc}")
    try:
        try:
            worker.client.ping()
        except redis_mod.RedisError as exc:
            return _worker_error(_redis_problem(redis_mod, where, exc))
        return _run_worker(worker, args, redis_mod)
    finally:
        worker.close()
        consumer.close()


def _run_worker(worker: Any, args: argparse.Namespace, redis_mod: Any) -> int:
    from consumers.errors import ConfigurationError

    stop = threading.Event()

    def _on_signal(signum: int, _frame: Any) -> None:
        logging.getLogger("consumers.redis_worker").info(
            "signal %d: finishing the batch in flight", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    status = EXIT_OK
    try:
        if args.drain and not _drain(worker, stop, args.give_up_after):
            status = EXIT_DELIVERY_FAILED
        elif not args.drain:
            worker.run(stop)
    except ConfigurationError:
        print(f"worker: stopped at an /import entry without /import credentials: "
              f"set {IMPORT_CREDENTIALS} and start the worker again; the entries not "
              f"delivered stay in stream {args.stream!r}", file=sys.stderr)
        status = EXIT_NOT_STARTED
    try:
        final = worker.stats()
    except redis_mod.RedisError:
        final = {"worker": {"name": worker.name, **worker.counters,
                            "last_error": worker.last_error}}
    print(json.dumps(final), flush=True)
    if status == EXIT_DELIVERY_FAILED:
        print(f"worker: --drain gave up after {args.give_up_after:g} s of failures "
              f"({worker.last_error}); what was not delivered stays in stream "
              f"{args.stream!r}: run again", file=sys.stderr)
    return status


def _drain(worker: Any, stop: threading.Event, give_up_after: float = 60.0) -> bool:
    """Run ``worker`` until its group has nothing left (True), ``stop`` is set, or it gives up."""
    drained: bool = worker.drain(stop, give_up_after=give_up_after)
    return drained or stop.is_set()
