"""The PostHog messages themselves: one builder per call, each returning the message dict.

Every message is what PostHog's ``/batch/`` takes as one element of
``batch``: ``type``, ``event``, ``distinct_id``, ``properties`` (ending with
``$lib``, ``$lib_version`` and, unless geolocation is wanted,
``"$geoip_disable": true``), ``timestamp`` and ``uuid``.  Person properties
(``$set``, ``$set_once``) are sent both at the top of the message and
inside ``properties``, where PostHog's ingestion reads them.  Arguments are
already checked and normalised by the caller.
"""

from __future__ import annotations

from typing import Any, Optional

from tracker._version import __version__

__all__ = [
    "LIB_NAME",
    "alias_message",
    "capture_message",
    "group_identify_message",
    "identify_message",
    "person_message",
]

#: ``$lib`` on every message.
LIB_NAME = "tracking-toolkit-python"


def _stamp(props: dict[str, Any], geoip_disable: bool) -> dict[str, Any]:
    props["$lib"] = LIB_NAME
    props["$lib_version"] = __version__
    if geoip_disable:
        # server-side events would be geolocated to the server's own address
        props["$geoip_disable"] = True
    return props


def _message(
    kind: str, event: str, distinct_id: str, props: dict[str, Any],
    timestamp: str, uuid: str, geoip_disable: bool,
) -> dict[str, Any]:
    return {
        "type": kind,
        "event": event,
        "distinct_id": distinct_id,
        "properties": _stamp(props, geoip_disable),
        "timestamp": timestamp,
        "uuid": uuid,
    }


def _person(
    kind: str, event: str, operation: str, distinct_id: str, person: dict[str, Any],
    timestamp: str, uuid: str, geoip_disable: bool,
) -> dict[str, Any]:
    return {
        "type": kind,
        "event": event,
        "distinct_id": distinct_id,
        operation: person,
        "properties": _stamp({operation: person}, geoip_disable),
        "timestamp": timestamp,
        "uuid": uuid,
    }


def capture_message(
    distinct_id: str, event: str, props: dict[str, Any], groups: Optional[dict[str, str]],
    timestamp: str, uuid: str, geoip_disable: bool,
) -> dict[str, Any]:
    """An event; ``groups`` becomes the ``$groups`` property."""
    if groups is not None:
        props["$groups"] = groups
    return _message("capture", event, distinct_id, props, timestamp, uuid, geoip_disable)


def identify_message(
    distinct_id: str, person: dict[str, Any], timestamp: str, uuid: str, geoip_disable: bool,
) -> dict[str, Any]:
    """``$identify`` with ``person`` as ``$set``."""
    return _person("identify", "$identify", "$set", distinct_id, person,
                   timestamp, uuid, geoip_disable)


def person_message(
    operation: str, distinct_id: str, person: dict[str, Any],
    timestamp: str, uuid: str, geoip_disable: bool,
) -> dict[str, Any]:
    """``$set`` or ``$set_once`` (``operation``): person properties without an identify."""
    return _person("capture", operation, operation, distinct_id, person,
                   timestamp, uuid, geoip_disable)


def alias_message(
    distinct_id: str, alias: str, timestamp: str, uuid: str, geoip_disable: bool,
) -> dict[str, Any]:
    """``$create_alias``: ``alias`` becomes another id of ``distinct_id``."""
    props = {"distinct_id": distinct_id, "alias": alias}
    return _message("alias", "$create_alias", distinct_id, props, timestamp, uuid, geoip_disable)


def group_identify_message(
    group_type: str, group_key: str, group_set: dict[str, Any], distinct_id: Optional[str],
    timestamp: str, uuid: str, geoip_disable: bool,
) -> dict[str, Any]:
    """``$groupidentify``: set ``group_set`` on the group; the id defaults to ``$<type>_<key>``."""
    props = {"$group_type": group_type, "$group_key": group_key, "$group_set": group_set}
    did = distinct_id if distinct_id is not None else f"${group_type}_{group_key}"
    return _message("capture", "$groupidentify", did, props, timestamp, uuid, geoip_disable)
