"""What the service would refuse: the collector's rules, applied to one message."""

from __future__ import annotations

import json
import time
from typing import Optional

from consumers._collector.validation import (
    MAX_EVENT_BYTES,
    check_engage,
    check_event,
    check_group,
)

__all__ = ["refusal"]


def refusal(message_type: str, message_json: str, now_ms: Optional[int] = None) -> Optional[str]:
    """Why the service would refuse this message (``"field: reason"``), or None if it would not."""
    if len(message_json.encode("utf-8", "surrogatepass")) > MAX_EVENT_BYTES:
        return f"message exceeds max size of {MAX_EVENT_BYTES} bytes"
    if message_type == "posthog":
        return None  # PostHog's /batch/ rules are its consumer's, checked when sent
    try:
        message = json.loads(message_json)
    except (ValueError, RecursionError) as e:
        return f"message is not JSON: {e}"
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    if message_type == "profile_update":
        problem = check_engage(message)
    elif message_type == "group_update":
        problem = check_group(message)
    else:
        problem = check_event(message, imported=message_type == "import", now_ms=now)
    if problem is None:
        return None
    return f"{problem.field}: {problem.message}" if problem.field else problem.message
