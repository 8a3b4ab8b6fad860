"""Testing helpers for code that tracks: a recording sink, a real-host guard, a pytest plugin.

Installing the package registers the pytest plugin
(:mod:`consumers.testing.plugin`): the ``tracking_collector`` and
``tracking_sink`` fixtures, and a guard that fails tests reaching real
Mixpanel or PostHog hosts.  The pieces work without pytest too.
"""

from __future__ import annotations

from consumers.testing.guard import GUARDED_DOMAINS, RealHostAttempt, RealHostError, RealHostGuard
from consumers.testing.sink import Recorded, RecordingSink

__all__ = [
    "GUARDED_DOMAINS",
    "RealHostAttempt",
    "RealHostError",
    "RealHostGuard",
    "Recorded",
    "RecordingSink",
]
