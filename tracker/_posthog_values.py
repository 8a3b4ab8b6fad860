"""The values inside a PostHog message: api key, timestamp, uuid, groups.

Each function checks one argument of a ``tracker.posthog.Client`` call and
returns it as PostHog's ``/batch/`` wants it, or raises
:class:`~tracker.errors.InvalidInputError` naming it.
"""

from __future__ import annotations

import datetime as _dt
import re
import time
import uuid as _uuid
from collections.abc import Mapping
from typing import Any

from tracker import _validation
from tracker._ids import new_uuid
from tracker.errors import InvalidInputError, InvalidTypeError

__all__ = ["api_key", "group_pair", "groups", "timestamp_text", "uuid_text"]

_UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_UTC = _dt.timezone.utc
# Python < 3.11 parses only 3 or 6 fraction digits ("12:30:15.25" fails there).
_FRACTION = re.compile(r"(?<=:\d\d\.)(\d{1,5})(?!\d)")


def api_key(value: Any) -> str:
    """The project API key: a non-empty str."""
    if not isinstance(value, str):
        raise InvalidTypeError(f"api_key must be a str, got {type(value).__name__}")
    if not value.strip():
        raise InvalidInputError("api_key must not be empty")
    return value


# the text of the last second formatted: (seconds since the epoch, "YYYY-MM-DDTHH:MM:SS")
_second: tuple[int, str] = (-1, "")


def utc_text(ns: int) -> str:
    """``ns`` nanoseconds since the epoch as ``datetime.isoformat(timespec="microseconds")``
    writes that instant in UTC, the second's text formatted once per second."""
    global _second
    seconds, rest = divmod(ns, 1_000_000_000)
    known = _second
    if known[0] != seconds:
        known = _second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return f"{known[1]}.{rest // 1000:06d}+00:00"


def timestamp_text(value: Any) -> str:
    """ISO-8601 in UTC with microseconds: ``2024-05-01T12:00:00.000000+00:00``."""
    if value is None:
        return utc_text(time.time_ns())
    if isinstance(value, str):
        text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
        text = _FRACTION.sub(lambda digits: digits[1].ljust(6, "0"), text)
        try:
            value = _dt.datetime.fromisoformat(text)
        except ValueError:
            raise InvalidInputError(
                f"timestamp {value!r:.60} is not an ISO-8601 date and time"
            ) from None
    elif not isinstance(value, _dt.datetime):
        raise InvalidTypeError(
            f"timestamp must be a datetime or an ISO-8601 str, got {type(value).__name__}"
        )
    when: _dt.datetime = value
    if when.tzinfo is None or when.utcoffset() is None:
        when = when.replace(tzinfo=_UTC)  # naive: taken to be UTC, as everywhere else
    return when.astimezone(_UTC).isoformat(timespec="microseconds")


def uuid_text(value: Any) -> str:
    """The event's uuid: a new one for ``None``, else a UUID or its canonical text."""
    if value is None:
        return new_uuid()
    if isinstance(value, _uuid.UUID):
        return str(value)
    if isinstance(value, str) and _UUID_TEXT.fullmatch(value):
        return value.lower()
    raise InvalidInputError(f"uuid must be a UUID (or its canonical text), got {value!r:.60}")


def groups(value: Any) -> dict[str, str]:
    """``groups=``: a dict of group type to group key, both non-empty (keys may be ints)."""
    if not isinstance(value, Mapping):
        raise InvalidTypeError(
            f"groups must be a dict of group type to group key, got {type(value).__name__}"
        )
    return {
        _validation.check_name(kind, "groups key"): _validation.check_group_id(
            key, f"groups[{kind!r}]"
        )
        for kind, key in value.items()
    }


def group_pair(group_type: Any, group_key: Any) -> tuple[str, str]:
    """``group_identify``'s group: a non-empty type name and a non-empty key."""
    return (
        _validation.check_name(group_type, "group_type"),
        _validation.check_group_id(group_key, "group_key"),
    )
