"""Valid Mixpanel messages and request bodies for the collector's tests."""

from __future__ import annotations

import base64
import itertools
import json
import time
from typing import Any

_ids = itertools.count()

#: a property value that means "leave this property out" (for missing-field cases)
DROP = object()


def now_ms() -> int:
    return int(time.time() * 1000)


def event(name: str = "Signed up", **props: Any) -> dict[str, Any]:
    """A valid event for /track and /import (token, time, distinct_id, a fresh $insert_id)."""
    properties: dict[str, Any] = {
        "token": "tok",
        "distinct_id": "user-1",
        "time": now_ms(),
        "$insert_id": f"ins-{next(_ids)}",
    }
    properties.update(props)
    for key in [k for k, v in properties.items() if v is DROP]:
        del properties[key]
    return {"event": name, "properties": properties}


def form(payload: Any, *, b64: bool = True) -> dict[str, str]:
    """The ``data=`` form field of /track, /engage, /groups (base64 unless ``b64=False``)."""
    text = json.dumps(payload)
    return {"data": base64.b64encode(text.encode()).decode() if b64 else text}
