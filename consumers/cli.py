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
import os
import sys
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
    from consumers.replay import ReplayInProgressError, replay

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


#: Every subcommand, in the order ``--help`` lists them.
def add_worker_command(subparsers: Subparsers) -> None:
    """``worker``: deliver a Redis stream (see :mod:`consumers.redis_worker`)."""
    from consumers.redis_worker import add_worker_command as add

    add(subparsers)


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
