"""POSTs on the loop's own sockets, where ``httpx`` would add nothing but its steps.

One batch through ``httpx.AsyncClient`` takes about 1 ms of CPU on the loop
in half a dozen steps of 0.1 to 0.3 ms each (the pool's lock, anyio's
checkpoints, httpcore and h11, the ``Response``), and a timer waits behind
every step that is ready when it falls due.  Here a request is one write
and its answer one ``data_received`` call: an :class:`asyncio.Protocol`
per keep-alive connection, HTTP/1.1 framed by Content-Length or chunked.

:class:`WirePosts` takes a POST only where httpx would do nothing more: a
client the transport made itself, an ``http``/``https`` URL with an ASCII
host, and no proxy in the environment (``HTTP_PROXY``, ``HTTPS_PROXY``,
``ALL_PROXY``).  Userinfo in the URL is sent as Basic auth, as httpx sends
it.  Failures raise :class:`_Failed` with httpx's names for them
(``ConnectError``, ``ReadTimeout``, ...).  A reused connection that died
before any byte of the answer is replaced and the request sent once more.
"""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Optional, Union

__all__ = ["Failed", "Reply", "WirePosts"]

#: A body is written this many bytes per turn of the loop (see ``WRITE_CHUNK``).
PIECE = 64 * 1024
_PROXY_SCHEMES = ("all",)


class Failed(Exception):
    """A POST that got no answer: ``kind`` is httpx's name for what happened."""

    def __init__(self, kind: str, detail: str, *, timeout: bool = False) -> None:
        super().__init__(detail)
        self.kind = kind
        self.timeout = timeout


class _Headers(Mapping[str, str]):
    """An answer's headers, looked up case-insensitively (repeated names joined by ``, ``)."""

    def __init__(self, pairs: dict[str, str]) -> None:
        self._pairs = pairs

    def __getitem__(self, name: str) -> str:
        return self._pairs[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)


class Reply:
    """An answer as the transport reads it: status, headers, text and URL."""

    __slots__ = ("content", "headers", "status_code", "url")

    def __init__(self, status: int, headers: _Headers, content: bytes, url: str) -> None:
        self.status_code = status
        self.headers = headers
        self.content = content
        self.url = url

    @property
    def text(self) -> str:
        """The body in the charset the answer names, else UTF-8."""
        charset = "utf-8"
        for part in self.headers.get("content-type", "").split(";")[1:]:
            name, _, value = part.strip().partition("=")
            if name.lower() == "charset" and value:
                charset = value.strip("\"' ")
        try:
            return self.content.decode(charset, errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")


def _parse_head(head: bytes) -> tuple[int, dict[str, str], bool]:
    """Status, headers, and whether the connection may be reused."""
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    try:
        status = int(rest[:3])
    except ValueError:
        raise Failed("RemoteProtocolError", f"malformed status line {lines[0][:80]!r}") from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            continue
        name, value = name.strip().lower(), value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    tokens = headers.get("connection", "").lower()
    reuse = "keep-alive" in tokens if version == "HTTP/1.0" else "close" not in tokens
    return status, headers, reuse


def _chunked(data: bytearray, start: int) -> Optional[tuple[bytes, int]]:
    """The body of a chunked answer from ``start`` and where it ends; None if incomplete."""
    body = bytearray()
    at = start
    while True:
        line_end = data.find(b"\r\n", at)
        if line_end < 0:
            return None
        size = int(bytes(data[at:line_end]).split(b";")[0].strip() or b"0", 16)
        at = line_end + 2
        if size == 0:
            end = data.find(b"\r\n\r\n", at - 2)  # no trailers, or trailers then a blank line
            return (bytes(body), end + 4) if end >= 0 else None
        if len(data) < at + size + 2:
            return None
        body += data[at:at + size]
        at += size + 2


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one exchange at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: Optional[asyncio.Transport] = None
        self.closed = False
        self.got_bytes = False
        self._buffer = bytearray()
        self._answer: Optional[asyncio.Future[tuple[int, dict[str, str], bytes, bool]]] = None
        self._writable: Optional[asyncio.Future[None]] = None
        self._timer: Optional[asyncio.TimerHandle] = None
        self._read_timeout = 0.0
        self._head: Optional[tuple[int, dict[str, str], bool]] = None
        self._body_at = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.closed = True
        if self._writable is not None and not self._writable.done():
            self._writable.set_exception(Failed("WriteError", str(exc or "connection closed")))
        answer = self._answer
        if answer is not None and not answer.done():
            if self._head is not None and "content-length" not in self._head[1] \
                    and "chunked" not in self._head[1].get("transfer-encoding", ""):
                status, headers, _ = self._head  # an answer framed by the end of the connection
                answer.set_result((status, headers, bytes(self._buffer[self._body_at:]), False))
            else:
                answer.set_exception(Failed(
                    "RemoteProtocolError" if exc is None else "ReadError",
                    "Server disconnected without sending a complete response"
                    if exc is None else str(exc)))
        self._stop_timer()

    def pause_writing(self) -> None:
        self._writable = self.loop.create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        self._buffer += data
        answer = self._answer
        if answer is None or answer.done():
            return
        if self._timer is not None:  # the read timeout counts from the last bytes read
            self._timer.cancel()
            self._timer = self.loop.call_later(self._read_timeout, self._timed_out, "ReadTimeout")
        try:
            done = self._complete()
        except Failed as exc:
            answer.set_exception(exc)
            return
        if done is not None:
            self._stop_timer()
            answer.set_result(done)

    def _complete(self) -> Optional[tuple[int, dict[str, str], bytes, bool]]:
        data = self._buffer
        while self._head is None:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                return None
            head = _parse_head(bytes(data[:end]))
            if 100 <= head[0] < 200:  # an interim answer: the real one follows
                del data[:end + 4]
                continue
            self._head, self._body_at = head, end + 4
        status, headers, reuse = self._head
        if "chunked" in headers.get("transfer-encoding", "").lower():
            got = _chunked(data, self._body_at)
            if got is None:
                return None
            body, end = got
        elif "content-length" in headers:
            try:
                end = self._body_at + int(headers["content-length"])
            except ValueError:
                raise Failed("RemoteProtocolError", "malformed Content-Length") from None
            if len(data) < end:
                return None
            body = bytes(data[self._body_at:end])
        else:
            return None  # framed by the end of the connection
        del data[:end]
        return status, headers, body, reuse and not data

    def _timed_out(self, kind: str) -> None:
        self._timer = None
        for waiting in (self._answer, self._writable):
            if waiting is not None and not waiting.done():
                waiting.set_exception(Failed(kind, "timed out", timeout=True))
        if self.transport is not None:
            self.transport.abort()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def exchange(self, head: bytes, body: bytes, timeout: float,
                       ) -> tuple[int, dict[str, str], bytes, bool]:
        """Write the request and wait for the whole answer."""
        transport = self.transport
        assert transport is not None
        self._head, self._answer = None, self.loop.create_future()
        self.got_bytes = False
        self._read_timeout = timeout
        try:
            if len(body) <= PIECE:
                transport.write(head + body)
            else:
                transport.write(head)
                view = memoryview(body)
                for start in range(0, len(body), PIECE):
                    transport.write(view[start:start + PIECE])
                    await asyncio.sleep(0)  # one piece per turn of the loop
                    if self._writable is not None:
                        self._timer = self.loop.call_later(timeout, self._timed_out,
                                                           "WriteTimeout")
                        await self._writable
                        self._stop_timer()
            if self.closed and not self._answer.done():
                raise Failed("WriteError", "connection closed while writing")
            self._timer = self.loop.call_later(timeout, self._timed_out, "ReadTimeout")
            return await self._answer
        except BaseException:
            self._stop_timer()
            self.close()
            raise
        finally:
            self._answer = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class _Target:
    """What a URL means on the wire: where to connect, the request line's target, Host."""

    __slots__ = ("auth", "host", "host_header", "key", "port", "target", "tls")

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.tls = parts.scheme == "https"
        host = parts.hostname or ""
        host.encode("ascii")  # a non-ASCII host goes to httpx, which knows IDNA
        self.host = host
        self.port = parts.port or (443 if self.tls else 80)
        default = self.port == (443 if self.tls else 80)
        shown = f"[{host}]" if ":" in host else host
        self.host_header = shown if default else f"{shown}:{self.port}"
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.auth: Optional[tuple[str, str]] = None
        if parts.username is not None or parts.password is not None:
            self.auth = (urllib.parse.unquote(parts.username or ""),
                         urllib.parse.unquote(parts.password or ""))
        self.key = (self.tls, host, self.port)


def _basic(auth: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")


class WirePosts:
    """The keep-alive connections of one transport, on the loop it runs on."""

    def __init__(self, tls: Union[bool, ssl.SSLContext], pool_size: int) -> None:
        self._tls = tls
        self._pool_size = pool_size
        self._idle: dict[tuple[bool, str, int], list[_Connection]] = {}
        self._slots: Optional[asyncio.Semaphore] = None
        self._targets: dict[str, Optional[_Target]] = {}
        self._seen: object = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    def target(self, url: str) -> Optional[_Target]:
        """The URL's target if this module may post to it, else None (httpx's path).

        Worked out again for every URL whenever ``os.environ`` changed.
        """
        environ = getattr(os.environ, "_data", None)
        if environ != self._seen or environ is None:
            self._targets.clear()
            self._seen = dict(environ) if isinstance(environ, dict) else None
        elif url in self._targets:
            return self._targets[url]
        try:
            parts = urllib.parse.urlsplit(url)
            direct = parts.scheme in ("http", "https") and (parts.scheme == "http" or bool(
                self._tls)) and not _proxied(parts.scheme)
            target = _Target(url) if direct else None
        except (ValueError, UnicodeError):
            target = None
        if len(self._targets) > 64:
            self._targets.clear()
        self._targets[url] = target
        return target

    async def post(self, target: _Target, body: bytes, headers: Mapping[str, str],
                   auth: Optional[tuple[str, str]], connect_timeout: float,
                   read_timeout: float, url: str) -> Reply:
        """POST on a pooled connection; raises :class:`Failed` where no answer came."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop or self._slots is None:  # connections belong to one loop
            self._idle, self._loop = {}, loop
            self._slots = asyncio.Semaphore(self._pool_size)
        lines = [f"POST {target.target} HTTP/1.1", f"Host: {target.host_header}",
                 f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "content-length"]
        auth = auth or target.auth
        if auth is not None:
            lines.append(f"Authorization: {_basic(auth)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        async with self._slots:
            for _ in range(2):
                connection, reused = await self._connection(target, connect_timeout, loop)
                try:
                    status, pairs, content, reuse = await connection.exchange(
                        head, body, read_timeout)
                except Failed as exc:
                    if reused and not connection.got_bytes and not exc.timeout:
                        continue  # it died while idle: once more on a new connection
                    raise
                if reuse and not connection.closed:
                    self._idle.setdefault(target.key, []).append(connection)
                else:
                    connection.close()
                return Reply(status, _Headers(pairs), content, url)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _connection(self, target: _Target, timeout: float,
                          loop: asyncio.AbstractEventLoop) -> tuple[_Connection, bool]:
        idle = self._idle.get(target.key)
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection, True
        tls = self._tls if target.tls else None
        try:
            _, protocol = await asyncio.wait_for(loop.create_connection(
                lambda: _Connection(loop), target.host, target.port,
                ssl=tls if isinstance(tls, ssl.SSLContext) else None,
                server_hostname=target.host if tls else None), timeout)
        except asyncio.TimeoutError:
            raise Failed("ConnectTimeout", "timed out", timeout=True) from None
        except ssl.SSLError as exc:
            raise Failed("ConnectError", f"[SSL] {exc}") from None
        except OSError as exc:
            raise Failed("ConnectError", str(exc)) from None
        return protocol, False

    def close(self) -> None:
        """Close every idle connection."""
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle = {}


def _proxied(scheme: str) -> bool:
    proxies = urllib.request.getproxies_environment()
    return any(proxies.get(name) for name in (scheme, *_PROXY_SCHEMES))
