"""Call-site checks of tracker input, with errors that name what was wrong.

Stable names (also used by the PostHog facade, ``tracker/posthog.py``):

``check_token(token, where="token") -> str``
``check_distinct_id(value, where="distinct_id") -> str``
    str, int or UUID (ints and UUIDs become str); not empty, at most 255
    characters; placeholder values (``"null"``, ``"0"``, ...) warn with
    :class:`~tracker.errors.PlaceholderIdWarning`.
``check_event_name(value, where="event") -> str``
``check_name(value, where) -> str``
    A non-empty str (group keys, property names given on their own).
``check_group_id(value, where="group_id") -> str``
``check_insert_id(value, where="$insert_id") -> str``
``to_millis(value, where="time") -> int``
    datetime, or seconds / milliseconds since the epoch -> milliseconds;
    from 1971 to the end of the year 9999.
``check_import_time(value, where="timestamp", *, now_ms=None) -> int``
``check_event_properties(properties, where="properties") -> None``
    At most :data:`MAX_PROPERTIES` properties; long names warn.
``check_message_size(message_json, where="event") -> None``
``check_names(value, where) -> list[str]``
``check_numbers(properties, where) -> None``
``check_union(properties, where) -> None``
``warn(message, category=TrackingWarning)``
    A warning attributed to the first caller outside this package.

Limits (:data:`MAX_PROPERTIES`, :data:`MAX_DEPTH`, :data:`MAX_ITEMS`,
:data:`MAX_EVENT_BYTES`, :data:`MAX_NAME_CHARS`) are the service's.  Every
failed check raises :class:`~tracker.errors.InvalidInputError` (or its
TypeError flavour :class:`~tracker.errors.InvalidTypeError`); warnings use
the :mod:`warnings` module with :class:`~tracker.errors.TrackingWarning`.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import sys
import time
import uuid
import warnings
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Optional

from tracker._json import short_repr
from tracker.errors import (
    InvalidInputError,
    InvalidTypeError,
    PlaceholderIdWarning,
    TrackingWarning,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_EVENT_BYTES",
    "MAX_ITEMS",
    "MAX_NAME_CHARS",
    "MAX_PROPERTIES",
    "PLACEHOLDER_IDS",
    "check_distinct_id",
    "check_event_name",
    "check_event_properties",
    "check_group_id",
    "check_import_time",
    "check_insert_id",
    "check_message_size",
    "check_name",
    "check_names",
    "check_numbers",
    "check_token",
    "check_union",
    "to_millis",
    "warn",
]

MAX_PROPERTIES = 255
MAX_DEPTH = 3
MAX_ITEMS = 255
MAX_EVENT_BYTES = 1_000_000
MAX_NAME_CHARS = 255
MAX_ID_CHARS = 255
#: ms since the epoch of 1971-01-01; the service refuses earlier events.
MIN_TIME_MS = 31_536_000_000
#: ms since the epoch of 9999-12-31T23:59:59.999Z, the last time a datetime can hold.
MAX_TIME_MS = 253_402_300_799_999
#: An int with more bits than this has more than MAX_ID_CHARS digits (checked
#: before str(), which refuses ints of over 4300 digits).
_MAX_ID_BITS = 850
#: /import refuses events more than an hour in the future.
MAX_FUTURE_MS = 3_600_000

#: distinct_id values the service treats as "no id" (compared case-insensitively).
PLACEHOLDER_IDS = frozenset(
    {
        "00000000-0000-0000-0000-000000000000",
        "-1",
        "0",
        "[]",
        "{}",
        "<nil>",
        "anon",
        "anonymous",
        "false",
        "lmy47d",
        "n/a",
        "na",
        "nil",
        "none",
        "null",
        "true",
        "undefined",
        "unknown",
    }
)

_INSERT_ID = re.compile(r"[A-Za-z0-9-]{1,36}")
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn(message: str, category: type[Warning] = TrackingWarning) -> None:
    """Issue a warning attributed to the first caller outside the tracker package."""
    level = 2
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    warnings.warn(message, category, stacklevel=level)


def _type_error(where: str, expected: str, value: Any) -> InvalidTypeError:
    return InvalidTypeError(
        f"{where} must be {expected}, got {type(value).__name__} {short_repr(value)}"
    )


def _int_text(value: int, where: str) -> str:
    if value.bit_length() > _MAX_ID_BITS:
        raise InvalidInputError(
            f"{where} is an int of over {MAX_ID_CHARS} digits; "
            f"the service accepts at most {MAX_ID_CHARS} characters"
        )
    return str(value)


def check_token(token: Any, where: str = "token") -> str:
    """The project token: a non-empty str (the service refuses an empty one)."""
    if not isinstance(token, str):
        raise _type_error(where, "a str", token)
    if not token.strip():
        raise InvalidInputError(f"{where} must not be empty")
    return token


def check_distinct_id(value: Any, where: str = "distinct_id") -> str:
    """A user id as the service wants it: a non-empty str of at most 255 characters."""
    text: str
    if type(value) is str:
        text = value
    elif isinstance(value, str):
        text = str.__str__(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        text = _int_text(value, where)
    elif isinstance(value, uuid.UUID):
        text = str(value)
    else:
        raise _type_error(where, "a str (or int)", value)
    if not text:
        raise InvalidInputError(f"{where} must not be empty")
    if len(text) > MAX_ID_CHARS:
        raise InvalidInputError(
            f"{where} is {len(text)} characters; the service accepts at most {MAX_ID_CHARS}"
        )
    if len(text) <= 36 and text.strip().lower() in PLACEHOLDER_IDS:
        warn(
            f"{where} {text!r} is a placeholder the service treats as invalid",
            PlaceholderIdWarning,
        )
    return text


def check_name(value: Any, where: str) -> str:
    """A non-empty str (event name, group key, property name)."""
    text: str
    if type(value) is str:
        text = value
    elif isinstance(value, str):
        text = str.__str__(value)
    else:
        raise _type_error(where, "a str", value)
    if not text:
        raise InvalidInputError(f"{where} must not be empty")
    return text


def check_event_name(value: Any, where: str = "event") -> str:
    """An event name: a non-empty str; over 255 characters warns (the service truncates)."""
    text = check_name(value, where)
    if len(text) > MAX_NAME_CHARS:
        warn(
            f"{where} is {len(text)} characters; the service keeps {MAX_NAME_CHARS}",
            TrackingWarning,
        )
    return text


def check_group_id(value: Any, where: str = "group_id") -> str:
    """A group id: a non-empty str (ints become str)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, uuid.UUID)):
        raise _type_error(where, "a str (or int)", value)
    if type(value) is str:
        text: str = value
    elif isinstance(value, int):
        text = _int_text(value, where)
    else:
        text = str(value)
    if not text:
        raise InvalidInputError(f"{where} must not be empty")
    return text


def check_insert_id(value: Any, where: str = "$insert_id") -> str:
    """A caller's ``$insert_id``: 1-36 ASCII letters, digits or ``-``."""
    if not isinstance(value, str):
        raise _type_error(where, "a str", value)
    if not _INSERT_ID.fullmatch(value):
        raise InvalidInputError(
            f"{where} {short_repr(value)} must be 1-36 ASCII letters, digits or '-'"
        )
    text: str = value
    return text


def to_millis(value: Any, where: str = "time") -> int:
    """Milliseconds since the epoch from a datetime or a number of seconds or milliseconds.

    Numbers below 1e11 are taken as seconds (1e11 s is the year 5138); naive
    datetimes are taken to be UTC.  Times after the year 9999 (the last a
    datetime can hold) are refused like those before 1971.
    """
    if isinstance(value, _dt.datetime):
        ms = _datetime_millis(value)
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _type_error(where, "a datetime or a number of seconds or milliseconds", value)
    elif value - value != 0:
        raise InvalidInputError(f"{where}: {value!r} is not a time")
    elif value < 1e11:
        # far enough below 1971 the product overflows to -inf; refused below either way
        ms = int(value * 1000) if value >= MIN_TIME_MS / 1000 else MIN_TIME_MS - 1
    else:
        ms = int(value)
    if ms < MIN_TIME_MS:
        raise InvalidInputError(
            f"{where} {short_repr(value, 120)} is before 1971; the service refuses it"
        )
    if ms > MAX_TIME_MS:
        raise InvalidInputError(
            f"{where} {short_repr(value, 120)} is after the year 9999; the service refuses it"
        )
    return ms


def _datetime_millis(value: _dt.datetime) -> int:
    aware = value
    if value.tzinfo is None or value.utcoffset() is None:
        aware = value.replace(tzinfo=_dt.timezone.utc)
    ms = int(aware.timestamp() * 1000)
    # float rounding takes 9999-12-31T23:59:59.999999 (naive or UTC) to the
    # year 10000; any later UTC time comes from an offset, and stays refused
    return MAX_TIME_MS if ms == MAX_TIME_MS + 1 else ms


def check_import_time(value: Any, where: str = "timestamp", *, now_ms: Optional[int] = None) -> int:
    """An /import time in milliseconds: after 1970, at most an hour in the future."""
    ms = to_millis(value, where)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if ms > now + MAX_FUTURE_MS:
        raise InvalidInputError(
            f"{where} {short_repr(value, 120)} is more than an hour in the future; "
            "/import refuses it"
        )
    return ms


def check_event_properties(properties: Mapping[str, Any], where: str = "properties") -> None:
    """The whole properties object of an event: at most 255 properties; long names warn."""
    if len(properties) > MAX_PROPERTIES:
        raise InvalidInputError(
            f"{where} has {len(properties)} properties (with the library's own); "
            f"the service accepts at most {MAX_PROPERTIES}"
        )
    for k in properties:
        if len(k) > MAX_NAME_CHARS:
            warn(
                f"{where}: property name {k[:40]!r}... is {len(k)} characters; "
                f"the service keeps {MAX_NAME_CHARS}",
                TrackingWarning,
            )


def check_message_size(message_json: str, where: str = "event") -> None:
    """One event's JSON must be at most 1 MB; the service refuses larger ones."""
    if len(message_json) * 4 <= MAX_EVENT_BYTES:
        return
    size = len(message_json.encode("utf-8"))
    if size > MAX_EVENT_BYTES:
        raise InvalidInputError(
            f"{where} is {size} bytes of JSON; the service refuses events over "
            f"{MAX_EVENT_BYTES} bytes"
        )


def check_names(value: Any, where: str) -> list[str]:
    """Property names for ``$unset``: one str or a non-empty list of non-empty str."""
    if isinstance(value, str):
        return [check_name(value, where)]
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise _type_error(where, "a str or a list of str", value)
    names = [check_name(n, f"{where}[{i}]") for i, n in enumerate(value)]
    if not names:
        raise InvalidInputError(f"{where} must name at least one property")
    return names


def check_numbers(properties: Mapping[str, Any], where: str) -> None:
    """``$add`` values: numbers only."""
    for k, v in properties.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, Decimal)):
            raise _type_error(f"{where}[{k!r}]", "a number", v)


def check_union(properties: Mapping[str, Any], where: str) -> None:
    """``$union`` values: non-empty lists of str or numbers."""
    if not properties:
        raise InvalidInputError(f"{where} must hold at least one property")
    for k, v in properties.items():
        if isinstance(v, (str, bytes, Mapping)) or not isinstance(
            v, (list, tuple, set, frozenset)
        ):
            raise _type_error(f"{where}[{k!r}]", "a list of str or numbers", v)
        if not v:
            raise InvalidInputError(f"{where}[{k!r}] must not be an empty list")
        for i, item in enumerate(v):
            if isinstance(item, bool) or not isinstance(item, (str, int, float, Decimal)):
                raise _type_error(f"{where}[{k!r}][{i}]", "a str or a number", item)
