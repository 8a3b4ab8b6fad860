"""PostHog: build ``/batch/`` messages and hand them to a sink, as the Ruby ``PostHog::Client``.

``Client(api_key)`` queues every message in a ``BackgroundConsumer`` that
delivers through a ``PostHogConsumer`` (US cloud unless ``host=``/``region=``),
so ``capture()`` never waits on the network.  ``Client(api_key, sink=...)``
hands each message, as ``("posthog", message_json)``, to any sink instead: a
callable, a ``FileConsumer`` for log-then-replay, or a ``PostHogConsumer``.

Messages are exactly what PostHog's ``/batch/`` endpoint takes as one element
of ``batch`` (see ``docs/posthog.md``): ``type``, ``event``,
``distinct_id``, ``properties`` (with ``$lib``, ``$lib_version`` and, by
default, ``"$geoip_disable": true``, as posthog-python sends from servers,
so events are not geolocated to the server's address), ``timestamp``
(ISO-8601, UTC) and ``uuid``.  The ``uuid`` is fixed when the call is made,
so a batch that is sent again after a lost answer is deduplicated by the
service.  The ``api_key`` is the project key: public, it travels in the
batch body, never in the messages.

Errors, as in the Ruby library:

* Bad input (empty ``distinct_id``, NaN in ``properties``, a message over
  900 KiB of JSON, ...) raises :class:`~tracker.errors.InvalidInputError` at
  the call site; nothing is sent.
* Delivery failures go to ``on_error`` and never raise: ``on_error(status,
  message)`` (the Ruby form) or ``on_error(error, batch)`` (posthog-python's),
  told apart by signature (see :mod:`tracker._posthog_errors`).  ``status``
  is the HTTP status of the refusal, or :data:`NO_RESPONSE` (``-1``) when no
  HTTP answer came or the message was dropped before sending.  The default
  handler logs through ``logging`` (logger ``tracker.posthog``): ERROR when
  messages are lost, WARNING when a batch is kept through an outage to be
  sent again (once per batch); see ``docs/logging.md``.
"""

from __future__ import annotations

import datetime as _dt
import uuid as _uuid
from collections.abc import Iterable, Mapping
from typing import Any, Callable, Optional, Union, overload

from tracker import _hash_calls, _json, _props, _validation
from tracker import _posthog_messages as _messages
from tracker import _posthog_values as _values
from tracker._pipeline import Pipeline
from tracker._posthog_delivery import MAX_MESSAGE_BYTES, Delivery, MessageTooLargeError
from tracker._posthog_errors import NO_RESPONSE, ErrorCallback, ErrorReporter
from tracker._posthog_messages import LIB_NAME
from tracker.context import Binding
from tracker.errors import InvalidInputError
from tracker.processors import Processor

__all__ = [
    "LIB_NAME",
    "MAX_MESSAGE_BYTES",
    "NO_RESPONSE",
    "Client",
    "ErrorCallback",
    "MessageTooLargeError",
]

Sink = Callable[[str, str], Any]
When = Optional[Union[_dt.datetime, str]]
Uuid = Optional[Union[str, _uuid.UUID]]


class Client:
    """PostHog's server-side client: ``capture``, ``identify``, ``alias``, ``page``, ...

    ``Client(api_key)`` sends to PostHog's US cloud; ``host=`` (alias
    ``api_host=``) names a self-hosted instance or a proxy, ``region="eu"``
    (or ``host="eu"``) the EU cloud.  Messages are queued and sent in the
    background in batches; ``flush()`` waits for them, ``shutdown()`` sends
    what is left and stops.  ``sink=`` replaces the default delivery with any
    sink (then ``host``/``region`` belong to the consumer you pass).

    ``on_error`` hears about every delivery failure (see the module
    docstring).  ``default(value)`` converts values the JSON encoder does
    not know.  ``disable_geoip`` (default True, as posthog-python) adds
    ``"$geoip_disable": true`` to every message; each call can say otherwise.
    ``historical_migration=True`` marks the default consumer's batches as an
    import of past events.  ``processors=[...]`` and ``context(...)`` shape
    messages as the Mixpanel ``Tracker``'s do (type ``"posthog"``).
    ``disabled=True`` (or posthog-python's ``send=False``) builds and checks
    every message but sends nothing and starts no thread.
    ``consumer_options`` go to the default ``PostHogConsumer`` (``retry=``,
    ``timeout=``, ``gzip=``, ...), ``background_options`` to its
    ``BackgroundConsumer`` (``max_queue=``, ``flush_interval=``,
    ``overflow=``, ``spool=``, ...).
    """

    def __init__(
        self,
        api_key: str,
        host: Optional[str] = None,
        *,
        api_host: Optional[str] = None,
        region: Optional[str] = None,
        on_error: Optional[ErrorCallback] = None,
        sink: Optional[Union[Sink, Any]] = None,
        default: Optional[_json.Default] = None,
        disable_geoip: bool = True,
        historical_migration: bool = False,
        processors: Optional[Iterable[Processor]] = None,
        disabled: bool = False,
        send: bool = True,
        consumer_options: Optional[Mapping[str, Any]] = None,
        background_options: Optional[Mapping[str, Any]] = None,
    ) -> None:
        self._api_key = _values.api_key(api_key)
        if host is not None and api_host is not None:
            raise InvalidInputError("give host= or api_host= (the same thing), not both")
        host = host if host is not None else api_host
        self._default = default
        self._geoip_disable = bool(disable_geoip)
        self._pipeline = Pipeline(processors, default)
        options = dict(consumer_options or {})
        if sink is not None:
            if host is not None or region is not None:
                raise InvalidInputError(
                    "host= and region= configure the default consumer; with a sink, give "
                    "them to the consumer you pass"
                )
            if consumer_options or background_options or historical_migration:
                raise InvalidInputError(
                    "consumer_options=, background_options= and historical_migration= "
                    "configure the default consumer; with a sink, configure the consumer "
                    "you pass (PostHogConsumer(..., historical_migration=True))"
                )
        elif historical_migration:
            options.setdefault("historical_migration", True)
        self._delivery = Delivery(
            self._api_key, self._pipeline, ErrorReporter(on_error), sink=sink,
            disabled=bool(disabled) or not send, host=host, region=region,
            consumer_options=options, background_options=dict(background_options or {}),
        )
        self._deliver = self._delivery.deliver

    def __repr__(self) -> str:
        return f"Client(api_key={self._api_key!r}, sink={self._delivery.sink!r})"

    # -- context, counts ---------------------------------------------------

    def context(self, distinct_id: Any = None, **properties: Any) -> Binding:
        """A ``with`` block whose messages carry ``properties``; ``None`` ids mean ``distinct_id``.

        See :mod:`tracker.context`; bound to the current thread or asyncio task.
        """
        return self._pipeline.bind(distinct_id, properties)

    def stats(self) -> dict[str, int]:
        """Counts of messages not sent: ``dropped`` by a processor, ``disabled``, ``failed``."""
        return self._pipeline.stats()

    # -- arguments --------------------------------------------------------

    def _properties(self, properties: Optional[Mapping[str, Any]],
                    where: str = "properties") -> dict[str, Any]:
        plain = _props.plain_copy(properties)  # the common case: nothing to convert
        if plain is not None:
            return plain
        return _json.normalize_properties(properties, where, default=self._default)

    def _distinct_id(self, distinct_id: Any) -> str:
        if distinct_id is None:
            distinct_id = self._pipeline.context_distinct_id()
        return _validation.check_distinct_id(distinct_id)

    def _geoip(self, disable_geoip: Optional[bool]) -> bool:
        return self._geoip_disable if disable_geoip is None else bool(disable_geoip)

    # -- calls ------------------------------------------------------------

    @overload
    def capture(self, message: Mapping[str, Any], /) -> bool: ...

    @overload
    def capture(
        self,
        distinct_id: Any,
        event: str,
        properties: Optional[Mapping[str, Any]] = None,
        timestamp: When = None,
        uuid: Uuid = None,
        groups: Optional[Mapping[str, Any]] = None,
        *,
        disable_geoip: Optional[bool] = None,
    ) -> bool: ...

    def capture(
        self,
        distinct_id: Any,
        event: Optional[str] = None,
        properties: Optional[Mapping[str, Any]] = None,
        timestamp: When = None,
        uuid: Uuid = None,
        groups: Optional[Mapping[str, Any]] = None,
        *,
        disable_geoip: Optional[bool] = None,
    ) -> bool:
        """Record that ``distinct_id`` did ``event``; ``properties`` describe it.

        ``timestamp``: when it happened (datetime or ISO-8601 str; naive means
        UTC; default now).  ``uuid``: the event's id (default a new uuid4);
        PostHog drops a second event with the same one.  ``groups``
        (``{"company": "acme"}``) is sent as the ``$groups`` property.
        ``disable_geoip`` overrides the client's setting for this event.
        ``distinct_id`` may be ``None`` inside a ``context(distinct_id=...)``.
        Returns False when delivery failed (reported to ``on_error``).

        The Ruby client's one-dict form works too:
        ``capture({"distinct_id": ..., "event": ..., "properties": {...}})``.
        """
        if event is None and isinstance(distinct_id, Mapping):
            return self.capture(**_hash_calls.keywords(
                "capture", distinct_id, properties, timestamp, uuid, groups, disable_geoip))
        did = self._distinct_id(distinct_id)
        name = _validation.check_event_name(event)
        props = self._properties(properties)
        started = self._pipeline.shaping
        if started:  # super properties and context, below the call's own
            props = self._pipeline.start(props)
        message = _messages.capture_message(
            did, name, props, None if groups is None else _values.groups(groups),
            _values.timestamp_text(timestamp), _values.uuid_text(uuid), self._geoip(disable_geoip),
        )
        return self._deliver(message, "capture", started)

    def identify(
        self,
        distinct_id: Any,
        properties: Optional[Mapping[str, Any]] = None,
        timestamp: When = None,
        uuid: Uuid = None,
        *,
        disable_geoip: Optional[bool] = None,
    ) -> bool:
        """Set person properties on ``distinct_id`` (an ``$identify`` event with ``$set``).

        The Ruby form ``identify({"distinct_id": ..., "properties": {...}})`` works too.
        """
        if type(distinct_id) is not str and isinstance(distinct_id, Mapping):
            return self.identify(**_hash_calls.keywords(
                "identify", distinct_id, properties, timestamp, uuid, disable_geoip))
        did = self._distinct_id(distinct_id)
        message = _messages.identify_message(
            did, self._properties(properties), _values.timestamp_text(timestamp),
            _values.uuid_text(uuid), self._geoip(disable_geoip),
        )
        return self._deliver(message, "identify")

    def set(
        self,
        distinct_id: Any,
        properties: Mapping[str, Any],
        timestamp: When = None,
        uuid: Uuid = None,
        *,
        disable_geoip: Optional[bool] = None,
    ) -> bool:
        """Set person properties on ``distinct_id`` (a ``$set`` event), replacing earlier values."""
        return self._person("$set", distinct_id, properties, timestamp, uuid, disable_geoip)

    def set_once(
        self,
        distinct_id: Any,
        properties: Mapping[str, Any],
        timestamp: When = None,
        uuid: Uuid = None,
        *,
        disable_geoip: Optional[bool] = None,
    ) -> bool:
        """Set person properties only where not set yet (a ``$set_once`` event)."""
        return self._person("$set_once", distinct_id, properties, timestamp, uuid, disable_geoip)

    def _person(self, operation: str, distinct_id: Any, properties: Any, timestamp: When,
                uuid: Uuid, disable_geoip: Optional[bool]) -> bool:
        did = self._distinct_id(distinct_id)
        person = self._properties(properties)
        if not person:
            raise InvalidInputError(f"{operation[1:]}(): properties must hold at least one "
                                    "property (an empty update changes nothing)")
        message = _messages.person_message(
            operation, did, person, _values.timestamp_text(timestamp), _values.uuid_text(uuid),
            self._geoip(disable_geoip),
        )
        return self._deliver(message, operation[1:])

    def group_identify(
        self,
        group_type: str,
        group_key: Any,
        properties: Optional[Mapping[str, Any]] = None,
        timestamp: When = None,
        uuid: Uuid = None,
        *,
        distinct_id: Any = None,
        disable_geoip: Optional[bool] = None,
    ) -> bool:
        """Set ``properties`` on the group ``group_key`` of ``group_type`` (``$groupidentify``).

        The event's ``distinct_id`` is ``distinct_id`` when given (the user
        who made the change), else ``$<group_type>_<group_key>``.  Events join
        the group through ``capture(..., groups={group_type: group_key})``.
        """
        kind, key = _values.group_pair(group_type, group_key)
        did = None if distinct_id is None else _validation.check_distinct_id(distinct_id)
        message = _messages.group_identify_message(
            kind, key, self._properties(properties), did, _values.timestamp_text(timestamp),
            _values.uuid_text(uuid), self._geoip(disable_geoip),
        )
        return self._deliver(message, "group_identify")

    @overload
    def alias(self, message: Mapping[str, Any], /) -> bool: ...

    @overload
    def alias(
        self,
        distinct_id: Any,
        alias: Any,
        timestamp: When = None,
        uuid: Uuid = None,
        *,
        disable_geoip: Optional[bool] = None,
    ) -> bool: ...

    def alias(
        self,
        distinct_id: Any,
        alias: Any = None,
        timestamp: When = None,
        uuid: Uuid = None,
        *,
        disable_geoip: Optional[bool] = None,
    ) -> bool:
        """Make ``alias`` another id of the person ``distinct_id`` (``$create_alias``).

        Use it when an anonymous visitor (``alias``, e.g. a session id) signs up
        as ``distinct_id``, so what they did before counts as theirs.  The Ruby
        form ``alias({"distinct_id": ..., "alias": ...})`` works too.
        """
        if alias is None and isinstance(distinct_id, Mapping):
            return self.alias(**_hash_calls.keywords(
                "alias", distinct_id, timestamp, uuid, disable_geoip))
        did = _validation.check_distinct_id(distinct_id)
        other = _validation.check_distinct_id(alias, "alias")
        if other == did:
            raise InvalidInputError(f"distinct_id and alias are both {did!r}")
        message = _messages.alias_message(
            did, other, _values.timestamp_text(timestamp), _values.uuid_text(uuid),
            self._geoip(disable_geoip),
        )
        return self._deliver(message, "alias")

    def page(
        self,
        distinct_id: Any,
        url: str,
        properties: Optional[Mapping[str, Any]] = None,
        timestamp: When = None,
        uuid: Uuid = None,
        groups: Optional[Mapping[str, Any]] = None,
        *,
        disable_geoip: Optional[bool] = None,
    ) -> bool:
        """Record a page view: a ``$pageview`` capture with ``$current_url`` set to ``url``."""
        page_url = _validation.check_name(url, "url")
        props = self._properties(properties)
        props["$current_url"] = page_url
        return self.capture(distinct_id, "$pageview", props, timestamp, uuid, groups,
                            disable_geoip=disable_geoip)

    # -- lifecycle --------------------------------------------------------

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until everything captured so far is delivered (or reported failed).

        Returns False when ``timeout`` seconds passed first.  A sink without
        ``flush`` has nothing to wait for.
        """
        return self._delivery.flush(timeout)

    def shutdown(self, timeout: Optional[float] = None) -> None:
        """Send what is queued and stop (the client's own consumer is closed).

        A sink that was passed in is flushed, not closed: it belongs to the caller.
        """
        self._delivery.shutdown(timeout)

    close = shutdown

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
