"""Build Mixpanel (and PostHog) messages and hand them to a sink.

``Tracker(token, sink)`` turns calls such as ``track``, ``people.set`` and
``groups.union`` into ``(type, message_json)`` tuples and passes each to
``sink`` -- any callable, or a consumer from the ``consumers`` package.
This package does no IO of its own.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tracker import _logging  # noqa: F401  (a NullHandler on the top logger)
from tracker._version import __version__

# Public name -> module that defines it, imported on first use so that
# ``import tracker`` stays cheap.  No public name may be a module's name.
_EXPORTS = {
    "Tracker": "tracker",
    "People": "people",
    "Groups": "groups",
    "TrackingError": "errors",
    "InvalidInputError": "errors",
    "InvalidTypeError": "errors",
    "TrackingWarning": "errors",
    "PlaceholderIdWarning": "errors",
    "register_encoder": "_json",
    "SuperProperties": "processors",
    "Sample": "sampling",
    "Scrub": "scrub",
}

__all__ = ["__version__", *sorted(_EXPORTS)]

if TYPE_CHECKING:
    # The same names, seen by type checkers and editors (which do not run
    # ``__getattr__``); tests/test_exports.py keeps this list equal to _EXPORTS.
    from tracker._json import register_encoder as register_encoder
    from tracker.errors import InvalidInputError as InvalidInputError
    from tracker.errors import InvalidTypeError as InvalidTypeError
    from tracker.errors import PlaceholderIdWarning as PlaceholderIdWarning
    from tracker.errors import TrackingError as TrackingError
    from tracker.errors import TrackingWarning as TrackingWarning
    from tracker.groups import Groups as Groups
    from tracker.people import People as People
    from tracker.processors import SuperProperties as SuperProperties
    from tracker.sampling import Sample as Sample
    from tracker.scrub import Scrub as Scrub
    from tracker.tracker import Tracker as Tracker
else:
    # Hidden from type checkers, so that a misspelt name is an error there
    # rather than ``Any``.
    def __getattr__(name: str) -> Any:
        module = _EXPORTS.get(name)
        if module is None:
            raise AttributeError(f"module 'tracker' has no attribute {name!r}")
        value = getattr(importlib.import_module(f"tracker.{module}"), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
