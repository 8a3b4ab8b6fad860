"""Processors: plain callables that shape each message before it is serialised.

A processor is ``processor(type, message) -> message | None``.  ``type`` is
the message type the sink will get (``"event"``, ``"import"``,
``"profile_update"``, ``"group_update"``, or ``"posthog"`` for every PostHog
message); ``message`` is the message as a dict, already checked and built.
A processor returns the message (the same dict, changed or not, or a new
one) or ``None`` to drop it: nothing is sent, the call returns ``True`` and
the tracker's ``stats()["dropped"]`` grows.  ``Tracker(token, sink,
processors=[...])`` runs them in order, the way structlog runs its
processors, and serialises the result once.  A processor that raises is a
bug in the caller's code: the exception propagates from the call, like a
bad property value, and nothing is sent.

Values a processor of your own adds are checked as ``track()``'s own
properties are (a ``NaN`` raises :class:`~tracker.errors.InvalidInputError`
at the call site).  Nested values may be the caller's own objects: replace
them rather than change them in place.  The processors shipped here check
what they add when they are built, and never change the caller's objects.

Shipped: :class:`SuperProperties` (here), :class:`~tracker.sampling.Sample`,
:class:`~tracker.scrub.Scrub`, and the request context behind
``tracker.context(...)`` (:mod:`tracker.context`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Callable, Optional

from tracker import _json, _validation
from tracker.errors import InvalidTypeError

__all__ = [
    "EVENT_TYPES",
    "IDENTITY_EVENTS",
    "Processor",
    "SuperProperties",
    "bad_result",
    "check_processors",
    "compose",
    "is_checked",
    "properties_of",
    "run",
]

#: ``processor(type, message) -> message | None``
Processor = Callable[[str, dict[str, Any]], Optional[dict[str, Any]]]

#: Events that change who a user is rather than record what they did: never sampled.
IDENTITY_EVENTS = frozenset(
    {"$create_alias", "$identify", "$merge", "$set", "$set_once", "$groupidentify"}
)

#: The message types whose messages carry event properties (profile and group updates do not).
EVENT_TYPES = frozenset({"event", "import", "posthog"})


def properties_of(message_type: str, message: dict[str, Any]) -> Optional[dict[str, Any]]:
    """The event properties of a message (``None`` for profile and group updates).

    Mixpanel events and imports, and every PostHog message, keep them under
    ``"properties"``.
    """
    if message_type in EVENT_TYPES:
        props = message.get("properties")
        if type(props) is dict:
            return props
    return None


def is_checked(processor: Any) -> bool:
    """Whether ``processor`` is one of ours, which checks what it adds when it is built."""
    return getattr(processor, "_adds_checked_values", False) is True


def check_processors(processors: Optional[Iterable[Any]]) -> tuple[Processor, ...]:
    """The processors as a tuple; a processor that is not callable is refused here."""
    if processors is None:
        return ()
    if isinstance(processors, (str, bytes)) or not isinstance(processors, Iterable):
        raise InvalidTypeError(
            f"processors must be a list of callables, got {type(processors).__name__}"
        )
    out = tuple(processors)
    for i, processor in enumerate(out):
        if not callable(processor):
            raise InvalidTypeError(
                f"processors[{i}] must be a callable (type, message) -> message | None, "
                f"got {type(processor).__name__}"
            )
    return out


def run(
    processors: tuple[Processor, ...], message_type: str, message: dict[str, Any]
) -> Optional[dict[str, Any]]:
    """Run ``processors`` in order; ``None`` as soon as one drops the message."""
    for processor in processors:
        result = processor(message_type, message)
        if result is None:
            return None
        if type(result) is not dict:
            raise bad_result(processor, result)
        message = result
    return message


def bad_result(processor: Any, result: Any) -> InvalidTypeError:
    """The error for a processor that returned neither a dict nor None."""
    return InvalidTypeError(
        f"processor {_name(processor)} returned {type(result).__name__}; "
        "a processor returns the message (a dict) or None to drop it"
    )


def compose(*processors: Processor) -> Processor:
    """One processor that runs ``processors`` in order (``None`` from any drops the message)."""
    chain = check_processors(processors)

    def composed(message_type: str, message: dict[str, Any]) -> Optional[dict[str, Any]]:
        return run(chain, message_type, message)

    composed._adds_checked_values = all(map(is_checked, chain))  # type: ignore[attr-defined]
    return composed


def _name(processor: Any) -> str:
    return getattr(processor, "__qualname__", None) or type(processor).__qualname__


class SuperProperties:
    """Add the same properties to every event (Mixpanel's and PostHog's super properties).

    Values are checked with Mixpanel's limits (objects nested at most 3 deep,
    at most 255 items), which PostHog accepts too.

    ``SuperProperties({"app": "shop", "release": get_release})``: a value that
    is callable is called (with no arguments) for each message and its result
    sent; any other value is checked once, here.  Each property is added to
    the event's properties only where the call did not give that property
    itself (``override=True``: the super property wins instead); the
    library's own (``token``, ``distinct_id``, ``time``, ``$insert_id``,
    ...) are never replaced.  Profile and group updates are left alone.
    """

    _adds_checked_values = True

    def __init__(
        self,
        properties: Mapping[str, Any],
        *,
        override: bool = False,
        default: Optional[_json.Default] = None,
    ) -> None:
        if not isinstance(properties, Mapping):
            raise InvalidTypeError(
                f"super properties must be a dict, got {type(properties).__name__}"
            )
        static = {k: v for k, v in properties.items() if not callable(v)}
        self._static = _json.normalize_properties(
            static, "super properties", default=default, max_depth=_DEPTH, max_items=_ITEMS
        )
        self._dynamic = tuple((k, v) for k, v in properties.items() if callable(v))
        self.has_callables = bool(self._dynamic)
        _json.normalize_properties(dict.fromkeys(k for k, _ in self._dynamic), "super properties")
        self.override = override
        self._default = default

    def __repr__(self) -> str:
        names = sorted([*self._static, *(k for k, _ in self._dynamic)])
        return f"SuperProperties({names!r}, override={self.override})"

    def values(self) -> dict[str, Any]:
        """The properties for one message: the static ones and each callable's result, checked."""
        if not self._dynamic:
            return self._static
        out = dict(self._static)
        for k, fn in self._dynamic:
            out[k] = _json.normalize(
                fn(), f"super property {k!r}", default=self._default,
                max_depth=_DEPTH, max_items=_ITEMS,
            )
        return out

    def __call__(self, message_type: str, message: dict[str, Any]) -> dict[str, Any]:
        if message_type not in EVENT_TYPES:
            return message
        props = message.get("properties")
        if type(props) is not dict:
            return message
        if self.override:
            for k, v in self.values().items():
                if k not in _OWN:
                    props[k] = v
        else:
            for k, v in self.values().items():
                if k not in props:
                    props[k] = v
        return message


# Mixpanel's limits, the stricter of the two services'
_DEPTH = _validation.MAX_DEPTH
_ITEMS = _validation.MAX_ITEMS

#: properties the trackers set themselves, which a processor of ours never replaces
_OWN = frozenset(
    {"token", "distinct_id", "time", "$insert_id", "mp_lib", "$lib", "$lib_version"}
)
