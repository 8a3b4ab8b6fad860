"""Exceptions raised by the tracker.

Shape::

    TrackingError                    base of everything the tracker raises
    └── InvalidInputError            bad input, raised at the call site (also a ValueError)
        └── InvalidTypeError         ... a value of the wrong type (also a TypeError)

Delivery failures are not raised by the tracker: they go to its error
handler and the call returns ``False``.  See ``consumers.errors`` for that
family.
"""

from __future__ import annotations

__all__ = [
    "InvalidInputError",
    "InvalidTypeError",
    "PlaceholderIdWarning",
    "TrackingError",
    "TrackingWarning",
]


class TrackingError(Exception):
    """Base class of the exceptions the tracker raises."""


class InvalidInputError(TrackingError, ValueError):
    """A call's arguments cannot make a message the service accepts; nothing was sent."""


class InvalidTypeError(InvalidInputError, TypeError):
    """An argument or property value has a type that cannot be sent; nothing was sent."""


class TrackingWarning(UserWarning):
    """Input the service accepts but probably not the way the caller meant."""


class PlaceholderIdWarning(TrackingWarning):
    """A distinct_id is a placeholder (``"null"``, ``"0"``, ...) the service treats as invalid."""
