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

Exit status of ``worker``: 0 stopped by a signal, or ``--drain`` found nothing
left; 3 ``--drain`` gave up after ``--give-up-after`` seconds of failures
(the rest stays in the stream); 4 the worker could not start or must not go
on (Redis unreachable or refusing the password, bad ``--redis``, incomplete
``MIXPANEL_*`` variables, an ``/import`` entry without ``/import``
credentials: it stays in the stream); 2 bad usage.  ``replay_main`` and
``worker_main`` are the ``tracking-replay`` and ``tracking-worker`` commands.

Exit status of ``replay``: 0 everything delivered; 1 some lines or records
were refused or unreadable (see the reject file; or would be, with
``--dry-run``), or a rotated file's tail could not be found; 3 delivery
failed (no answer, 429/5xx past the retry budget, 401/403) and replay
stopped: run it again to resume, the undelivered messages are sent first;
4 replay could not start or cannot go on as configured (no such log, another
replay of it running, a damaged checkpoint, /import without credentials);
2 bad usage.
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
    "replay_main",
    "run_worker_command",
    "worker_main",
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
            "environment variables, never from the command line. Exit status: 0 all "
            "delivered; 1 refused or unreadable lines (see the reject file); 3 delivery "
            "failed, run again to resume; 4 could not start or not configured; 2 bad usage."
        ),
    )
    p.add_argument("path", help="log file, or spool folder of events-NNNNNN.log segments")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--region", choices=sorted(REGIONS),
                       help="Mixpanel data-residency region (default: us)")
    where.add_argument("--api-host", metavar="URL",
                       help="base URL instead of a region: a proxy, the local collector "
                            "(default: the region's hosts)")
    p.add_argument("--batch-size", type=_positive_int, default=500, metavar="N",
                   help="messages per confirmed batch; the service takes at most 2000 "
                        "(default: 500)")
    p.add_argument("--dry-run", action="store_true",
                   help="check every message against the service's rules and report what "
                        "would be refused: send nothing, write nothing (default: off)")
    p.add_argument("--no-checkpoint", action="store_true",
                   help="start from the beginning and do not record progress (default: off)")
    p.add_argument("--restart", action="store_true",
                   help="ignore the checkpoint, even a damaged one, and replay the log from "
                        "its beginning, recording progress anew (default: off)")
    p.add_argument("--rejects", metavar="PATH",
                   help="reject file (default: LOG.rejects, or replay.rejects in a folder)")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="HTTP read timeout per request (default: the consumer's, 10)")
    p.add_argument("--progress", choices=("auto", "always", "never"), default="auto",
                   help="progress bar on stderr; auto: only when stderr is a terminal "
                        "(default: auto)")
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
    from consumers.replaying import CheckpointError, ReplayInProgressError, replay

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
            restart=args.restart,
        )
    except (FileNotFoundError, ReplayInProgressError, CheckpointError) as e:
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
    for lost in result.unreachable:
        print(f"replay: unreachable: {lost}", file=sys.stderr)
    print(result.summary())
    if result.stopped_by == "configuration":
        print(f"replay: {_configuration_hint(result.error or '')}", file=sys.stderr)
        return EXIT_NOT_STARTED
    if result.error is not None:
        return EXIT_DELIVERY_FAILED
    if result.rejected or result.unreachable:
        return EXIT_REJECTED
    return EXIT_OK


_IMPORT_CREDENTIALS = (
    "set MIXPANEL_SERVICE_ACCOUNT_USERNAME, MIXPANEL_SERVICE_ACCOUNT_SECRET and "
    "MIXPANEL_PROJECT_ID (a service account), or MIXPANEL_API_SECRET, in the environment"
)


def _configuration_hint(error: str) -> str:
    """What a user of the command line does about a consumer that cannot send a type."""
    if "/import" in error:
        return (f"sending to /import needs credentials: {_IMPORT_CREDENTIALS}, then run "
                "replay again; the messages not sent are kept and go first")
    return f"{error}; fix the configuration and run replay again"


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

#: What to set when an /import entry meets a worker without /import credentials.
_IMPORT_CREDENTIALS_HINT = (
    "set MIXPANEL_SERVICE_ACCOUNT_USERNAME, MIXPANEL_SERVICE_ACCOUNT_SECRET and "
    "MIXPANEL_PROJECT_ID (or MIXPANEL_API_SECRET, or MIXPANEL_PROJECT_TOKEN) and start "
    "the worker again"
)


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
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--region", choices=sorted(REGIONS), default=None,
                       help="Mixpanel residency (default: us)")
    where.add_argument("--api-host", metavar="URL", default=None,
                       help="custom base URL (proxy, local collector) instead of a region "
                            "(default: the region's)")
    parser.add_argument("--batch-size", type=_positive_int, default=500, metavar="N",
                        help="entries read per XREADGROUP (default: %(default)s)")
    parser.add_argument("--max-batch", type=_request_batch, default=50, metavar="N",
                        help="messages per HTTP request, at most 2000 (default: %(default)s)")
    parser.add_argument("--claim-idle-ms", type=_positive_int, default=60_000, metavar="MS",
                        help="reclaim entries another worker held this long "
                             "(default: %(default)s)")
    parser.add_argument("--dead-letter-stream", default=None, metavar="KEY",
                        help="where refused messages go (default: STREAM:dead)")
    parser.add_argument("--max-deliveries", type=_positive_int, default=10, metavar="N",
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

    value = _positive_int(text)
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
              f"{_IMPORT_CREDENTIALS_HINT}; the entries not delivered stay in stream "
              f"{args.stream!r}", file=sys.stderr)
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


class _OneCommand:
    """Stands in for argparse's subparsers: one command's parser, as a program of its own."""

    def __init__(self, prog: str) -> None:
        self.prog = prog
        self.parser: Optional[argparse.ArgumentParser] = None

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        kwargs.pop("help", None)
        kwargs.pop("aliases", None)
        self.parser = argparse.ArgumentParser(prog=self.prog, **kwargs)
        return self.parser


def _command_main(add_command: Command, prog: str, argv: Optional[list[str]]) -> int:
    holder = _OneCommand(prog)
    add_command(holder)
    assert holder.parser is not None, f"{add_command.__name__} added no parser"
    args = holder.parser.parse_args(argv)
    status: int = args.func(args)
    return status


def replay_main(argv: Optional[list[str]] = None) -> int:
    """The ``tracking-replay`` command: ``python -m consumers replay`` under its own name."""
    return _command_main(add_replay_command, "tracking-replay", argv)


def worker_main(argv: Optional[list[str]] = None) -> int:
    """The ``tracking-worker`` command: ``python -m consumers worker`` under its own name."""
    return _command_main(add_worker_command, "tracking-worker", argv)
