"""``PostHogConsumer``: deliver ``("posthog", message_json)`` tuples to PostHog's ``/batch/``.

Messages are buffered and sent as ``{"api_key": K, "batch": [...]}``, the body
built by joining the message strings as they are (nothing is parsed again).
A request holds at most ``max_batch`` messages (100) and ``max_batch_bytes``
bytes (5 MiB, before gzip); one message may be at most
:data:`MAX_MESSAGE_BYTES` (900 KiB): posthog-python's limits, which it
raised from 32 KB / 500 KB because legitimate events were dropped (PostHog's
ingestion takes request bodies of up to 20 MiB).  Bodies are gzipped by
default and the connection is kept alive.  ``historical_migration=True``
marks every batch as an import of past events (``"historical_migration":
true`` in the body, as posthog-python sends it), which PostHog ingests apart
from live traffic.

Hosts: ``"https://us.i.posthog.com"`` by default, ``"eu"`` (or
``region="eu"``) for ``https://eu.i.posthog.com``, or any base URL
(self-hosted PostHog, a proxy, the local collector).

Failures follow :class:`~consumers.buffered.BufferedConsumer`:

* connection errors, timeouts, 408, 429 and 5xx are retried with backoff
  (``retry=``, honouring ``Retry-After``); when the budget runs out
  ``flush()`` raises (:class:`~consumers.errors.TransportError` or
  :class:`~consumers.errors.RefusedError`) and the batch stays buffered,
  with everything after it, for the next ``flush()``;
* any other refusal (400, 401, 413, ...) raises ``RefusedError`` carrying the
  refused batch in ``messages``; that batch is dropped from the buffer (it
  would be refused again), the messages after it stay buffered.

Either way ``error.messages`` is the batch that failed and ``error.pending``
the number of messages still buffered; batches sent before the failure count
as delivered and are never sent again.
"""

from __future__ import annotations

import gzip as _gzip
import json
import logging
import threading
from collections.abc import Sequence
from typing import Optional, Union

import requests

from consumers._closing import Closing
from consumers._fork import ForkAware
from consumers._http import HttpTransport
from consumers._protocol.batches import Decision, posthog_rule
from consumers.endpoints import redact_url
from consumers.errors import DeliveryError, Message, PayloadTooLargeError, RefusedError
from consumers.retry import RetryPolicy

__all__ = [
    "DEFAULT_HOST",
    "MAX_BATCH",
    "MAX_BATCH_BYTES",
    "MAX_MESSAGE_BYTES",
    "POSTHOG_REGIONS",
    "PostHogConsumer",
    "posthog_batch_url",
]

logger = logging.getLogger("consumers.posthog")

#: PostHog's cloud ingestion hosts.
POSTHOG_REGIONS = {
    "us": "https://us.i.posthog.com",
    "eu": "https://eu.i.posthog.com",
}
DEFAULT_HOST = POSTHOG_REGIONS["us"]
#: Limits of posthog-python: messages per request, bytes per request and per message.
MAX_BATCH = 100
MAX_BATCH_BYTES = 5 * 1024 * 1024
MAX_MESSAGE_BYTES = 900 * 1024

#: The statuses PostHog's clients retry: timeouts, rate limits and server errors.
POSTHOG_RETRY_STATUSES = frozenset({408, 429, *range(500, 600)})

_TYPE = "posthog"


def posthog_batch_url(host: Optional[str] = None, *, region: Optional[str] = None) -> str:
    """The ``/batch/`` URL for ``host`` (a base URL, or ``"us"``/``"eu"``) or ``region``."""
    if host is not None and region is not None:
        raise ValueError("give host= or region=, not both")
    name = region if region is not None else host
    if name is None:
        base = DEFAULT_HOST
    elif not isinstance(name, str):
        raise TypeError(f"host must be a str, got {type(name).__name__}")
    elif name.lower() in POSTHOG_REGIONS:
        base = POSTHOG_REGIONS[name.lower()]
    elif region is not None:
        raise ValueError(f"region must be one of {sorted(POSTHOG_REGIONS)}, got {region!r}")
    elif "://" not in name:
        raise ValueError(
            f"host must be 'us', 'eu' or a URL with a scheme (https://...), got {name!r}"
        )
    else:
        base = name.rstrip("/")
        if base.endswith("/batch"):
            base = base[: -len("/batch")]
    return base + "/batch/"


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _too_large(size: int, pending: int, message: Message) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"PostHog message is {size} bytes of JSON; the service accepts at most "
        f"{MAX_MESSAGE_BYTES} bytes per message; it was not sent",
        status=413,
        messages=[message],
        pending=pending,
    )


def batch_head(api_key: str, historical_migration: bool = False) -> str:
    """The start of every ``/batch/`` body for ``api_key``, up to the first message."""
    migration = '"historical_migration":true,' if historical_migration else ""
    return '{"api_key":' + json.dumps(api_key) + "," + migration + '"batch":['


#: gzip level of ``/batch/`` bodies.
GZIP_LEVEL = 6


def batch_body(head: str, messages: Sequence[str], gzip: bool) -> bytes:
    """The ``/batch/`` request body: ``head``, the messages as they are, gzipped if asked."""
    data = (head + ",".join(messages) + "]}").encode("utf-8")
    if gzip:
        return _gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)
    return data


def _default_retry() -> RetryPolicy:
    """PostHog's reference schedule: 408, 429 and 5xx retried, 100 ms growing to 10 s."""
    return RetryPolicy(retry_statuses=POSTHOG_RETRY_STATUSES)


class PostHogConsumer(Closing, ForkAware):
    """Buffer PostHog messages and post them in batches to ``<host>/batch/``.

    ``send("posthog", message_json)`` buffers (and sends a full batch at
    once); ``flush()`` sends everything buffered; ``close()`` flushes and
    releases the connection.  ``pending()`` / ``take_pending()`` tell and hand
    over what is still unsent, so a wrapping queue or spool can keep it.
    """

    def __init__(
        self,
        api_key: str,
        host: Optional[str] = None,
        *,
        region: Optional[str] = None,
        max_batch: int = MAX_BATCH,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        gzip: bool = True,
        retry: Optional[RetryPolicy] = None,
        timeout: Union[float, tuple[float, float]] = (5.0, 15.0),
        verify: bool = True,
        session: Optional[requests.Session] = None,
        historical_migration: bool = False,
    ) -> None:
        if not isinstance(api_key, str) or not api_key.strip():
            raise ValueError("api_key must be a non-empty str (the project API key)")
        if not 1 <= max_batch <= MAX_BATCH:
            raise ValueError(f"max_batch must be between 1 and {MAX_BATCH}, got {max_batch!r}")
        self.url = posthog_batch_url(host, region=region)
        self.api_key = api_key
        self.max_batch = max_batch
        self.historical_migration = bool(historical_migration)
        self._head = batch_head(api_key, self.historical_migration)
        overhead = len(self._head.encode("utf-8")) + len("]}")
        if max_batch_bytes < overhead + MAX_MESSAGE_BYTES:
            raise ValueError(
                f"max_batch_bytes must leave room for one {MAX_MESSAGE_BYTES}-byte message, "
                f"got {max_batch_bytes!r}"
            )
        self.max_batch_bytes = max_batch_bytes
        self._room = max_batch_bytes - overhead  # for messages and the commas between them
        self.gzip = gzip
        self.retry = retry if retry is not None else _default_retry()
        self._http = HttpTransport(retry=self.retry, timeout=timeout, verify=verify,
                                   session=session)
        self._headers = {"Content-Type": "application/json"}
        if gzip:
            self._headers["Content-Encoding"] = "gzip"
        # (message_json, its UTF-8 size); guarded by _lock, sent under _flush_lock
        self._buffer: list[tuple[str, int]] = []
        self._buffered_bytes = 0
        self._lock = threading.Lock()
        self._flush_lock = threading.RLock()
        self._closed = False
        self._watch_forks()

    def __repr__(self) -> str:
        return (f"PostHogConsumer(url={redact_url(self.url)!r}, max_batch={self.max_batch}, "
                f"max_batch_bytes={self.max_batch_bytes}, gzip={self.gzip}"
                + (", historical_migration=True" if self.historical_migration else "") + ")")

    # -- the sink ----------------------------------------------------------------

    def send(self, type: str, message_json: str) -> None:
        """Buffer one PostHog message; sends a batch when ``max_batch`` or the byte limit is met.

        Raises ``ValueError`` for another message type and
        :class:`~consumers.errors.PayloadTooLargeError` for a message over
        900 KiB (not buffered); a failed batch send raises the delivery errors
        described in the module docstring.
        """
        if type != _TYPE:
            raise ValueError(f"PostHogConsumer sends message type {_TYPE!r} only, got {type!r}")
        size = _utf8_len(message_json)
        with self._lock:
            if size > MAX_MESSAGE_BYTES:
                raise _too_large(size, len(self._buffer), (type, message_json))
            self._buffer.append((message_json, size))
            self._buffered_bytes += size + 1
            full = len(self._buffer) >= self.max_batch or self._buffered_bytes > self._room
        if full:
            self._send_full_batches()

    __call__ = send

    def pending(self) -> int:
        """How many messages are buffered, not yet delivered."""
        return len(self._buffer)

    def end_retries_at(self, deadline: Optional[float]) -> None:
        """Start no retry that would end after ``deadline`` (``time.monotonic()``; None: lift)."""
        self._http.end_retries_at(deadline)

    def take_pending(self) -> list[Message]:
        """Remove and return every buffered, unsent message (for a spool or a retry queue)."""
        with self._flush_lock, self._lock:
            taken = [(_TYPE, m) for m, _ in self._buffer]
            self._buffer = []
            self._buffered_bytes = 0
        return taken

    # -- delivery -----------------------------------------------------------------

    def _next_batch(self) -> list[tuple[str, int]]:
        """The longest run from the front of the buffer that fits one request."""
        with self._lock:
            used = 0
            end = 0
            for _, size in self._buffer:
                if end == self.max_batch or (end and used + size + 1 > self._room + 1):
                    break
                used += size + 1
                end += 1
            return self._buffer[:end]

    def _drop_front(self, count: int) -> None:
        with self._lock:
            removed = self._buffer[:count]
            del self._buffer[:count]
            self._buffered_bytes -= sum(size + 1 for _, size in removed)

    def _send_full_batches(self) -> None:
        with self._flush_lock:
            while len(self._buffer) >= self.max_batch or self._buffered_bytes > self._room:
                self._post(self._next_batch())

    def flush(self) -> None:
        """Send every buffered message, in batches; raises on the first batch that fails."""
        with self._flush_lock:
            while self._buffer:
                self._post(self._next_batch())

    def _body(self, batch: Sequence[tuple[str, int]]) -> bytes:
        return batch_body(self._head, [m for m, _ in batch], self.gzip)

    def _post(self, batch: list[tuple[str, int]]) -> None:
        try:
            self._http.post(self.url, self._body(batch), self._headers)
        except DeliveryError as error:
            self._failed(error, batch)
            raise
        self._drop_front(len(batch))

    def _failed(self, error: DeliveryError, batch: list[tuple[str, int]]) -> None:
        """Keep the batch for later (an outage) or drop it (a refusal); describe it on ``error``."""
        if posthog_rule(self.retry.retry_statuses)(error, len(batch)) is Decision.REPORT:
            assert isinstance(error, RefusedError)
            self._drop_front(len(batch))
            # DEBUG: the error raised next carries these messages; its handler reports them
            logger.debug("dropped %d message(s) refused with status %d: %.200s",
                         len(batch), error.status, error.body)
        error.messages = [(_TYPE, m) for m, _ in batch]
        error.pending = len(self._buffer)

    # -- lifecycle -----------------------------------------------------------------

    def _reset_in_child(self) -> None:
        """Start empty (the parent sends what it buffered), on new connections."""
        self._lock = threading.Lock()
        self._flush_lock = threading.RLock()
        self._buffer = []
        self._buffered_bytes = 0
        self._http.reset_after_fork()

    def close(self) -> None:
        """Flush, then release the connection (also when the flush raises)."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            self._http.close()

