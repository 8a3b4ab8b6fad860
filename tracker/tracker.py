"""``Tracker``: turn calls into Mixpanel messages and hand them to a sink.

A sink is any callable ``sink(type, message_json)`` (the Ruby library's
block) or a consumer object with ``.send``.  Without one the tracker builds
a synchronous ``consumers.Consumer`` (US unless ``region=``/``api_host=``).

Each call returns ``True`` when the sink took the message and ``False``
when delivery failed (a ``consumers.errors.DeliveryError``, recognised by
name so this module imports no IO); the failure goes to ``error_handler``
(default: log it).  Bad input raises :class:`~tracker.errors.InvalidInputError`
before anything is sent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, Optional, Union

from tracker import _json, _props, _validation
from tracker._ids import random_bits
from tracker._pipeline import Pipeline
from tracker._props import GENERAL, RESERVED_GIVEN, add_properties
from tracker._sinks import (
    ErrorHandler,
    Sink,
    discard,
    is_delivery_error,
    log_error,
    sink_callable,
)
from tracker._tracking_url import tracking_url
from tracker._updates import ip_text as _ip_text
from tracker._version import __version__
from tracker._wiring import error_handler_of, wire
from tracker.context import Binding
from tracker.errors import InvalidInputError
from tracker.groups import Groups
from tracker.people import People
from tracker.processors import Processor

__all__ = ["LIB_NAME", "ErrorHandler", "Groups", "People", "Sink", "Tracker"]

logger = logging.getLogger("tracker")

#: ``mp_lib`` on every event: Mixpanel's name for the library family.
LIB_NAME = "python"

# the names this module has always had for them
_discard, _log_error = discard, log_error
_is_delivery_error, _sink_callable = is_delivery_error, sink_callable

#: below this many characters a message cannot reach the size limit (4 bytes a character)
_SIZE_CHECK_FROM = _validation.MAX_EVENT_BYTES // 4
_time_ns = time.time_ns
_EVENT_TYPES = frozenset({"event", "import"})
#: plain str ids already checked (and not placeholders); emptied when full
_KNOWN_IDS: set[str] = set()
_MAX_KNOWN_IDS = 4096
_MAX_NAME = _validation.MAX_NAME_CHARS
#: names known to be plain non-empty str of at most 255 characters (shared with properties)
_KNOWN_NAMES = _props.KNOWN_NAMES


def _checked_name(event: Any) -> str:
    """An event name checked (it may warn); remembered when plain."""
    name = _validation.check_event_name(event)
    if type(event) is str and len(name) <= _MAX_NAME:
        _props.remember_name(name)
    return name


class Tracker:
    """Build Mixpanel messages and hand each, as ``(type, message_json)``, to a sink.

    ``Tracker(token)`` sends synchronously to the US endpoints;
    ``Tracker(token, region="eu")`` or ``api_host="http://..."`` change where
    the default consumer sends.  ``Tracker(token, sink)`` hands messages to
    ``sink`` instead: a callable ``sink(type, message_json)`` or any consumer.

    ``alias`` takes effect only once it reaches the service, so it is sent
    through the *alias sink*: ``alias_sink=`` when given; else the default
    consumer; else the sink's own ``immediate`` sink when it has one (every
    consumer in ``consumers`` does: a buffered or background consumer sends
    the alias at once through the consumer it wraps, same host, session and
    credentials); else, when ``sink`` exposes ``endpoints``, a synchronous
    ``consumers.Consumer`` on those endpoints (so an EU tracker's aliases go
    to the EU host); else ``sink`` itself (a plain callable decides for
    itself how to deliver).

    ``error_handler(error)`` (or an object with ``.handle(error)``) receives
    delivery failures, also those a sink with ``use_error_handler`` (a
    background consumer without an ``on_error`` of its own) finds later;
    ``default(value)`` converts values the JSON encoder does not know (raise
    ``TypeError`` to refuse).

    ``processors=[...]`` shape each message, as a dict, before it is
    serialised (see :mod:`tracker.processors`); ``context(...)`` binds
    properties for a block (:mod:`tracker.context`).  ``disabled=True``
    builds, checks and processes every message as usual but sends nothing
    (without a sink, no consumer is built either): for tests and local runs.
    ``stats()`` counts what was not sent.
    """

    def __init__(
        self,
        token: str,
        sink: Optional[Union[Sink, Any]] = None,
        *,
        error_handler: Optional[Union[ErrorHandler, Any]] = None,
        region: Optional[str] = None,
        api_host: Optional[str] = None,
        alias_sink: Optional[Union[Sink, Any]] = None,
        default: Optional[_json.Default] = None,
        processors: Optional[Iterable[Processor]] = None,
        disabled: bool = False,
    ) -> None:
        self._token = _validation.check_token(token)
        self._default = default
        self._pipeline = Pipeline(processors, default)
        self._steps = self._pipeline.after_build
        self._shaping = self._pipeline.shaping
        self._disabled = bool(disabled)
        self._owned: list[Any] = []
        self._lock = threading.Lock()
        wiring = wire(sink, region=region, api_host=api_host, alias_sink=alias_sink,
                      disabled=disabled)
        self._send: Sink = wiring.send
        self._alias_send = wiring.alias_send
        self._endpoints = wiring.endpoints
        self._owned.extend(wiring.owned)
        self._on_error: ErrorHandler = error_handler_of(error_handler, sink)

        self.people = People(self)
        self.groups = Groups(self)

    def __repr__(self) -> str:
        return f"Tracker(token={self._token!r}, sink={self._send!r})"

    # -- processors, context, counts ---------------------------------------

    def context(self, distinct_id: Any = None, **properties: Any) -> Binding:
        """A ``with`` block whose events carry ``properties``; ``None`` ids mean ``distinct_id``.

        Bound to the current thread or asyncio task, nestable; see
        :mod:`tracker.context` for the exact effect on messages.
        """
        binding = self._pipeline.bind(distinct_id, properties)
        self._shaping = True
        return binding

    def current_context(self) -> dict[str, Any]:
        """The context bound in this thread or task: its properties, and ``distinct_id`` if bound.

        What a task queue carries from the caller into a task, to bind again
        there with :meth:`context`.
        """
        fields = self._pipeline.context.properties()
        distinct_id = self._pipeline.context.distinct_id()
        if distinct_id is not None:
            fields["distinct_id"] = distinct_id
        return fields

    def stats(self) -> dict[str, int]:
        """Counts of messages not sent: ``dropped`` by a processor, ``disabled``, ``failed``."""
        return self._pipeline.stats()

    # -- delivery ---------------------------------------------------------

    def _emit(
        self, message_type: str, message: dict[str, Any], send: Optional[Sink] = None
    ) -> bool:
        """Run the processors on ``message``, serialise it once and hand it to the sink."""
        if self._steps:
            processed = self._pipeline.apply(self._steps, message_type, message)
            if processed is None:
                return True
            message = processed
        message_json = _json.dumps(message)
        if len(message_json) > _SIZE_CHECK_FROM and message_type in _EVENT_TYPES:
            _validation.check_message_size(message_json)
        if self._disabled:
            self._pipeline.count("disabled")
            return True
        try:
            (send or self._send)(message_type, message_json)
        except Exception as error:
            if not _is_delivery_error(error):
                raise
            self._pipeline.count("failed")
            self._on_error(error)
            return False
        return True

    def _alias_sink(self) -> Sink:
        if self._alias_send is None:
            with self._lock:
                if self._alias_send is None:
                    from consumers import Consumer

                    consumer = Consumer(endpoints=self._endpoints)
                    self._owned.append(consumer)
                    self._alias_send = consumer.send
        return self._alias_send

    def close(self) -> None:
        """Close the consumers this tracker built itself (never one it was given)."""
        for consumer in self._owned:
            consumer.close()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- events -----------------------------------------------------------

    def _event(
        self,
        distinct_id: Any,
        event: Any,
        properties: Optional[Mapping[str, Any]],
        ip: Any,
        time_ms: Optional[int],
        extra: Optional[dict[str, Any]] = None,
    ) -> dict[str, Any]:
        did = distinct_id
        if type(did) is not str or did not in _KNOWN_IDS:
            did = self._checked_id(did)
        name = event
        if type(name) is not str or name not in _KNOWN_NAMES:
            name = _checked_name(name)
        props: dict[str, Any] = {
            "token": self._token,
            "distinct_id": did,
            "time": _time_ns() // 1_000_000 if time_ms is None else time_ms,
            # new_insert_id(), inline: this is the hottest line of the library
            "$insert_id": random_bits(128).to_bytes(16, "big").hex(),
            "mp_lib": LIB_NAME,
            "$lib_version": __version__,
        }
        if self._shaping:  # super properties and context, below the library's own
            props = self._pipeline.start(props)
        if extra:
            props.update(extra)
        flags = 0
        if properties is not None:
            flags = add_properties(props, properties, self._default)
            if flags & RESERVED_GIVEN:
                self._check_reserved(props, properties, time_ms)
        if ip is not None:
            props["ip"] = _ip_text(ip)
        if flags & GENERAL or len(props) > _validation.MAX_PROPERTIES:
            _validation.check_event_properties(props)
        return {"event": name, "properties": props}

    def _checked_id(self, distinct_id: Any) -> str:
        """A call's ``distinct_id`` checked (``None``: the context's), remembered when plain."""
        if distinct_id is None:
            distinct_id = self._pipeline.context_distinct_id()
        did = _validation.check_distinct_id(distinct_id)
        if type(distinct_id) is str and not (
            len(did) <= 36 and did.strip().lower() in _validation.PLACEHOLDER_IDS
        ):  # placeholders are never remembered: each call with one is warned
            if len(_KNOWN_IDS) >= _MAX_KNOWN_IDS:
                _KNOWN_IDS.clear()
            _KNOWN_IDS.add(did)
        return did

    def _check_reserved(
        self, props: dict[str, Any], properties: Mapping[str, Any], time_ms: Optional[int]
    ) -> None:
        """The library's own properties, given by the caller: checked, and ``time`` converted."""
        if "time" in properties:
            props["time"] = self._given_time(properties["time"], time_ms)
        if "$insert_id" in properties:
            _validation.check_insert_id(props["$insert_id"], "properties['$insert_id']")
        if "distinct_id" in properties:
            props["distinct_id"] = _validation.check_distinct_id(
                props["distinct_id"], "properties['distinct_id']"
            )
        if "token" in properties:
            _validation.check_token(props["token"], "properties['token']")

    @staticmethod
    def _given_time(value: Any, import_ms: Optional[int]) -> int:
        if import_ms is None:
            return _validation.to_millis(value, "properties['time']")
        return _validation.check_import_time(value, "properties['time']")

    def track(
        self,
        distinct_id: Any,
        event: str,
        properties: Optional[Mapping[str, Any]] = None,
        ip: Optional[Union[str, int]] = None,
    ) -> bool:
        """Record ``event`` done by ``distinct_id`` now; ``properties`` describe it.

        ``time``, ``$insert_id`` and ``distinct_id`` in ``properties`` win over
        the generated ones; ``ip`` is sent as the ``ip`` property (geolocation).
        ``distinct_id`` may be ``None`` inside a ``context(distinct_id=...)``.
        """
        return self._emit("event", self._event(distinct_id, event, properties, ip, None))

    def import_event(
        self,
        distinct_id: Any,
        event: str,
        timestamp: Any,
        properties: Optional[Mapping[str, Any]] = None,
        ip: Optional[Union[str, int]] = None,
    ) -> bool:
        """Record a historical event (type ``"import"``, sent to /import).

        ``timestamp``: a datetime or seconds/milliseconds since the epoch;
        after 1970 and at most an hour ahead.  Credentials belong to the
        consumer that sends to /import, never to the message.
        """
        ms = _validation.check_import_time(timestamp)
        return self._emit("import", self._event(distinct_id, event, properties, ip, ms))

    def alias(self, alias_id: Any, real_id: Any) -> bool:
        """Make ``alias_id`` another name for ``real_id`` (``$create_alias``), sent at once.

        Goes through the alias sink (see the class docstring), so it reaches
        the service even when ``track`` is buffered or queued.
        """
        alias_text = _validation.check_distinct_id(alias_id, "alias_id")
        real_text = _validation.check_distinct_id(real_id, "real_id")
        if alias_text == real_text:
            raise InvalidInputError(f"alias_id and real_id are both {alias_text!r}")
        message = self._event(real_text, "$create_alias", None, None, None, {"alias": alias_text})
        return self._emit("event", message, self._alias_sink())

    def identify(self, identified_id: Any, anon_id: Any) -> bool:
        """Link an anonymous id to a known user id (``$identify``; Original ID Merge projects)."""
        known = _validation.check_distinct_id(identified_id, "identified_id")
        anon = _validation.check_distinct_id(anon_id, "anon_id")
        extra = {"$identified_id": known, "$anon_id": anon}
        return self._emit("event", self._event(known, "$identify", None, None, None, extra))

    def merge(self, distinct_id1: Any, distinct_id2: Any) -> bool:
        """Merge two users' identities (``$merge``, type ``"import"``: /import credentials)."""
        first = _validation.check_distinct_id(distinct_id1, "distinct_id1")
        second = _validation.check_distinct_id(distinct_id2, "distinct_id2")
        now = time.time_ns() // 1_000_000
        extra = {"$distinct_ids": [first, second]}
        return self._emit("import", self._event(first, "$merge", None, None, now, extra))

    def generate_tracking_url(
        self,
        distinct_id: Any,
        event: str,
        properties: Optional[Mapping[str, Any]] = None,
        endpoint: Optional[str] = None,
    ) -> str:
        """A URL that records the event when fetched (an image pixel for emails).

        Without ``endpoint`` it points at this tracker's /track URL (US when
        unknown).  It carries no ``$insert_id``: each fetch counts, as with
        the Ruby library.
        """
        return tracking_url(self._token, LIB_NAME, self._default, self._endpoints,
                            distinct_id, event, properties, endpoint)
