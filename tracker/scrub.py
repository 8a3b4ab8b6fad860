"""PII scrubbing: drop or hash named keys wherever they appear in a message.

``Scrub(["email", "phone"])`` removes every ``email`` and ``phone`` key from
the message, at any depth: in the event's properties, in objects nested in
them (also inside lists), in a profile update's ``$set``.
``Scrub(["email"], action="hash", salt="s3cret")`` keeps the keys and
replaces each value by ``sha256(salt + text).hexdigest()`` (64 hex
characters), where ``text`` is the value itself when it is a ``str`` and its
compact JSON otherwise; the same value gives the same hash, so counts of
distinct users still work, while the value cannot be read back without
guessing it (keep the salt secret).  Names match exactly (case-sensitive).

Exactly what it does to a message: only the named keys change; everything
else is passed on as it was.  The caller's own objects are never changed:
a nested object holding a named key is copied.  Naming a key the service
needs (``token``, or ``distinct_id`` with ``action="drop"``) makes the
message unsendable: that is your choice, not checked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from tracker import _json
from tracker.errors import InvalidInputError, InvalidTypeError

__all__ = ["Scrub"]

_ACTIONS = ("drop", "hash")


class Scrub:
    """Drop (``action="drop"``, the default) or hash (``action="hash"``) the ``keys`` named."""

    _adds_checked_values = True

    def __init__(self, keys: Iterable[str], *, action: str = "drop", salt: str = "") -> None:
        if isinstance(keys, str):
            keys = [keys]
        names = frozenset(keys)
        if not names or not all(isinstance(k, str) and k for k in names):
            raise InvalidInputError("keys must name at least one key, each a non-empty str")
        if action not in _ACTIONS:
            raise InvalidInputError(f"action must be 'drop' or 'hash', got {action!r}")
        if not isinstance(salt, str):
            raise InvalidTypeError(f"salt must be a str, got {type(salt).__name__}")
        self.keys = names
        self.action = action
        self._salt = salt.encode()

    def __repr__(self) -> str:  # the salt is a secret: never shown
        return f"Scrub({sorted(self.keys)!r}, action={self.action!r})"

    def hash_value(self, value: Any) -> str:
        """The hash ``action="hash"`` puts in place of ``value``."""
        text = value if isinstance(value, str) else _json.dumps(value)
        return hashlib.sha256(self._salt + text.encode()).hexdigest()

    def _clean(self, value: Any) -> Any:
        """``value`` with the named keys scrubbed: the same object when none was found."""
        t = type(value)
        if t is dict:
            out = None
            for k, v in value.items():
                if k in self.keys:
                    if out is None:
                        out = dict(value)
                    if self.action == "drop":
                        del out[k]
                    else:
                        out[k] = self.hash_value(v)
                    continue
                new = self._clean(v)
                if new is not v:
                    if out is None:
                        out = dict(value)
                    out[k] = new
            return value if out is None else out
        if t is list:
            items = [self._clean(v) for v in value]
            if any(new is not old for new, old in zip(items, value)):
                return items
        return value

    def __call__(self, message_type: str, message: dict[str, Any]) -> dict[str, Any]:
        cleaned: dict[str, Any] = self._clean(message)
        return cleaned
