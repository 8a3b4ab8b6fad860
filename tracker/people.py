"""``tracker.people``: user profile updates (type ``"profile_update"``, sent to /engage)."""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Optional, Union

from tracker import _json, _validation
from tracker._updates import build_update
from tracker.errors import InvalidInputError, InvalidTypeError

if TYPE_CHECKING:
    from tracker.tracker import Tracker

__all__ = ["People"]

Params = Optional[Mapping[str, Any]]
IP = Optional[Union[str, int]]


class People:
    """Profile updates for one tracker; reach it as ``tracker.people``.

    Every method takes the profile's ``distinct_id`` first and, like the Ruby
    library, an optional ``ip`` (``0`` or ``"0"``: do not geolocate) and
    ``optional_params`` merged into the message (``{"$ignore_time": True}``,
    ``{"$ignore_alias": True}``, ``{"$time": datetime}``).  Each returns
    ``True`` when handed to the sink, ``False`` when delivery failed.
    Dates in properties are sent as ``YYYY-MM-DDTHH:MM:SS`` UTC.
    """

    def __init__(self, tracker: Tracker) -> None:
        self._tracker = tracker

    def _send(
        self, distinct_id: Any, operation: str, value: Any, ip: IP, optional_params: Params
    ) -> bool:
        tracker = self._tracker
        head = {
            "$token": tracker._token,
            "$distinct_id": _validation.check_distinct_id(distinct_id),
        }
        message = build_update(head, operation, value, ip, optional_params, tracker._default)
        return tracker._emit("profile_update", message)

    def _props(self, properties: Any, operation: str) -> dict[str, Any]:
        return _json.normalize_properties(
            properties, f"properties ({operation})", default=self._tracker._default
        )

    def set(
        self, distinct_id: Any, properties: Mapping[str, Any], ip: IP = None,
        optional_params: Params = None,
    ) -> bool:
        """Set profile properties, overwriting existing values (``$set``)."""
        return self._send(distinct_id, "$set", self._props(properties, "$set"), ip, optional_params)

    def set_once(
        self, distinct_id: Any, properties: Mapping[str, Any], ip: IP = None,
        optional_params: Params = None,
    ) -> bool:
        """Set profile properties that are not set yet (``$set_once``)."""
        value = self._props(properties, "$set_once")
        return self._send(distinct_id, "$set_once", value, ip, optional_params)

    def increment(
        self, distinct_id: Any, properties: Mapping[str, Any], ip: IP = None,
        optional_params: Params = None,
    ) -> bool:
        """Add numbers to numeric properties; negative numbers subtract (``$add``)."""
        value = self._props(properties, "$add")
        _validation.check_numbers(value, "properties ($add)")
        return self._send(distinct_id, "$add", value, ip, optional_params)

    def plus_one(
        self, distinct_id: Any, property_name: str, ip: IP = None, optional_params: Params = None
    ) -> bool:
        """Add 1 to one numeric property."""
        name = _validation.check_name(property_name, "property_name")
        return self.increment(distinct_id, {name: 1}, ip, optional_params)

    def append(
        self, distinct_id: Any, properties: Mapping[str, Any], ip: IP = None,
        optional_params: Params = None,
    ) -> bool:
        """Append each value to the end of its list property (``$append``)."""
        value = self._props(properties, "$append")
        return self._send(distinct_id, "$append", value, ip, optional_params)

    def union(
        self, distinct_id: Any, properties: Mapping[str, Any], ip: IP = None,
        optional_params: Params = None,
    ) -> bool:
        """Add list items not already present to list properties (``$union``)."""
        value = self._props(properties, "$union")
        _validation.check_union(value, "properties ($union)")
        return self._send(distinct_id, "$union", value, ip, optional_params)

    def remove(
        self, distinct_id: Any, properties: Mapping[str, Any], ip: IP = None,
        optional_params: Params = None,
    ) -> bool:
        """Remove a value from each named list property (``$remove``)."""
        value = self._props(properties, "$remove")
        return self._send(distinct_id, "$remove", value, ip, optional_params)

    def unset(
        self, distinct_id: Any, properties: Union[str, Iterable[str]], ip: IP = None,
        optional_params: Params = None,
    ) -> bool:
        """Remove properties from the profile: one name or a list of names (``$unset``)."""
        names = _validation.check_names(properties, "properties ($unset)")
        return self._send(distinct_id, "$unset", names, ip, optional_params)

    def track_charge(
        self, distinct_id: Any, amount: Union[int, float, Decimal],
        properties: Optional[Mapping[str, Any]] = None, ip: IP = None,
        optional_params: Params = None,
    ) -> bool:
        """Record a transaction of ``amount`` for revenue reports.

        Appends ``{"$time": now, "$amount": amount, **properties}`` to
        ``$transactions``; a ``$time`` in ``properties`` sets the charge's date.
        """
        if isinstance(amount, bool) or not isinstance(amount, (int, float, Decimal)):
            raise InvalidTypeError(f"amount must be a number, got {type(amount).__name__}")
        charge: dict[str, Any] = {
            "$time": _json.format_datetime(_dt.datetime.now(_dt.timezone.utc)),
            "$amount": _json.normalize(amount, "amount"),
        }
        for key, item in self._props(properties, "track_charge").items():
            if key != "$amount":
                charge[key] = item
        return self._send(distinct_id, "$append", {"$transactions": charge}, ip, optional_params)

    def clear_charges(
        self, distinct_id: Any, ip: IP = None, optional_params: Params = None
    ) -> bool:
        """Forget every transaction on the profile (``$set`` of an empty ``$transactions``)."""
        return self._send(distinct_id, "$set", {"$transactions": []}, ip, optional_params)

    def delete_user(
        self, distinct_id: Any, ignore_alias: bool = False, optional_params: Params = None
    ) -> bool:
        """Delete the profile (``$delete``).

        ``ignore_alias=True`` deletes only a duplicate profile whose
        ``distinct_id`` is an alias, not the profile it points to.
        """
        if not isinstance(ignore_alias, bool):
            raise InvalidTypeError("ignore_alias must be a bool")
        params = dict(optional_params or {})
        params.setdefault("$ignore_alias", ignore_alias)
        return self._send(distinct_id, "$delete", "", None, params)

    def update(self, message: Mapping[str, Any]) -> bool:
        """Send a raw profile update; ``$token`` and ``$time`` are filled when missing.

        ``message`` must hold ``$distinct_id`` and may hold any operation the
        service knows, including ones this class has no method for.
        """
        if not isinstance(message, Mapping):
            raise InvalidTypeError(f"message must be a dict, got {type(message).__name__}")
        if "$distinct_id" not in message:
            raise InvalidInputError("message must hold '$distinct_id'")
        tracker = self._tracker
        body = _json.normalize_properties(message, "message", default=tracker._default)
        full: dict[str, Any] = {
            "$token": tracker._token,
            "$distinct_id": _validation.check_distinct_id(
                message["$distinct_id"], "message['$distinct_id']"
            ),
            "$time": _validation.to_millis(message["$time"], "message['$time']")
            if "$time" in message
            else time.time_ns() // 1_000_000,
        }
        if "$token" in body:
            _validation.check_token(body["$token"], "message['$token']")
        full.update((k, v) for k, v in body.items() if k not in full or k == "$token")
        return tracker._emit("profile_update", full)
