"""Every example of PostHog's Ruby docs, in Python, against an embedded local collector.

    python3 demo/posthog_demo.py

Nothing leaves the machine: the client sends to a ``Collector`` on
127.0.0.1, and the demo prints the messages it received.  Point
``api_host`` at your PostHog instance (or drop it for PostHog's US cloud) to
send for real.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from consumers.collector import Collector
from tracker.posthog import Client


def run_examples(api_host: str) -> None:
    """The docs' examples, in order, sent to ``api_host``."""
    # Installation: set the api key before making any calls.
    posthog = Client(
        api_key="my_key",
        api_host=api_host,  # leave out for PostHog's US cloud
        on_error=lambda status, msg: print(msg),
    )

    # Capture
    posthog.capture(
        distinct_id="distinct id",
        event="movie played",
        properties={
            "movie_id": "123",
            "category": "romcom",
        },
    )

    # Identify
    posthog.identify(
        distinct_id="user:123",
        properties={
            "email": "john@doe.com",
            "pro_user": False,
        },
    )

    # Alias
    posthog.alias(
        distinct_id="user:123",
        alias="user:12345",
    )

    # Sending page views
    posthog.capture(
        distinct_id="distinct id",
        event="$pageview",
        properties={
            "$current_url": "https://example.com",
        },
    )
    # ... or the shortcut for the same message
    posthog.page(distinct_id="distinct id", url="https://example.com")

    posthog.shutdown()  # sends everything still queued


def main() -> list[dict[str, Any]]:
    """Run the examples against an embedded collector; print and return what it received."""
    with Collector() as collector:
        run_examples(collector.url)
        received = collector.messages("posthog")
    for message in received:
        print(json.dumps(message, indent=2, sort_keys=True))
    print(f"{len(received)} PostHog message(s) received by the local collector")
    return received


if __name__ == "__main__":
    main()
