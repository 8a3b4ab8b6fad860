"""What the commands share: exit statuses, credentials from the environment, argument types."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Any, Callable, Optional

from consumers.endpoints import REGIONS

__all__ = [
    "EXIT_DELIVERY_FAILED",
    "EXIT_NOT_STARTED",
    "EXIT_OK",
    "EXIT_REJECTED",
    "IMPORT_CREDENTIALS",
    "Command",
    "Subparsers",
    "add_destination_arguments",
    "consumer_kwargs_from_env",
    "positive_int",
]

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_DELIVERY_FAILED = 3
EXIT_NOT_STARTED = 4

Subparsers = Any  # argparse._SubParsersAction, private in typeshed
Command = Callable[[Subparsers], None]

#: The variables that give /import its credentials, as a sentence's object.
IMPORT_CREDENTIALS = (
    "MIXPANEL_SERVICE_ACCOUNT_USERNAME, MIXPANEL_SERVICE_ACCOUNT_SECRET and "
    "MIXPANEL_PROJECT_ID (a service account), or MIXPANEL_API_SECRET, or MIXPANEL_PROJECT_TOKEN"
)


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


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_destination_arguments(parser: argparse.ArgumentParser) -> None:
    """``--region`` or ``--api-host``: where a command delivers, worded alike everywhere."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--region", choices=sorted(REGIONS), default=None,
                       help="Mixpanel data-residency region (default: us)")
    where.add_argument("--api-host", metavar="URL", default=None,
                       help="base URL instead of a region: a proxy, the local collector "
                            "(default: the region's hosts)")
