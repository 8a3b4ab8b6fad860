"""A tiny application module that tracks, as a user's own code would."""

from __future__ import annotations

from typing import Optional

from tracker import Tracker

TOKEN = "example-project-token"


def make_tracker(sink: Optional[object] = None) -> Tracker:
    """The app's tracker: Mixpanel's EU hosts by default, or any sink (tests pass one)."""
    if sink is None:
        return Tracker(TOKEN, region="eu")
    return Tracker(TOKEN, sink)


def sign_up(tracker: Tracker, user_id: str, plan: str) -> None:
    """What the app does when a user signs up."""
    tracker.people.set(user_id, {"plan": plan})
    tracker.track(user_id, "Signed Up", {"plan": plan})
