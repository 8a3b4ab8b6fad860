"""What a tracker (Mixpanel's or PostHog's) does between building a message and sending it.

A :class:`Pipeline` holds the caller's processors, the tracker's request
context and the counts ``stats()`` reports.  ``steps`` is the tuple actually
run: empty when there are no processors and no context was ever entered,
so that a tracker without them pays one truth test per message.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, Optional

from tracker import _json, _validation
from tracker.context import Binding, Context
from tracker.errors import InvalidInputError
from tracker.processors import (
    Processor,
    SuperProperties,
    bad_result,
    check_processors,
    is_checked,
)

__all__ = ["Pipeline"]

_EVENTS = frozenset({"event", "import"})
_WHERE = "message after processors"


class Pipeline:
    """Processors, context and counts of one tracker.

    ``steps`` run on every message once it is built.  A builder that calls
    :meth:`start` for an event's first properties (the Mixpanel tracker does)
    runs only ``after_build``: the context and the :class:`SuperProperties`
    at the head of the list are then applied as the properties are built
    (:meth:`start`)
    (below the library's own and the call's), which is exactly what running
    them first would do, at a fraction of the cost.  ``shaping`` tells such a
    builder whether :meth:`start` has anything to add.
    """

    def __init__(
        self, processors: Optional[Iterable[Any]], default: Optional[_json.Default]
    ) -> None:
        self.processors = check_processors(processors)
        self.context = Context(default)
        head = 0
        for processor in self.processors:
            if type(processor) is not SuperProperties or processor.override:
                break
            head += 1
        # the first one's values win (it runs first): merged last
        self._head: tuple[SuperProperties, ...] = tuple(
            p for p in reversed(self.processors[:head]) if isinstance(p, SuperProperties)
        )
        self.after_build: tuple[Processor, ...] = self.processors[head:]
        self.steps: tuple[Processor, ...] = self.processors
        self.shaping = bool(self._head)
        self._dynamic_head = any(p.has_callables for p in self._head)
        self._static_base: dict[str, Any] = {}
        if not self._dynamic_head:
            for p in self._head:
                self._static_base.update(p.values())
        self._context_on = False
        self._checked = all(map(is_checked, self.processors))
        self._default = default
        self._lock = threading.Lock()
        self._counts = {"dropped": 0, "disabled": 0, "failed": 0}

    def bind(self, distinct_id: Any, properties: dict[str, Any]) -> Binding:
        """A context block; from the first one on, the context runs before the processors."""
        binding = self.context.bind(distinct_id, **properties)
        if not self._context_on:
            self.steps = (self.context, *self.processors)
            self._context_on = self.shaping = True
        return binding

    def context_distinct_id(self) -> Optional[str]:
        return self.context.distinct_id() if self._context_on else None

    def start(self, own: dict[str, Any]) -> dict[str, Any]:
        """An event's properties: the head super properties', the context's over them, ``own``
        (the library's) over both."""
        supers = self._static_base
        if self._dynamic_head:
            supers = {}
            for processor in self._head:
                supers.update(processor.values())
        frame = self.context._var.get() if self._context_on else None
        if frame is None:
            return {**supers, **own}
        return {**supers, **frame[1], **own}

    def apply(
        self, steps: tuple[Processor, ...], message_type: str, message: dict[str, Any]
    ) -> Optional[dict[str, Any]]:
        """The message after ``steps``, checked; ``None`` (and counted) when one dropped it."""
        for step in steps:  # processors.run(), inline
            result = step(message_type, message)
            if type(result) is not dict:
                if result is None:
                    self.count("dropped")
                    return None
                raise bad_result(step, result)
            message = result
        if not self._checked:
            return self._recheck(message_type, message)
        if message_type in _EVENTS:
            props = message.get("properties")
            if type(props) is dict and len(props) > _validation.MAX_PROPERTIES:
                _validation.check_event_properties(props, f"{_WHERE}: properties")
        return message

    def _recheck(self, message_type: str, message: dict[str, Any]) -> dict[str, Any]:
        """Values a caller's processor added get the checks the call's own values got."""
        if message_type not in _EVENTS:
            return _json.normalize_properties(message, _WHERE, default=self._default)
        if not isinstance(message.get("properties"), dict):
            raise InvalidInputError(f"{_WHERE}: an event needs its 'properties' dict")
        # the message is depth 1 and its properties depth 2: MAX_DEPTH below them
        checked: dict[str, Any] = _json.normalize(
            message,
            _WHERE,
            default=self._default,
            max_depth=_validation.MAX_DEPTH + 2,
            max_items=_validation.MAX_ITEMS,
        )
        _validation.check_event_properties(checked["properties"], f"{_WHERE}: properties")
        return checked

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def stats(self) -> dict[str, int]:
        """``dropped`` by a processor, not sent because ``disabled``, ``failed`` to deliver."""
        with self._lock:
            return dict(self._counts)
