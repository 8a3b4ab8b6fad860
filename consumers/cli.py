"""The command line: ``python -m consumers <command> ...``.

Each subcommand is one ``add_<name>_command(subparsers)`` function, in a
module of its own (``_cli_replay``, ``_cli_worker``), that adds its parser and
sets ``func`` (``func(args) -> exit status``); :data:`COMMANDS` lists them.  A
new subcommand is one more module and one more entry.

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
from typing import Any, Optional

from consumers._cli_common import (
    EXIT_DELIVERY_FAILED,
    EXIT_NOT_STARTED,
    EXIT_OK,
    EXIT_REJECTED,
    Command,
    consumer_kwargs_from_env,
)
from consumers._cli_replay import ProgressBar, add_replay_command
from consumers._cli_worker import add_worker_command, run_worker_command

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
