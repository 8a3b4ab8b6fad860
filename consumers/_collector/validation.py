"""Per-record validation, with the limits of Mixpanel's ingestion service.

Each ``check_*`` function takes one decoded message and returns ``None`` when
the service would accept it, or a :class:`Problem` naming the field and the
reason, worded like the service's ``failed_records`` messages.
"""

from __future__ import annotations

import operator
import re
from typing import Any, NamedTuple, Optional

__all__ = [
    "DISALLOWED_IDS",
    "ENGAGE_OPERATIONS",
    "GROUP_OPERATIONS",
    "MAX_EVENT_BYTES",
    "MAX_IMPORT_BYTES",
    "MAX_PROPERTIES",
    "MAX_RECORDS",
    "MAX_REQUEST_BYTES",
    "MIN_TIME_MS",
    "Problem",
    "all_events_valid",
    "check_engage",
    "check_event",
    "check_group",
    "dedup_key",
    "time_ms",
]

#: Records per request on every endpoint.
MAX_RECORDS = 2000
#: Uncompressed body of one request to /track, /engage, /groups or /import
#: (Mixpanel documents /track's limits as /import's).
MAX_REQUEST_BYTES = 10 * 1024 * 1024
#: The same limit under the name /import's answer is known by.
MAX_IMPORT_BYTES = MAX_REQUEST_BYTES
#: One event, as JSON.
MAX_EVENT_BYTES = 1024 * 1024
#: Properties on one event.
MAX_PROPERTIES = 255
#: 1971-01-01T00:00:00Z: the earliest event time the service accepts.
MIN_TIME_MS = 31_536_000_000
#: /import refuses events dated more than this far in the future.
MAX_FUTURE_MS = 3_600_000
#: Times at or above this are milliseconds; below, seconds (10**10 s is the year 2286).
_MS_THRESHOLD = 10_000_000_000

#: Placeholder values the service refuses as distinct_id or $insert_id (compared
#: case-insensitively).  The empty distinct_id is allowed: it marks an event
#: that belongs to no user.
DISALLOWED_IDS = frozenset(
    {
        "0",
        "-1",
        "null",
        "undefined",
        "anon",
        "anonymous",
        "nil",
        "none",
        "n/a",
        "[]",
        "{}",
        "00000000-0000-0000-0000-000000000000",
        "lmy47d",
        "unknown",
        "nan",
        "<nil>",
        "false",
        "true",
    }
)

ENGAGE_OPERATIONS = (
    "$set",
    "$set_once",
    "$add",
    "$append",
    "$union",
    "$remove",
    "$unset",
    "$delete",
)
GROUP_OPERATIONS = ("$set", "$set_once", "$unset", "$union", "$remove", "$delete")

_INSERT_ID = re.compile(r"[A-Za-z0-9-]{1,36}\Z")


class Problem(NamedTuple):
    """Why one record was refused: the field (``properties.time``) and a message."""

    field: str
    message: str


def time_ms(value: Any) -> Optional[int]:
    """An event ``time`` (seconds or milliseconds) as integer ms, or None if not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    if abs(value) >= _MS_THRESHOLD:
        return int(value)
    return int(value * 1000)


def _bad_id(value: Any) -> bool:
    return isinstance(value, str) and value.lower() in DISALLOWED_IDS


def check_event(
    message: Any, *, imported: bool, now_ms: int
) -> Optional[Problem]:
    """Validate one event for /track (``imported=False``) or /import (``imported=True``).

    /track needs ``event`` and ``properties.token``; ``time``, ``distinct_id``
    and ``$insert_id`` are optional there but checked when present.  /import
    needs ``time``, ``distinct_id`` and ``$insert_id`` and refuses events more
    than an hour in the future.  Placeholder distinct_ids are refused by
    /import; /track stores them (the caller counts them).
    """
    if not isinstance(message, dict):
        return Problem("", "each record must be a JSON object")
    event = message.get("event")
    if not isinstance(event, str) or not event:
        return Problem("event", "'event' must be a non-empty string")
    props = message.get("properties")
    if not isinstance(props, dict):
        return Problem("properties", "'properties' must be a JSON object")
    if len(message) > 2:
        extra = sorted(k for k in message if k not in ("event", "properties"))
        return Problem(extra[0], f"unexpected top-level key {extra[0]!r}")
    if len(props) > MAX_PROPERTIES:
        return Problem(
            "properties", f"too many properties: {len(props)} (max {MAX_PROPERTIES})"
        )
    if not imported:
        token = props.get("token")
        if not isinstance(token, str) or not token:
            return Problem("properties.token", "'properties.token' is required")
    problem = _check_time(props, imported=imported, now_ms=now_ms)
    if problem is not None:
        return problem
    if "distinct_id" in props or imported:
        problem = _check_distinct_id(props, imported=imported)
        if problem is not None:
            return problem
    if imported and "$insert_id" not in props:
        return Problem("properties.$insert_id", "'properties.$insert_id' is required")
    if "$insert_id" in props:
        insert_id = props["$insert_id"]
        if not isinstance(insert_id, str) or not _INSERT_ID.match(insert_id):
            return Problem(
                "properties.$insert_id",
                "'properties.$insert_id' is invalid: must be 1-36 ASCII letters, digits or '-'",
            )
        if _bad_id(insert_id):
            return Problem(
                "properties.$insert_id",
                f"'properties.$insert_id' is invalid: {insert_id!r} is a placeholder value",
            )
    return None


def _check_time(props: dict[str, Any], *, imported: bool, now_ms: int) -> Optional[Problem]:
    if "time" not in props:
        if imported:
            return Problem("properties.time", "'properties.time' is required")
        return None
    ms = time_ms(props["time"])
    if ms is None:
        return Problem(
            "properties.time",
            "'properties.time' is invalid: "
            "must be specified as seconds or milliseconds since epoch",
        )
    if ms < MIN_TIME_MS:
        return Problem("properties.time", "'properties.time' is invalid: before 1971-01-01")
    if imported and ms > now_ms + MAX_FUTURE_MS:
        return Problem(
            "properties.time", "'properties.time' is invalid: more than 1 hour in the future"
        )
    return None


def _check_distinct_id(props: dict[str, Any], *, imported: bool) -> Optional[Problem]:
    distinct_id = props.get("distinct_id")
    if imported:
        if not isinstance(distinct_id, str):
            return Problem(
                "properties.distinct_id", "'properties.distinct_id' must be a string"
            )
        if _bad_id(distinct_id):
            return Problem(
                "properties.distinct_id",
                f"'properties.distinct_id' is invalid: {distinct_id!r} is a placeholder value",
            )
        return None
    if isinstance(distinct_id, bool) or not isinstance(distinct_id, (str, int, float)):
        return Problem(
            "properties.distinct_id", "'properties.distinct_id' must be a string or number"
        )
    return None


def _check_one_operation(
    message: dict[str, Any], operations: tuple[str, ...]
) -> Optional[Problem]:
    found = [op for op in operations if op in message]
    if len(found) != 1:
        return Problem(
            "",
            f"exactly one operation among {', '.join(operations)} is required, got {len(found)}",
        )
    op = found[0]
    value = message[op]
    if op == "$unset":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return Problem(op, "'$unset' must be a list of property names")
    elif op == "$delete":
        if value not in ("", None, "null"):
            return Problem(op, "'$delete' must be an empty string or null")
    elif not isinstance(value, dict):
        return Problem(op, f"{op!r} must be a JSON object")
    elif op == "$add" and not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()
    ):
        return Problem(op, "'$add' values must be numbers")
    elif op == "$union" and not all(isinstance(v, list) for v in value.values()):
        return Problem(op, "'$union' values must be lists")
    return None


def _required_string(message: dict[str, Any], key: str) -> Optional[Problem]:
    value = message.get(key)
    if not isinstance(value, str) or not value:
        return Problem(key, f"{key!r} is required and must be a non-empty string")
    return None


def check_engage(message: Any) -> Optional[Problem]:
    """Validate one /engage profile update."""
    if not isinstance(message, dict):
        return Problem("", "each record must be a JSON object")
    problem = _required_string(message, "$token")
    if problem is not None:
        return problem
    distinct_id = message.get("$distinct_id")
    if isinstance(distinct_id, bool) or not isinstance(distinct_id, (str, int)):
        return Problem("$distinct_id", "'$distinct_id' is required")
    if distinct_id == "" or _bad_id(distinct_id):
        return Problem("$distinct_id", f"'$distinct_id' is invalid: {distinct_id!r}")
    return _check_one_operation(message, ENGAGE_OPERATIONS)


def check_group(message: Any) -> Optional[Problem]:
    """Validate one /groups group update."""
    if not isinstance(message, dict):
        return Problem("", "each record must be a JSON object")
    for key in ("$token", "$group_key"):
        problem = _required_string(message, key)
        if problem is not None:
            return problem
    group_id = message.get("$group_id")
    if isinstance(group_id, bool) or not isinstance(group_id, (str, int)) or group_id == "":
        return Problem("$group_id", "'$group_id' is required")
    return _check_one_operation(message, GROUP_OPERATIONS)


def dedup_key(message: dict[str, Any]) -> Optional[tuple[Any, ...]]:
    """Mixpanel's duplicate key (event, time in ms, distinct_id, $insert_id), or None.

    Events without ``$insert_id`` are never treated as duplicates.
    """
    props = message.get("properties")
    if not isinstance(props, dict):
        return None
    insert_id = props.get("$insert_id")
    if insert_id is None:
        return None
    return (message.get("event"), time_ms(props.get("time")), props.get("distinct_id"), insert_id)


_INSERT_IDS = re.compile(r"(?:[A-Za-z0-9-]{1,36}\n)*[A-Za-z0-9-]{1,36}\Z")
_SECONDS_MIN = MIN_TIME_MS // 1000
_STR = {str}
_INT = {int}
_DICT = {dict}
_TWO = {2}
_TRACK_IDS = ({str}, {int}, {str, int})
_EVENT = operator.itemgetter("event")
_PROPERTIES = operator.itemgetter("properties")
_TIME = operator.itemgetter("time")
_INSERT_ID_KEY = operator.itemgetter("$insert_id")
_DISTINCT_ID = operator.itemgetter("distinct_id")
_TOKEN = operator.itemgetter("token")


def all_events_valid(records: list[Any], *, imported: bool, now_ms: int) -> Optional[int]:
    """A whole-batch fast path for :func:`check_event`, run mostly in C.

    Returns the number of placeholder distinct_ids when every record is surely
    valid, or None when any record needs the per-record check (which then
    decides).  It only says yes for batches where every event carries
    ``time`` (integer), ``distinct_id`` and ``$insert_id``.
    """
    try:
        if set(map(type, records)) != _DICT or set(map(len, records)) != _TWO:
            return None
        names = list(map(_EVENT, records))
        props = list(map(_PROPERTIES, records))
    except (KeyError, TypeError):
        return None
    if set(map(type, names)) != _STR or not all(names):
        return None
    if set(map(type, props)) != _DICT or max(map(len, props)) > MAX_PROPERTIES:
        return None
    try:
        times = list(map(_TIME, props))
        insert_ids = list(map(_INSERT_ID_KEY, props))
        distinct_ids = list(map(_DISTINCT_ID, props))
        tokens = [] if imported else list(map(_TOKEN, props))
    except KeyError:
        return None
    if not imported and (set(map(type, tokens)) != _STR or not all(tokens)):
        return None
    if set(map(type, times)) != _INT or not _times_ok(times, imported=imported, now_ms=now_ms):
        return None
    if set(map(type, insert_ids)) != _STR or not _INSERT_IDS.match("\n".join(insert_ids)):
        return None
    if not DISALLOWED_IDS.isdisjoint(map(str.lower, insert_ids)):
        return None
    id_types = set(map(type, distinct_ids))
    if id_types == _STR:
        if DISALLOWED_IDS.isdisjoint(map(str.lower, distinct_ids)):
            return 0
        if imported:
            return None
        return sum(1 for d in distinct_ids if d.lower() in DISALLOWED_IDS)
    if not imported and id_types in _TRACK_IDS:
        return sum(1 for d in distinct_ids if _bad_id(d))
    return None


def _times_ok(times: list[int], *, imported: bool, now_ms: int) -> bool:
    low, high = min(times), max(times)
    if low >= MIN_TIME_MS:  # all milliseconds
        return not imported or high <= now_ms + MAX_FUTURE_MS
    if low >= _SECONDS_MIN and high < _MS_THRESHOLD:  # all seconds
        return not imported or high * 1000 <= now_ms + MAX_FUTURE_MS
    return False
