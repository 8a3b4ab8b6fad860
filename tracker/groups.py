"""``tracker.groups``: group profile updates (type ``"group_update"``, sent to /groups).

Lookup-table rows are written the same way: ``group_key`` is the table's id
and ``group_id`` the row's join key.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Optional, Union

from tracker import _json, _validation
from tracker._updates import build_update
from tracker.errors import InvalidInputError, InvalidTypeError

if TYPE_CHECKING:
    from tracker.tracker import Tracker

__all__ = ["Groups"]

Params = Optional[Mapping[str, Any]]
IP = Optional[Union[str, int]]


class Groups:
    """Group profile updates for one tracker; reach it as ``tracker.groups``.

    A group is named by ``group_key`` (the event property that carries it,
    e.g. ``"Company"``) and ``group_id`` (e.g. ``"Acme"``; ints become str).
    Methods mirror :class:`~tracker.people.People` and return ``True`` when
    handed to the sink, ``False`` when delivery failed.
    """

    def __init__(self, tracker: Tracker) -> None:
        self._tracker = tracker

    def _send(
        self,
        group_key: Any,
        group_id: Any,
        operation: str,
        value: Any,
        ip: IP,
        optional_params: Params,
    ) -> bool:
        tracker = self._tracker
        head = {
            "$token": tracker._token,
            "$group_key": _validation.check_name(group_key, "group_key"),
            "$group_id": _validation.check_group_id(group_id),
        }
        message = build_update(head, operation, value, ip, optional_params, tracker._default)
        return tracker._emit("group_update", message)

    def _props(self, properties: Any, operation: str) -> dict[str, Any]:
        return _json.normalize_properties(
            properties, f"properties ({operation})", default=self._tracker._default
        )

    def set(
        self, group_key: Any, group_id: Any, properties: Mapping[str, Any], ip: IP = None,
        optional_params: Params = None,
    ) -> bool:
        """Set group properties, overwriting existing values (``$set``)."""
        value = self._props(properties, "$set")
        return self._send(group_key, group_id, "$set", value, ip, optional_params)

    def set_once(
        self, group_key: Any, group_id: Any, properties: Mapping[str, Any], ip: IP = None,
        optional_params: Params = None,
    ) -> bool:
        """Set group properties that are not set yet (``$set_once``)."""
        value = self._props(properties, "$set_once")
        return self._send(group_key, group_id, "$set_once", value, ip, optional_params)

    def unset(
        self, group_key: Any, group_id: Any, properties: Union[str, Iterable[str]],
        ip: IP = None, optional_params: Params = None,
    ) -> bool:
        """Remove properties from the group: one name or a list of names (``$unset``)."""
        names = _validation.check_names(properties, "properties ($unset)")
        return self._send(group_key, group_id, "$unset", names, ip, optional_params)

    def union(
        self, group_key: Any, group_id: Any, properties: Mapping[str, Any], ip: IP = None,
        optional_params: Params = None,
    ) -> bool:
        """Add list items not already present to list properties (``$union``)."""
        value = self._props(properties, "$union")
        _validation.check_union(value, "properties ($union)")
        return self._send(group_key, group_id, "$union", value, ip, optional_params)

    def remove(
        self, group_key: Any, group_id: Any, properties: Mapping[str, Any], ip: IP = None,
        optional_params: Params = None,
    ) -> bool:
        """Remove a value from each named list property (``$remove``)."""
        value = self._props(properties, "$remove")
        return self._send(group_key, group_id, "$remove", value, ip, optional_params)

    def delete(self, group_key: Any, group_id: Any, optional_params: Params = None) -> bool:
        """Delete the group profile (``$delete``)."""
        return self._send(group_key, group_id, "$delete", "", None, optional_params)

    #: The Ruby library's name for :meth:`delete`.
    delete_group = delete

    def update(self, message: Mapping[str, Any]) -> bool:
        """Send a raw group update; ``$token`` and ``$time`` are filled when missing.

        ``message`` must hold ``$group_key`` and ``$group_id``.
        """
        if not isinstance(message, Mapping):
            raise InvalidTypeError(f"message must be a dict, got {type(message).__name__}")
        for key in ("$group_key", "$group_id"):
            if key not in message:
                raise InvalidInputError(f"message must hold {key!r}")
        tracker = self._tracker
        body = _json.normalize_properties(message, "message", default=tracker._default)
        full: dict[str, Any] = {
            "$token": tracker._token,
            "$group_key": _validation.check_name(message["$group_key"], "message['$group_key']"),
            "$group_id": _validation.check_group_id(message["$group_id"], "message['$group_id']"),
            "$time": _validation.to_millis(message["$time"], "message['$time']")
            if "$time" in message
            else time.time_ns() // 1_000_000,
        }
        if "$token" in body:
            _validation.check_token(body["$token"], "message['$token']")
        full.update((k, v) for k, v in body.items() if k not in full or k == "$token")
        return tracker._emit("group_update", full)
