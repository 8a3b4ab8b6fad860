"""Tracking URLs: an event encoded in a ``/track`` URL that records it when fetched."""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from typing import Any, Optional

from tracker import _json, _validation
from tracker._version import __version__

__all__ = ["DEFAULT_TRACK_URL", "tracking_url"]

DEFAULT_TRACK_URL = "https://api.mixpanel.com/track"


def tracking_url(
    token: str,
    lib_name: str,
    default: Optional[_json.Default],
    endpoints: Any,
    distinct_id: Any,
    event: str,
    properties: Optional[Mapping[str, Any]],
    endpoint: Optional[str],
) -> str:
    """What ``Tracker.generate_tracking_url`` returns (see there)."""
    did = _validation.check_distinct_id(distinct_id)
    name = _validation.check_event_name(event)
    props: dict[str, Any] = {
        "distinct_id": did,
        "token": token,
        "time": time.time_ns() // 1_000_000,
        "mp_lib": lib_name,
        "$lib_version": __version__,
    }
    given = _json.normalize_properties(properties, default=default)
    if "token" in given:
        _validation.check_token(given["token"], "properties['token']")
    props.update(given)
    data = _json.dumps({"event": name, "properties": props})
    encoded = base64.urlsafe_b64encode(data.encode("utf-8")).decode("ascii")
    if endpoint is None:
        base = getattr(endpoints, "events", None) or DEFAULT_TRACK_URL
        endpoint = base.rstrip("/") + "/"
    return f"{endpoint}?data={encoded}&ip=1&img=1"
