"""A request context: properties (and a user id) for every event sent inside a block.

``with tracker.context(plan="pro", distinct_id="user-1"):`` makes each event
the tracker sends inside the block carry ``plan: "pro"``, and lets a call
inside it give ``None`` as the ``distinct_id`` (``tracker.track(None,
"Viewed")``) to mean ``"user-1"``.  The values live in a
:class:`contextvars.ContextVar`, so they belong to the thread or asyncio
task that entered the block: another thread's requests never see them, a
task started inside the block starts with a copy, and what a task binds
stays in that task.  Blocks nest: an inner block adds to (and for the same
names, replaces) the outer one's values until it ends.

Exactly what it does to a message: each context property is added to an
event's properties unless the call gave that property itself (the call's
own properties win; the library's own are never replaced).  Profile and
group updates are left alone.  The ``distinct_id`` is used only where a
call gives ``None``.  Values are checked when the block is entered, as
properties are (Mixpanel's limits).
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, Optional

from tracker import _json, _validation

__all__ = ["Binding", "Context"]

_Frame = tuple[Optional[str], dict[str, Any]]
_EVENT_TYPES = frozenset({"event", "import", "posthog"})


class Binding:
    """What ``tracker.context(...)`` returns: a ``with`` block that binds the values."""

    __slots__ = ("_context", "_frame", "_token")

    def __init__(self, context: Context, frame: _Frame) -> None:
        self._context = context
        self._frame = frame
        self._token: Optional[Token[Optional[_Frame]]] = None

    def __enter__(self) -> Binding:
        outer = self._context._var.get()
        did, props = self._frame
        if outer is not None:
            did = did if did is not None else outer[0]
            props = {**outer[1], **props}
        self._token = self._context._var.set((did, props))
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if self._token is not None:
            self._context._var.reset(self._token)
            self._token = None

    def __repr__(self) -> str:
        return f"Binding(distinct_id={self._frame[0]!r}, properties={sorted(self._frame[1])!r})"


class Context:
    """The context of one tracker: :meth:`bind` opens a block, calling it is the processor."""

    _adds_checked_values = True

    def __init__(self, default: Optional[_json.Default] = None) -> None:
        self._var: ContextVar[Optional[_Frame]] = ContextVar("tracker_context", default=None)
        self._default = default

    def __repr__(self) -> str:
        frame = self._var.get()
        if frame is None:
            return "Context(<empty>)"
        return f"Context(distinct_id={frame[0]!r}, properties={sorted(frame[1])!r})"

    def bind(self, distinct_id: Any = None, **properties: Any) -> Binding:
        """A ``with`` block in which events carry ``properties`` (and ``distinct_id`` is known).

        Bad values raise :class:`~tracker.errors.InvalidInputError` here, not
        in the calls inside the block.
        """
        did = None
        if distinct_id is not None:
            did = _validation.check_distinct_id(distinct_id, "context distinct_id")
        props = _json.normalize_properties(
            properties,
            "context",
            default=self._default,
            max_depth=_validation.MAX_DEPTH,
            max_items=_validation.MAX_ITEMS,
        )
        return Binding(self, (did, props))

    def distinct_id(self) -> Optional[str]:
        """The ``distinct_id`` bound in the current thread or task (``None`` when none is)."""
        frame = self._var.get()
        return None if frame is None else frame[0]

    def properties(self) -> dict[str, Any]:
        """A copy of the properties bound in the current thread or task."""
        frame = self._var.get()
        return {} if frame is None else dict(frame[1])

    def __call__(self, message_type: str, message: dict[str, Any]) -> dict[str, Any]:
        frame = self._var.get()
        if frame is None or not frame[1] or message_type not in _EVENT_TYPES:
            return message
        props = message.get("properties")
        if type(props) is dict:
            for k, v in frame[1].items():
                if k not in props:  # the call's own properties (and the library's) win
                    props[k] = v
        return message
