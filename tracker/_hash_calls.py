"""The Ruby PostHog client's one-hash calls, ``posthog.capture({distinct_id:, event:, ...})``.

The seed documents show every PostHog call in that form; in Python the same
dict maps onto the keyword arguments, so ``client.capture({"distinct_id":
"u1", "event": "movie played", "properties": {...}})`` works as written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tracker.errors import InvalidInputError, InvalidTypeError

__all__ = ["KEYS", "keywords"]

#: call -> (the keys its dict may hold, the keys it must hold)
KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "capture": (("distinct_id", "event", "properties", "timestamp", "uuid", "groups",
                 "disable_geoip"), ("distinct_id", "event")),
    "identify": (("distinct_id", "properties", "timestamp", "uuid", "disable_geoip"),
                 ("distinct_id",)),
    "alias": (("distinct_id", "alias", "timestamp", "uuid", "disable_geoip"),
              ("distinct_id", "alias")),
}


def keywords(call: str, message: Mapping[Any, Any], *others: Any) -> dict[str, Any]:
    """The keyword arguments of ``call`` that the Ruby-style ``message`` dict stands for.

    ``others`` are the call's other positional or keyword values: given
    beside a dict they would be ambiguous, so they must all be None.
    """
    allowed, required = KEYS[call]
    if any(value is not None for value in others):
        raise InvalidTypeError(
            f"{call}() takes either one dict ({call}({{'distinct_id': ..., ...}})) or "
            f"arguments ({call}(distinct_id, ...)), not both"
        )
    given = {str(key): value for key, value in message.items()}
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise InvalidInputError(
            f"{call}() got unknown key(s) {unknown} in its dict; it takes {', '.join(allowed)}"
        )
    missing = [key for key in required if key not in given]
    if missing:
        raise InvalidInputError(
            f"{call}() needs {' and '.join(repr(k) for k in missing)} in its dict, as "
            f"{call}({{{', '.join(repr(k) + ': ...' for k in required)}}})"
        )
    return given
