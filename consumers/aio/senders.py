"""What the asyncio consumer posts through: one sender per service, on :mod:`consumers._protocol`.

A sender knows its service's limits and answers and posts one batch of one
type at a time, raising the delivery errors; the
:class:`~consumers.aio.AsyncBackgroundConsumer` decides when, and what a
failure means (the sender's ``rule``).

* :class:`AsyncConsumer`: Mixpanel's /track, /engage, /groups and /import,
  configured as :class:`~consumers.consumer.Consumer` is (``region=``,
  ``api_host=``, ``endpoints=``, the per-type URLs, /import credentials);
* :class:`AsyncPostHogSender`: PostHog's ``/batch/``, configured as
  :class:`~consumers.posthog.PostHogConsumer` is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional, Union

import httpx

from consumers._limits import BULK_BATCH, DEFAULT_MAX_BYTES, MAX_MESSAGE_BYTES, Limit
from consumers._limits import per_type as _per_type
from consumers._protocol.answers import batch_failure, status_answer
from consumers._protocol.batches import Rule, mixpanel_rule, posthog_rule
from consumers.aio._encode import encoded
from consumers.aio._transport import AsyncHttpTransport
from consumers.aio._turns import heavy_step
from consumers.consumer import _GZIP_LEVEL as IMPORT_GZIP_LEVEL
from consumers.consumer import MAX_BATCH, Consumer
from consumers.endpoints import MESSAGE_TYPES, Endpoints
from consumers.errors import DeliveryError, PayloadTooLargeError
from consumers.posthog import (
    GZIP_LEVEL,
    MAX_BATCH_BYTES,
    _default_retry,
    _utf8_len,
    batch_head,
    posthog_batch_url,
)
from consumers.posthog import MAX_BATCH as POSTHOG_MAX_BATCH
from consumers.posthog import MAX_MESSAGE_BYTES as POSTHOG_MAX_MESSAGE_BYTES
from consumers.retry import RetryPolicy

__all__ = ["AsyncConsumer", "AsyncPostHogSender"]

Timeout = Union[float, tuple[float, float]]


class AsyncConsumer:
    """Posts batches to Mixpanel on the running event loop.

    Destination and /import credentials are given as to
    :class:`~consumers.consumer.Consumer` (every keyword it takes but
    ``session`` and ``transport``); ``retry``, ``timeout`` and ``verify``
    configure the :class:`AsyncHttpTransport`, ``client`` is an
    ``httpx.AsyncClient`` to post with.  ``max_batch`` (default 1000) and
    ``max_bytes`` limit each request, per type as for
    :class:`~consumers.buffered.BufferedConsumer`.
    """

    rule: Rule = staticmethod(mixpanel_rule)

    def __init__(
        self,
        *,
        retry: Optional[RetryPolicy] = None,
        timeout: Optional[Timeout] = None,
        verify: Union[bool, str] = True,
        client: Optional[httpx.AsyncClient] = None,
        max_batch: Optional[Limit] = None,
        max_bytes: Optional[Limit] = None,
        **destination: Any,
    ) -> None:
        for name in ("session", "transport"):
            if name in destination:
                raise TypeError(f"AsyncConsumer takes client=, not {name}=")
        # the same configuration rules as Consumer (regions, Ruby URLs, credentials)
        self._config = Consumer(**destination)
        self.transport = AsyncHttpTransport(
            retry=RetryPolicy() if retry is None else retry,
            timeout=self._config.transport.timeout if timeout is None else timeout,
            verify=verify, client=client)
        self._max_batch = _per_type("max_batch", BULK_BATCH if max_batch is None else max_batch,
                                    dict.fromkeys(MESSAGE_TYPES, BULK_BATCH))
        too_many = {t: n for t, n in self._max_batch.items() if n > MAX_BATCH}
        if too_many:
            raise ValueError(f"max_batch is at most {MAX_BATCH}, got {too_many}")
        self._max_bytes = _per_type(
            "max_bytes", DEFAULT_MAX_BYTES if max_bytes is None else max_bytes, DEFAULT_MAX_BYTES)
        self._size_limits: dict[str, int] = {}  # per type, once it passed check_sendable

    def __repr__(self) -> str:
        return (f"AsyncConsumer(endpoints={self.endpoints!r}, "
                f"import_auth={self._config.auth_kind!r}, retry={self.transport.retry!r})")

    @property
    def endpoints(self) -> Endpoints:
        """Where each type goes."""
        return self._config.endpoints

    def check(self, message_type: str, message_json: str) -> None:
        """Raise at once for what could never be sent (type, configuration, size)."""
        limit = self._size_limits.get(message_type)
        if limit is None:  # a type not seen yet: is it sendable with this configuration?
            self._config.check_sendable(message_type)
            limit = self._size_limits[message_type] = min(
                self._max_bytes[message_type] - 2, MAX_MESSAGE_BYTES)
        if len(message_json) > limit:
            raise PayloadTooLargeError(
                f"a {message_type} message of {len(message_json)} characters exceeds the "
                f"{limit}-byte limit; not sent", status=413,
                messages=[(message_type, message_json)])

    def limits(self, message_type: str) -> tuple[int, int]:
        """(messages, bytes) per request of ``message_type``."""
        return self._max_batch[message_type], self._max_bytes[message_type]

    async def send_batch(self, message_type: str, messages: Sequence[str]) -> None:
        """Post ``messages`` in one request; raises the delivery errors as ``Consumer`` does."""
        route = self._config.route(message_type)
        body = await encoded("[", messages, "]", IMPORT_GZIP_LEVEL if route.gzip else None)
        await heavy_step()  # the request's first write is another
        try:
            answer = await self.transport.post(
                route.url, body, route.headers, auth=route.auth, params=route.params)
            if not route.imports:
                refused = status_answer(answer.text, answer.status, answer.url)
                if refused is not None:
                    raise refused
        except DeliveryError as exc:
            raise batch_failure(route.imports, exc, message_type, messages) from None

    def end_retries_at(self, deadline: Optional[float]) -> None:
        """Start no retry that would end after ``deadline`` (``time.monotonic()``; None: lift)."""
        self.transport.end_retries_at(deadline)

    async def aclose(self) -> None:
        """Close the connections."""
        await self.transport.aclose()
        self._config.close()


class AsyncPostHogSender:
    """Posts batches to PostHog's ``/batch/`` on the running event loop.

    ``api_key``, ``host``/``region``, ``max_batch``, ``max_batch_bytes``,
    ``gzip``, ``retry``, ``timeout`` and ``historical_migration`` (every
    batch marked as an import of past events) mean what they mean for
    :class:`~consumers.posthog.PostHogConsumer`.
    """

    def __init__(
        self,
        api_key: str,
        host: Optional[str] = None,
        *,
        region: Optional[str] = None,
        max_batch: int = POSTHOG_MAX_BATCH,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        gzip: bool = True,
        retry: Optional[RetryPolicy] = None,
        timeout: Timeout = (5.0, 15.0),
        verify: Union[bool, str] = True,
        client: Optional[httpx.AsyncClient] = None,
        historical_migration: bool = False,
    ) -> None:
        if not isinstance(api_key, str) or not api_key.strip():
            raise ValueError("api_key must be a non-empty str (the project API key)")
        if not 1 <= max_batch <= POSTHOG_MAX_BATCH:
            raise ValueError(
                f"max_batch must be between 1 and {POSTHOG_MAX_BATCH}, got {max_batch!r}")
        self.url = posthog_batch_url(host, region=region)
        self.api_key = api_key
        self.historical_migration = bool(historical_migration)
        self._head = batch_head(api_key, self.historical_migration)
        room = max_batch_bytes - len(self._head.encode("utf-8")) - len("]}")
        if room < POSTHOG_MAX_MESSAGE_BYTES:
            raise ValueError(
                f"max_batch_bytes must leave room for one {POSTHOG_MAX_MESSAGE_BYTES}-byte "
                f"message, got {max_batch_bytes!r}")
        self._room = room + 1  # the batches' brackets count as one byte
        self.max_batch = max_batch
        self.gzip = gzip
        self.retry = retry if retry is not None else _default_retry()
        self.rule: Rule = posthog_rule(self.retry.retry_statuses)
        self.transport = AsyncHttpTransport(retry=self.retry, timeout=timeout, verify=verify,
                                            client=client)
        self._headers = {"Content-Type": "application/json"}
        if gzip:
            self._headers["Content-Encoding"] = "gzip"

    def __repr__(self) -> str:
        return (f"AsyncPostHogSender(url={self.url!r}, max_batch={self.max_batch}"
                + (", historical_migration=True" if self.historical_migration else "") + ")")

    @staticmethod
    def size(message: str) -> int:
        """UTF-8 bytes a message adds to a batch (with its comma)."""
        return _utf8_len(message) + 1

    def check(self, message_type: str, message_json: str) -> None:
        """Raise for another type than ``"posthog"`` and for a message over 32 KB."""
        if message_type != "posthog":
            raise ValueError(f"PostHog messages have type 'posthog', got {message_type!r}")
        size = _utf8_len(message_json)
        if size > POSTHOG_MAX_MESSAGE_BYTES:
            raise PayloadTooLargeError(
                f"PostHog message is {size} bytes of JSON; the service accepts at most "
                f"{POSTHOG_MAX_MESSAGE_BYTES} bytes per message; it was not sent",
                status=413, messages=[(message_type, message_json)])

    def limits(self, message_type: str) -> tuple[int, int]:
        """(messages, bytes) per request."""
        return self.max_batch, self._room

    async def send_batch(self, message_type: str, messages: Sequence[str]) -> None:
        """Post ``messages`` in one ``/batch/`` request; raises the delivery errors."""
        body = await encoded(self._head, messages, "]}", GZIP_LEVEL if self.gzip else None)
        await heavy_step()  # the request's first write is another
        try:
            await self.transport.post(self.url, body, self._headers)
        except DeliveryError as exc:
            exc.messages = [(message_type, m) for m in messages]
            raise

    def end_retries_at(self, deadline: Optional[float]) -> None:
        """Start no retry that would end after ``deadline`` (``time.monotonic()``; None: lift)."""
        self.transport.end_retries_at(deadline)

    async def aclose(self) -> None:
        """Close the connections."""
        await self.transport.aclose()
