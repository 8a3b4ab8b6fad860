"""A sink for tests that keeps each ``(type, message)`` it is given, the message decoded."""

from __future__ import annotations

import json
from typing import Any


class Capture:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, message_type: str, message_json: str) -> None:
        self.sent.append((message_type, json.loads(message_json)))
