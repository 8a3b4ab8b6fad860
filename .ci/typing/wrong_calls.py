"""Calls a type checker must refuse: each line marked ``# expect: CODE`` must
get exactly that mypy error, and no other line any error.

This is what a user's editor and ``mypy --strict`` see through the public
names (``from tracker import Tracker``): real types, not ``Any``.
"""

from __future__ import annotations

from consumers import Collector, Consumer, replay
from tracker import Tracker


def wrong(tracker: Tracker, consumer: Consumer) -> None:
    from consumers import Consumr  # expect: attr-defined

    tracker.track("user-1", 42)  # expect: arg-type
    tracker.people.increment("user-1", "Logins")  # expect: arg-type
    tracker.trakc("user-1", "Signed up")  # expect: attr-defined
    Tracker(token=None)  # expect: arg-type
    print(replay("events.log", consumer).snet)  # expect: attr-defined
    Collector(port="8080")  # expect: arg-type
    print(Consumr)
