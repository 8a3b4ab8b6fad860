"""A sink that queues ``(type, message_json)`` tuples on a Redis stream.

The producing side of the "worker process on another machine" pattern: the
web process appends each tuple to a stream with ``XADD`` (fields ``type`` and
``message``, the message string exactly as built), and one or more
:class:`~consumers.redis_worker.StreamWorker` processes read the stream in a
consumer group and deliver to Mixpanel::

    sink = RedisStreamSink("redis://localhost:6379/0", "tracking")
    tracker = Tracker(TOKEN, sink)

Nothing is dropped quietly.  When Redis cannot take a tuple the sink raises
:class:`~consumers.errors.TransportError` (a tracker hands it to its error
handler), or, when built with ``fallback=`` (for example a ``FileConsumer``
spool), writes the tuple there and logs a warning.

The ``redis`` package is an optional extra: ``pip install ".[redis]"``.
"""

from __future__ import annotations

import logging
import threading
import time
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Optional, Union
from urllib.parse import urlsplit, urlunsplit

from consumers._closing import Closing
from consumers._fork import ForkAware
from consumers.errors import DeliveryError, Message, TransportError

if TYPE_CHECKING:
    import redis

__all__ = ["RedisStreamSink", "StreamFullError"]

log = logging.getLogger(__name__)

#: A sink: any callable taking ``(type, message_json)``.
Sink = Callable[[str, str], Any]

# Appends entries only while the stream holds fewer than ARGV[1] entries, so a
# full queue refuses new work instead of trimming work nobody has delivered yet.
_BOUNDED_XADD = """
local room = tonumber(ARGV[1]) - redis.call('XLEN', KEYS[1])
local added = 0
for i = 2, #ARGV, 2 do
    if added >= room then break end
    redis.call('XADD', KEYS[1], '*', 'type', ARGV[i], 'message', ARGV[i + 1])
    added = added + 1
end
return added
"""


class StreamFullError(DeliveryError):
    """The stream already holds ``maxlen`` entries; the tuples were not queued."""


def import_redis() -> ModuleType:
    """The ``redis`` module, or an ImportError that names the extra to install."""
    try:
        import redis
    except ImportError as exc:
        raise ImportError(
            "the Redis stream pipeline needs the 'redis' package: "
            'pip install ".[redis]" (or pip install "redis>=4.5")'
        ) from exc
    return redis


def connect(
    url_or_client: Union[str, redis.Redis],
    *,
    connect_timeout: float = 2.0,
    timeout: float = 10.0,
) -> tuple[redis.Redis, bool]:
    """A client for ``url_or_client`` and whether the caller owns (must close) it.

    URLs are ``redis://[user:pass@]host:port/db``, ``rediss://`` for TLS, or
    ``unix:///path/to/socket``.
    """
    redis_mod = import_redis()
    if isinstance(url_or_client, str):
        client = redis_mod.Redis.from_url(
            url_or_client,
            socket_connect_timeout=connect_timeout,
            socket_timeout=timeout,
            health_check_interval=30,
        )
        return client, True
    return url_or_client, False


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for logs and reprs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def describe(url_or_client: Any) -> str:
    """A printable, secret-free name for a Redis URL or client."""
    if isinstance(url_or_client, str):
        return redact_url(url_or_client)
    try:
        kwargs = url_or_client.connection_pool.connection_kwargs
        if "path" in kwargs:
            return f"unix://{kwargs['path']}"
        return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"
    except AttributeError:
        return type(url_or_client).__name__


class RedisStreamSink(Closing, ForkAware):
    """Append each ``(type, message_json)`` to a Redis stream with ``XADD``.

    ``url_or_client``
        a Redis URL (``redis://``, ``rediss://user:pass@host:port/0``,
        ``unix://``) or a ready ``redis.Redis`` client (left open on close).
    ``stream``
        the stream key the workers read.
    ``maxlen``
        optional bound on the backlog.  When the stream holds ``maxlen``
        entries new tuples are refused (:class:`StreamFullError`, or the
        fallback), never made room for by trimming: entries still waiting for
        a worker are never discarded.  The workers trim delivered entries.
    ``fallback``
        a sink used when Redis cannot take a tuple (unreachable, full,
        read-only...); a warning is logged when it starts being used.
    ``batch_size``
        1 (default) sends every tuple at once.  Above 1, tuples are buffered
        and written in one round trip (``MULTI``/``EXEC``, all or nothing)
        when ``batch_size`` are waiting, when the oldest has waited
        ``flush_interval`` seconds (checked on the next send), on
        :meth:`flush` and on :meth:`close`.

    Thread-safe: a web app's request threads may share one sink.
    """

    def __init__(
        self,
        url_or_client: Union[str, redis.Redis],
        stream: str = "tracking",
        *,
        maxlen: Optional[int] = None,
        fallback: Optional[Sink] = None,
        batch_size: int = 1,
        flush_interval: float = 1.0,
        connect_timeout: float = 2.0,
        timeout: float = 10.0,
    ) -> None:
        if not stream:
            raise ValueError("stream must be a non-empty key name")
        if maxlen is not None and maxlen < 1:
            raise ValueError(f"maxlen must be a positive number of entries, got {maxlen!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
        self.stream = stream
        self.maxlen = maxlen
        self.fallback = fallback
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self._where = describe(url_or_client)
        self._client, self._owns_client = connect(
            url_or_client, connect_timeout=connect_timeout, timeout=timeout
        )
        self._script = (
            self._client.register_script(_BOUNDED_XADD) if maxlen is not None else None
        )
        self._lock = threading.Lock()
        self._buffer: list[Message] = []
        self._buffer_since = 0.0
        self._degraded = False
        self._closed = False
        self._watch_forks()

    def __repr__(self) -> str:
        return (
            f"RedisStreamSink({self._where!r}, stream={self.stream!r}, "
            f"maxlen={self.maxlen!r}, batch_size={self.batch_size!r}, "
            f"fallback={'yes' if self.fallback is not None else 'no'})"
        )

    @property
    def client(self) -> redis.Redis:
        """The Redis client in use."""
        return self._client

    def send(self, type: str, message_json: str) -> None:
        """Queue one tuple (now, or in the next batch when ``batch_size`` > 1)."""
        if not isinstance(type, str) or not isinstance(message_json, str):
            raise TypeError("send() takes (type: str, message_json: str)")
        if self._closed:
            raise ValueError("send() on a closed RedisStreamSink")
        if self.batch_size == 1:
            self._write([(type, message_json)])
            return
        batch: list[Message] = []
        with self._lock:
            if not self._buffer:
                self._buffer_since = time.monotonic()
            self._buffer.append((type, message_json))
            if (
                len(self._buffer) >= self.batch_size
                or time.monotonic() - self._buffer_since >= self.flush_interval
            ):
                batch, self._buffer = self._buffer, []
        if batch:
            self._write(batch)

    __call__ = send

    def pending(self) -> int:
        """How many tuples wait in the batch buffer."""
        with self._lock:
            return len(self._buffer)

    def flush(self) -> None:
        """Write buffered tuples now (no-op when unbatched or empty)."""
        with self._lock:
            batch, self._buffer = self._buffer, []
        if batch:
            self._write(batch)

    def _reset_in_child(self) -> None:
        """Start with an empty batch (the parent writes what it buffered).

        The Redis client opens new connections in a child by itself.
        """
        self._lock = threading.Lock()
        self._buffer = []

    def close(self) -> None:
        """Flush, then close the client if this sink created it."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            if self._owns_client:
                self._client.close()

    def _write(self, batch: list[Message]) -> None:
        redis_mod = import_redis()
        try:
            added = self._append(batch)
        except redis_mod.RedisError as exc:
            self._divert(batch, TransportError(
                f"could not queue {len(batch)} message(s) on Redis stream "
                f"{self.stream!r} at {self._where}: {exc}",
                messages=batch,
            ))
            return
        if added < len(batch):
            refused = batch[added:]
            self._divert(refused, StreamFullError(
                f"Redis stream {self.stream!r} is full (maxlen={self.maxlen}); "
                f"{len(refused)} message(s) not queued",
                messages=refused,
            ))
            return
        if self._degraded:
            self._degraded = False
            log.info("Redis stream %r at %s accepts messages again", self.stream, self._where)

    def _append(self, batch: list[Message]) -> int:
        if self._script is not None:
            args: list[Any] = [self.maxlen]
            for type_, message in batch:
                args += [type_, message]
            return int(self._script(keys=[self.stream], args=args))
        if len(batch) == 1:
            type_, message = batch[0]
            self._client.xadd(self.stream, {"type": type_, "message": message})
            return 1
        pipe = self._client.pipeline(transaction=True)
        for type_, message in batch:
            pipe.xadd(self.stream, {"type": type_, "message": message})
        pipe.execute()
        return len(batch)

    def _divert(self, batch: list[Message], error: DeliveryError) -> None:
        if self.fallback is None:
            raise error
        if not self._degraded:
            self._degraded = True
            log.warning("%s; writing to the fallback sink %r instead", error, self.fallback)
        for type_, message in batch:
            self.fallback(type_, message)
