"""Profile and group update messages: the parts ``People`` and ``Groups`` share."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Optional

from tracker import _json, _validation
from tracker.errors import InvalidInputError, InvalidTypeError

__all__ = ["OPERATIONS", "build_update", "ip_text"]

#: The update operations; a message carries exactly one.
OPERATIONS = frozenset(
    {"$set", "$set_once", "$add", "$append", "$union", "$remove", "$unset", "$delete"}
)
_IDENTITY = frozenset({"$token", "$distinct_id", "$group_key", "$group_id"})


def ip_text(ip: Any, where: str = "ip") -> str:
    """An IP address (or ``0``: do not geolocate) as the str the service wants."""
    if isinstance(ip, bool) or not isinstance(ip, (str, int)):
        raise InvalidTypeError(f"{where} must be a str (or 0), got {type(ip).__name__}")
    return str(ip)


def build_update(
    head: dict[str, Any],
    operation: str,
    value: Any,
    ip: Any,
    optional_params: Optional[Mapping[str, Any]],
    default: Optional[_json.Default],
) -> dict[str, Any]:
    """One update message: ``head`` (token and ids), ``$time``, ``$ip``, extras, operation.

    ``value`` must already be normalized.  ``optional_params`` (``$ignore_time``,
    ``$ignore_alias``, ``$time``, ...) may not name an operation or an id.
    """
    message = head
    message["$time"] = time.time_ns() // 1_000_000
    if ip is not None:
        message["$ip"] = ip_text(ip)
    if optional_params:
        extra = _json.normalize_properties(optional_params, "optional_params", default=default)
        for key in extra:
            if key in OPERATIONS or key in _IDENTITY:
                raise InvalidInputError(
                    f"optional_params[{key!r}]: give operations and ids as arguments, "
                    "one operation per message"
                )
        if "$time" in extra:
            extra["$time"] = _validation.to_millis(
                optional_params["$time"], "optional_params['$time']"
            )
        message.update(extra)
    message[operation] = value
    return message
