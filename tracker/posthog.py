"""PostHog: build ``/batch/`` messages and hand them to a sink, as the Ruby ``PostHog::Client``.

``Client(api_key)`` queues every message in a ``BackgroundConsumer`` that
delivers through a ``PostHogConsumer`` (US cloud unless ``host=``/``region=``),
so ``capture()`` never waits on the network.  ``Client(api_key, sink=...)``
hands each message, as ``("posthog", message_json)``, to any sink instead: a
callable, a ``FileConsumer`` for log-then-replay, or a ``PostHogConsumer``.

Messages are exactly what PostHog's ``/batch/`` endpoint takes as one element
of ``batch``: ``type``, ``event``, ``distinct_id``, ``properties`` (with
``$lib`` and ``$lib_version``), ``timestamp`` (ISO-8601, UTC) and ``uuid``.
The ``uuid`` is fixed when the call is made, so a batch that is sent again
after a lost answer is deduplicated by the service.  The ``api_key`` is the
project key: public, it travels in the batch body, never in the messages.

Errors, as in the Ruby library:

* Bad input (empty ``distinct_id``, NaN in ``properties``, a message over
  32 KB of JSON, ...) raises :class:`~tracker.errors.InvalidInputError` at
  the call site; nothing is sent.
* Delivery failures go to ``on_error(status, message)`` and never raise.
  ``status`` is the HTTP status of the refusal (400, 401, 503, ...), or
  :data:`NO_RESPONSE` (``-1``) when no HTTP answer came (connection refused,
  timeout) or the message was dropped before sending (queue full, client
  shut down).  ``message`` says what failed.  The default handler logs
  through ``logging`` (logger ``tracker.posthog``): ERROR when messages are
  lost, WARNING when a batch is kept through an outage to be sent again
  (once per batch); see ``docs/logging.md``.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
import threading
import uuid as _uuid
from collections.abc import Mapping
from typing import Any, Callable, Optional, Union, overload

from tracker import _hash_calls, _json, _validation
from tracker._ids import new_uuid
from tracker._version import __version__
from tracker.errors import InvalidInputError, InvalidTypeError
from tracker.tracker import _is_delivery_error, _sink_callable

__all__ = [
    "LIB_NAME",
    "MAX_MESSAGE_BYTES",
    "NO_RESPONSE",
    "Client",
    "ErrorCallback",
    "MessageTooLargeError",
]

logger = logging.getLogger("tracker.posthog")

#: ``$lib`` on every message.
LIB_NAME = "tracking-toolkit-python"
#: The largest message (JSON, UTF-8 bytes) PostHog's ingestion takes; the consumer has the same.
MAX_MESSAGE_BYTES = 32 * 1024
#: ``status`` given to ``on_error`` when there was no HTTP answer (the Ruby library's value).
NO_RESPONSE = -1

#: ``on_error(status, message)``
ErrorCallback = Callable[[int, str], Any]
Sink = Callable[[str, str], Any]

_TYPE = "posthog"
_UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_UTC = _dt.timezone.utc
# Python < 3.11 parses only 3 or 6 fraction digits ("12:30:15.25" fails there).
_FRACTION = re.compile(r"(?<=:\d\d\.)(\d{1,5})(?!\d)")


class MessageTooLargeError(InvalidInputError):
    """A message's JSON is larger than PostHog accepts; it was not sent.

    ``size`` is its size in bytes (UTF-8), ``limit`` the largest size accepted.
    """

    def __init__(self, message: str, *, size: int, limit: int) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit


def _status_of(error: BaseException) -> int:
    status = getattr(error, "status", None)
    return status if isinstance(status, int) else NO_RESPONSE


def _is_transient(error: BaseException) -> bool:
    """An outage the background queue keeps messages through (the same rule it uses)."""
    if not _is_delivery_error(error):
        return False
    status = getattr(error, "status", None)
    if not isinstance(status, int):
        return True  # no HTTP answer
    return status == 429 or status >= 500


def _describe(error: BaseException, count: int, what: str) -> str:
    return f"{count} PostHog message(s) {what}: {type(error).__name__}: {error}"


def _check_api_key(api_key: Any) -> str:
    if not isinstance(api_key, str):
        raise InvalidTypeError(f"api_key must be a str, got {type(api_key).__name__}")
    if not api_key.strip():
        raise InvalidInputError("api_key must not be empty")
    return api_key


def _timestamp_text(value: Any) -> str:
    """ISO-8601 in UTC with microseconds: ``2024-05-01T12:00:00.000000+00:00``."""
    if value is None:
        return _dt.datetime.now(_UTC).isoformat(timespec="microseconds")
    if isinstance(value, str):
        text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
        text = _FRACTION.sub(lambda digits: digits[1].ljust(6, "0"), text)
        try:
            value = _dt.datetime.fromisoformat(text)
        except ValueError:
            raise InvalidInputError(
                f"timestamp {value!r:.60} is not an ISO-8601 date and time"
            ) from None
    elif not isinstance(value, _dt.datetime):
        raise InvalidTypeError(
            f"timestamp must be a datetime or an ISO-8601 str, got {type(value).__name__}"
        )
    when: _dt.datetime = value
    if when.tzinfo is None or when.utcoffset() is None:
        when = when.replace(tzinfo=_UTC)  # naive: taken to be UTC, as everywhere else
    return when.astimezone(_UTC).isoformat(timespec="microseconds")


def _uuid_text(value: Any) -> str:
    if value is None:
        return new_uuid()
    if isinstance(value, _uuid.UUID):
        return str(value)
    if isinstance(value, str) and _UUID_TEXT.fullmatch(value):
        return value.lower()
    raise InvalidInputError(f"uuid must be a UUID (or its canonical text), got {value!r:.60}")


def _groups(groups: Any) -> dict[str, str]:
    if not isinstance(groups, Mapping):
        raise InvalidTypeError(
            f"groups must be a dict of group type to group key, got {type(groups).__name__}"
        )
    return {
        _validation.check_name(kind, "groups key"): _validation.check_group_id(
            key, f"groups[{kind!r}]"
        )
        for kind, key in groups.items()
    }


class _ReportOutages:
    """Wraps the default PostHogConsumer: reports a batch that ran out of retries.

    The background queue keeps such a batch (on disk) and sends it again when
    the host answers, so it is not lost; ``on_error`` still hears about it
    once per failed batch, with the last status, as the Ruby client reports
    its final failure: the probes and the shutdown that fail on the same
    messages again during one outage are not reported again.  Refusals are
    reported by the queue's own callback.
    """

    #: hashes of messages already reported in this outage; beyond this many, start again
    _MAX_TOLD = 100_000

    def __init__(self, inner: Any, report: Callable[..., None]) -> None:
        self._inner = inner
        self._report = report
        self.max_batch: int = inner.max_batch
        self._told: set[int] = set()

    def _outage(self, error: BaseException, messages: Any) -> None:
        if not _is_transient(error):
            return
        if len(self._told) > self._MAX_TOLD:
            self._told.clear()
        if messages:
            fresh = {hash(m) for m in messages} - self._told
            count = len(fresh)
        else:  # no batch named: at most once per outage
            fresh = {0}
            count = 0 if 0 in self._told else max(1, self.pending())
        if count:
            self._told |= fresh
            self._report(error, count, "not delivered after the retry budget; kept to send again",
                         kept=True)

    def send(self, message_type: str, message_json: str) -> None:
        try:
            self._inner.send(message_type, message_json)
        except Exception as error:
            messages = getattr(error, "messages", None) or [(message_type, message_json)]
            self._outage(error, messages)
            raise

    __call__ = send

    def flush(self) -> None:
        try:
            self._inner.flush()
        except Exception as error:
            self._outage(error, getattr(error, "messages", None))
            raise
        self._told.clear()  # delivered: the outage is over

    def pending(self) -> int:
        return int(self._inner.pending())

    def take_pending(self) -> list[tuple[str, str]]:
        return list(self._inner.take_pending())

    def close(self) -> None:
        self._inner.close()

    def __repr__(self) -> str:
        return repr(self._inner)


class Client:
    """PostHog's server-side client: ``capture``, ``identify``, ``alias``, ``page``.

    ``Client(api_key)`` sends to PostHog's US cloud; ``host=`` (alias
    ``api_host=``) names a self-hosted instance or a proxy, ``region="eu"``
    (or ``host="eu"``) the EU cloud.  Messages are queued and sent in the
    background in batches; ``flush()`` waits for them, ``shutdown()`` sends
    what is left and stops.  ``sink=`` replaces the default delivery with any
    sink (then ``host``/``region`` belong to the consumer you pass).

    ``on_error(status, message)`` hears about every delivery failure (see the
    module docstring).  ``default(value)`` converts values the JSON encoder
    does not know.  ``consumer_options`` go to the default ``PostHogConsumer``
    (``retry=``, ``timeout=``, ``gzip=``, ...), ``background_options`` to its
    ``BackgroundConsumer`` (``max_queue=``, ``flush_interval=``, ``overflow=``,
    ``spool=``, ...).
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
        consumer_options: Optional[Mapping[str, Any]] = None,
        background_options: Optional[Mapping[str, Any]] = None,
    ) -> None:
        self._api_key = _check_api_key(api_key)
        if host is not None and api_host is not None:
            raise InvalidInputError("give host= or api_host= (the same thing), not both")
        host = host if host is not None else api_host
        if on_error is not None and not callable(on_error):
            raise InvalidTypeError("on_error must be a callable (status, message)")
        self._on_error: Optional[ErrorCallback] = on_error  # None: log it
        self._default = default
        self._owned: Any = None
        self._lock = threading.Lock()
        self._closed = False

        if sink is None:
            self._owned = self._default_sink(
                host, region, dict(consumer_options or {}), dict(background_options or {})
            )
            self._sink_obj: Any = self._owned
        else:
            if host is not None or region is not None:
                raise InvalidInputError(
                    "host= and region= configure the default consumer; with a sink, give "
                    "them to the consumer you pass"
                )
            if consumer_options or background_options:
                raise InvalidInputError(
                    "consumer_options= and background_options= configure the default "
                    "consumer; with a sink, configure the consumer you pass"
                )
            self._sink_obj = sink
        self._send: Sink = _sink_callable(self._sink_obj, "sink")

    def _default_sink(
        self,
        host: Optional[str],
        region: Optional[str],
        consumer_options: dict[str, Any],
        background_options: dict[str, Any],
    ) -> Any:
        # the only place the client touches IO
        from consumers.background import BackgroundConsumer
        from consumers.posthog import PostHogConsumer

        inner = PostHogConsumer(self._api_key, host, region=region, **consumer_options)
        background_options.setdefault("on_error", self._background_failed)
        return BackgroundConsumer(_ReportOutages(inner, self._report), **background_options)

    def __repr__(self) -> str:
        return f"Client(api_key={self._api_key!r}, sink={self._sink_obj!r})"

    # -- errors -----------------------------------------------------------

    def _report(self, error: BaseException, count: int, what: str, *, kept: bool = False) -> None:
        """Tell ``on_error``; by default log: ERROR when lost, WARNING when ``kept`` to resend."""
        status, text = _status_of(error), _describe(error, count, what)
        if self._on_error is None:
            logger.log(logging.WARNING if kept else logging.ERROR,
                       "delivery failed (status %s): %s", status, text)
            return
        try:
            self._on_error(status, text)
        except Exception:  # a broken handler must not break delivery
            logger.exception("on_error raised")

    def _background_failed(self, error: BaseException, messages: list[tuple[str, str]]) -> None:
        self._report(error, len(messages), "not delivered")

    # -- delivery ---------------------------------------------------------

    def _deliver(self, message: dict[str, Any], where: str) -> bool:
        message_json = _json.dumps(message)
        size = len(message_json)
        if size * 4 > MAX_MESSAGE_BYTES:  # cheap: a character is at most 4 bytes
            size = len(message_json.encode("utf-8"))
            if size > MAX_MESSAGE_BYTES:
                raise MessageTooLargeError(
                    f"{where}: the message is {size} bytes of JSON; PostHog accepts at most "
                    f"{MAX_MESSAGE_BYTES} bytes per message; nothing was sent",
                    size=size,
                    limit=MAX_MESSAGE_BYTES,
                )
        try:
            self._send(_TYPE, message_json)
        except Exception as error:
            if not _is_delivery_error(error):
                raise
            self._report(error, len(getattr(error, "messages", ())) or 1, "not delivered")
            return False
        return True

    def _properties(self, properties: Optional[Mapping[str, Any]]) -> dict[str, Any]:
        return _json.normalize_properties(properties, default=self._default)

    @staticmethod
    def _stamp(props: dict[str, Any]) -> dict[str, Any]:
        props["$lib"] = LIB_NAME
        props["$lib_version"] = __version__
        return props

    # -- calls ------------------------------------------------------------

    @overload
    def capture(self, message: Mapping[str, Any], /) -> bool: ...

    @overload
    def capture(
        self,
        distinct_id: Any,
        event: str,
        properties: Optional[Mapping[str, Any]] = None,
        timestamp: Optional[Union[_dt.datetime, str]] = None,
        uuid: Optional[Union[str, _uuid.UUID]] = None,
        groups: Optional[Mapping[str, Any]] = None,
    ) -> bool: ...

    def capture(
        self,
        distinct_id: Any,
        event: Optional[str] = None,
        properties: Optional[Mapping[str, Any]] = None,
        timestamp: Optional[Union[_dt.datetime, str]] = None,
        uuid: Optional[Union[str, _uuid.UUID]] = None,
        groups: Optional[Mapping[str, Any]] = None,
    ) -> bool:
        """Record that ``distinct_id`` did ``event``; ``properties`` describe it.

        ``timestamp``: when it happened (datetime or ISO-8601 str; naive means
        UTC; default now).  ``uuid``: the event's id (default a new uuid4);
        PostHog drops a second event with the same one.  ``groups``
        (``{"company": "acme"}``) is sent as the ``$groups`` property.
        Returns False when delivery failed (reported to ``on_error``).

        The Ruby client's one-dict form works too:
        ``capture({"distinct_id": ..., "event": ..., "properties": {...}})``.
        """
        if event is None and isinstance(distinct_id, Mapping):
            return self.capture(**_hash_calls.keywords(
                "capture", distinct_id, properties, timestamp, uuid, groups))
        did = _validation.check_distinct_id(distinct_id)
        name = _validation.check_event_name(event)
        props = self._properties(properties)
        if groups is not None:
            props["$groups"] = _groups(groups)
        message = {
            "type": "capture",
            "event": name,
            "distinct_id": did,
            "properties": self._stamp(props),
            "timestamp": _timestamp_text(timestamp),
            "uuid": _uuid_text(uuid),
        }
        return self._deliver(message, "capture")

    def identify(
        self,
        distinct_id: Any,
        properties: Optional[Mapping[str, Any]] = None,
        timestamp: Optional[Union[_dt.datetime, str]] = None,
        uuid: Optional[Union[str, _uuid.UUID]] = None,
    ) -> bool:
        """Set person properties on ``distinct_id`` (an ``$identify`` event with ``$set``).

        ``$set`` is sent both at the top of the message and inside
        ``properties``, where PostHog's ingestion looks for it.  The Ruby
        form ``identify({"distinct_id": ..., "properties": {...}})`` works too.
        """
        if type(distinct_id) is not str and isinstance(distinct_id, Mapping):
            return self.identify(**_hash_calls.keywords(
                "identify", distinct_id, properties, timestamp, uuid))
        did = _validation.check_distinct_id(distinct_id)
        person = self._properties(properties)
        message = {
            "type": "identify",
            "event": "$identify",
            "distinct_id": did,
            "$set": person,
            "properties": self._stamp({"$set": person}),
            "timestamp": _timestamp_text(timestamp),
            "uuid": _uuid_text(uuid),
        }
        return self._deliver(message, "identify")

    @overload
    def alias(self, message: Mapping[str, Any], /) -> bool: ...

    @overload
    def alias(
        self,
        distinct_id: Any,
        alias: Any,
        timestamp: Optional[Union[_dt.datetime, str]] = None,
        uuid: Optional[Union[str, _uuid.UUID]] = None,
    ) -> bool: ...

    def alias(
        self,
        distinct_id: Any,
        alias: Any = None,
        timestamp: Optional[Union[_dt.datetime, str]] = None,
        uuid: Optional[Union[str, _uuid.UUID]] = None,
    ) -> bool:
        """Make ``alias`` another id of the person ``distinct_id`` (``$create_alias``).

        Use it when an anonymous visitor (``alias``, e.g. a session id) signs up
        as ``distinct_id``, so what they did before counts as theirs.  The Ruby
        form ``alias({"distinct_id": ..., "alias": ...})`` works too.
        """
        if alias is None and isinstance(distinct_id, Mapping):
            return self.alias(**_hash_calls.keywords("alias", distinct_id, timestamp, uuid))
        did = _validation.check_distinct_id(distinct_id)
        other = _validation.check_distinct_id(alias, "alias")
        if other == did:
            raise InvalidInputError(f"distinct_id and alias are both {did!r}")
        message = {
            "type": "alias",
            "event": "$create_alias",
            "distinct_id": did,
            "properties": self._stamp({"distinct_id": did, "alias": other}),
            "timestamp": _timestamp_text(timestamp),
            "uuid": _uuid_text(uuid),
        }
        return self._deliver(message, "alias")

    def page(
        self,
        distinct_id: Any,
        url: str,
        properties: Optional[Mapping[str, Any]] = None,
        timestamp: Optional[Union[_dt.datetime, str]] = None,
        uuid: Optional[Union[str, _uuid.UUID]] = None,
    ) -> bool:
        """Record a page view: a ``$pageview`` capture with ``$current_url`` set to ``url``."""
        page_url = _validation.check_name(url, "url")
        props = self._properties(properties)
        props["$current_url"] = page_url
        return self.capture(distinct_id, "$pageview", props, timestamp, uuid)

    # -- lifecycle --------------------------------------------------------

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until everything captured so far is delivered (or reported failed).

        Returns False when ``timeout`` seconds passed first.  A sink without
        ``flush`` has nothing to wait for.
        """
        flush = getattr(self._sink_obj, "flush", None)
        if not callable(flush):
            return True
        try:
            result = flush(timeout) if self._owned is not None else flush()
        except Exception as error:
            if not _is_delivery_error(error):
                raise
            self._report(error, len(getattr(error, "messages", ())) or 1, "not delivered")
            return False
        return result is not False

    def shutdown(self, timeout: Optional[float] = None) -> None:
        """Send what is queued and stop (the client's own consumer is closed).

        A sink that was passed in is flushed, not closed: it belongs to the caller.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._owned is not None:
            self._owned.close(timeout)
        else:
            self.flush()

    close = shutdown

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
