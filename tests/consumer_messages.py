"""Valid serialised messages and a fast retry policy for the consumer tests."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

from consumers.retry import RetryPolicy

TOKEN = "project-token-1"
PATHS = {"event": "/track", "profile_update": "/engage", "group_update": "/groups",
         "import": "/import"}
#: the collector's endpoint name for each message type
ENDPOINT = {t: p.strip("/") for t, p in PATHS.items()}

_ids = itertools.count()


def quick_retry(attempts: int, **kwargs: Any) -> RetryPolicy:
    """A retry policy with millisecond backoffs: tests count attempts, they do not wait."""
    settings: dict[str, Any] = {
        "max_attempts": attempts, "initial_backoff": 0.001, "rate_limit_backoff": 0.001,
        "max_backoff": 0.01, "max_elapsed": 20.0, "jitter": 0.0,
    }
    settings.update(kwargs)
    return RetryPolicy(**settings)


def now_ms() -> int:
    return int(time.time() * 1000)


def event(name: str = "Signed up", **props: Any) -> str:
    """One /track or /import event with a fresh ``$insert_id``."""
    properties = {"token": TOKEN, "distinct_id": "user-1", "time": now_ms(),
                  "$insert_id": f"ins-{next(_ids)}"}
    properties.update(props)
    return json.dumps({"event": name, "properties": properties})


def profile_update(**set_: Any) -> str:
    """One /engage ``$set`` with a fresh counter (plus ``set_``)."""
    return json.dumps({"$token": TOKEN, "$distinct_id": "user-1", "$time": now_ms(),
                       "$set": {**set_, "n": next(_ids)}})
