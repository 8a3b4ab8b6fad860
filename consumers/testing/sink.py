"""``RecordingSink``: a sink that keeps every message, decoded, for assertions in tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from typing import Any, Optional

import attrs

__all__ = ["Recorded", "RecordingSink"]

_UNSET: Any = object()


@attrs.frozen
class Recorded:
    """One message a sink received: its tuple type and the message, decoded."""

    type: str
    message: dict[str, Any]

    @property
    def name(self) -> Optional[str]:
        """The event name (Mixpanel ``event``, PostHog ``event``), else ``None``."""
        value = self.message.get("event")
        return value if isinstance(value, str) else None

    @property
    def distinct_id(self) -> Optional[str]:
        """The ``distinct_id`` wherever the message type keeps it, else ``None``."""
        message = self.message
        for holder in (message.get("properties"), message):
            if isinstance(holder, Mapping):
                for key in ("distinct_id", "$distinct_id"):
                    if isinstance(holder.get(key), str):
                        return str(holder[key])
        return None

    @property
    def properties(self) -> dict[str, Any]:
        """Event properties (Mixpanel and PostHog), else the message itself."""
        value = self.message.get("properties")
        return value if isinstance(value, dict) else self.message


class RecordingSink:
    """A sink (``sink(type, message_json)``) that records what a tracker hands it.

    Nothing is sent anywhere.  Pass it where a consumer would go::

        sink = RecordingSink()
        Tracker("token", sink).track("u1", "Signed Up", {"plan": "pro"})
        sink.assert_tracked("Signed Up", distinct_id="u1", properties={"plan": "pro"})

    Every ``message_json`` must be a JSON object, as every tracker call makes:
    anything else is a bug in the code under test and raises ``ValueError``
    at the call.  Safe to share between threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[Recorded] = []

    def __call__(self, message_type: str, message_json: str) -> None:
        """Record one message (the sink protocol)."""
        if not isinstance(message_type, str):
            raise TypeError(f"message type must be a str, got {type(message_type).__name__}")
        try:
            message = json.loads(message_json)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{message_type} message is not valid JSON: {error}") from None
        if not isinstance(message, dict):
            raise ValueError(
                f"{message_type} message must be a JSON object, got {type(message).__name__}"
            )
        with self._lock:
            self._records.append(Recorded(message_type, message))

    send = __call__

    # -- reading -------------------------------------------------------------------
    def records(self, type: Optional[str] = None) -> list[Recorded]:
        """Everything recorded so far, oldest first; only ``type`` when given."""
        with self._lock:
            records = list(self._records)
        return [r for r in records if type is None or r.type == type]

    def messages(self, type: Optional[str] = None) -> list[dict[str, Any]]:
        """The decoded messages, oldest first; only ``type`` when given."""
        return [r.message for r in self.records(type)]

    @property
    def events(self) -> list[dict[str, Any]]:
        """Mixpanel events (``"event"`` and ``"import"``) and PostHog captures, oldest first."""
        return [r.message for r in self.records() if r.name is not None]

    @property
    def profile_updates(self) -> list[dict[str, Any]]:
        """People updates (``"profile_update"``), oldest first."""
        return self.messages("profile_update")

    @property
    def group_updates(self) -> list[dict[str, Any]]:
        """Group updates (``"group_update"``), oldest first."""
        return self.messages("group_update")

    def clear(self) -> None:
        """Forget everything recorded."""
        with self._lock:
            self._records.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def __iter__(self) -> Iterator[Recorded]:
        return iter(self.records())

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for record in self.records():
            counts[record.type] = counts.get(record.type, 0) + 1
        return f"RecordingSink({counts})"

    # -- asserting -----------------------------------------------------------------
    def find(
        self,
        event: Optional[str] = None,
        *,
        distinct_id: Optional[str] = None,
        properties: Optional[Mapping[str, Any]] = None,
        type: Optional[str] = None,
    ) -> list[Recorded]:
        """The records that match every criterion given; ``properties`` is a subset match.

        A nested mapping in ``properties`` matches a subset of the nested
        value too; every other value must be equal.
        """
        return [
            r for r in self.records(type)
            if (event is None or r.name == event)
            and (distinct_id is None or r.distinct_id == distinct_id)
            and (properties is None or _subset(properties, r.properties))
        ]

    def assert_tracked(
        self,
        event: Optional[str] = None,
        *,
        distinct_id: Optional[str] = None,
        properties: Optional[Mapping[str, Any]] = None,
        type: Optional[str] = None,
        count: Optional[int] = None,
    ) -> Recorded:
        """Assert a message matching every criterion was recorded (exactly ``count`` when given).

        Returns the last match.  The ``AssertionError`` lists what was
        recorded instead, so a failing test shows the difference.
        """
        found = self.find(event, distinct_id=distinct_id, properties=properties, type=type)
        wanted = _describe(event, distinct_id, properties, type)
        if not found or (count is not None and len(found) != count):
            times = "" if count is None else f" {count} time(s), found {len(found)}"
            raise AssertionError(f"expected {wanted}{times}; recorded:\n{self._listing()}")
        return found[-1]

    def assert_not_tracked(
        self,
        event: Optional[str] = None,
        *,
        distinct_id: Optional[str] = None,
        properties: Optional[Mapping[str, Any]] = None,
        type: Optional[str] = None,
    ) -> None:
        """Assert no recorded message matches every criterion given."""
        found = self.find(event, distinct_id=distinct_id, properties=properties, type=type)
        if found:
            wanted = _describe(event, distinct_id, properties, type)
            raise AssertionError(f"expected no {wanted}; recorded:\n{self._listing()}")

    def assert_no_events(self, type: Optional[str] = None) -> None:
        """Assert nothing (of ``type``, when given) was recorded."""
        if self.records(type):
            what = "messages" if type is None else f"{type} messages"
            raise AssertionError(f"expected no {what}; recorded:\n{self._listing()}")

    def _listing(self) -> str:
        records = self.records()
        if not records:
            return "  (nothing)"
        lines = [f"  {r.type}: {json.dumps(r.message, sort_keys=True)[:300]}" for r in records[:50]]
        if len(records) > 50:
            lines.append(f"  ... and {len(records) - 50} more")
        return "\n".join(lines)


def _subset(expected: Mapping[str, Any], actual: Any) -> bool:
    if not isinstance(actual, Mapping):
        return False
    for key, want in expected.items():
        got = actual.get(key, _UNSET)
        if got is _UNSET:
            return False
        if isinstance(want, Mapping):
            if not _subset(want, got):
                return False
        elif got != want:
            return False
    return True


def _describe(
    event: Optional[str],
    distinct_id: Optional[str],
    properties: Optional[Mapping[str, Any]],
    type: Optional[str],
) -> str:
    parts = [f"a {type} message" if type else "a message"]
    if event is not None:
        parts.append(f"event={event!r}")
    if distinct_id is not None:
        parts.append(f"distinct_id={distinct_id!r}")
    if properties is not None:
        parts.append(f"properties ⊇ {dict(properties)!r}")
    return " ".join(parts)
