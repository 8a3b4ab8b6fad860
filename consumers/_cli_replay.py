"""The ``replay`` command: deliver a FileConsumer log or spool folder, with a progress bar."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, TextIO

from consumers._cli_common import (
    EXIT_DELIVERY_FAILED,
    EXIT_NOT_STARTED,
    EXIT_OK,
    EXIT_REJECTED,
    IMPORT_CREDENTIALS,
    Subparsers,
    add_destination_arguments,
    consumer_kwargs_from_env,
    positive_int,
)

__all__ = ["ProgressBar", "add_replay_command", "run_replay"]


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
    add_destination_arguments(p)
    p.add_argument("--batch-size", type=positive_int, default=500, metavar="N",
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


def _configuration_hint(error: str) -> str:
    """What a user of the command line does about a consumer that cannot send a type."""
    if "/import" in error:
        return (f"sending to /import needs credentials: set {IMPORT_CREDENTIALS} in the "
                "environment, then run replay again; the messages not sent are kept and go first")
    return f"{error}; fix the configuration and run replay again"
