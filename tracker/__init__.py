"""Build Mixpanel (and PostHog) messages and hand them to a sink.

``Tracker(token, sink)`` turns calls such as ``track``, ``people.set`` and
``groups.union`` into ``(type, message_json)`` tuples and passes each to
``sink`` -- any callable, or a consumer from the ``consumers`` package.
This package does no IO of its own.
"""

from __future__ import annotations

import importlib
from typing import Any

from tracker import _logging  # noqa: F401  (a NullHandler on the top logger)
from tracker._version import __version__

_EXPORTS = {
    "Tracker": "tracker",
    "People": "tracker",
    "Groups": "tracker",
    "TrackingError": "errors",
    "InvalidInputError": "errors",
    "InvalidTypeError": "errors",
    "TrackingWarning": "errors",
    "PlaceholderIdWarning": "errors",
    "register_encoder": "_json",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tracker' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"tracker.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
