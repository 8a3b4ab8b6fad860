"""POSTs on the loop's own sockets, where ``httpx`` would add nothing but its steps.

One batch through ``httpx.AsyncClient`` takes about 1 ms of CPU on the loop
in half a dozen steps of 0.1 to 0.3 ms each (the pool's lock, anyio's
checkpoints, httpcore and h11, the ``Response``), and a timer waits behind
every step that is ready when it falls due.  Here a request is one write
and its answer one ``data_received`` call, on the keep-alive connections
of :mod:`consumers.aio._http11`.

:class:`WirePosts` takes a POST only where httpx would do nothing more: a
client the transport made itself, an ``http``/``https`` URL with an ASCII
host, and no proxy in the environment (``HTTP_PROXY``, ``HTTPS_PROXY``,
``ALL_PROXY``).  Userinfo in the URL is sent as Basic auth, as httpx sends
it.  Failures raise :class:`~consumers.aio._http11.Failed`.  A reused
connection that died before any byte of the answer is replaced and the
request sent once more.
"""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Optional, Union

from consumers.aio._http11 import Connection, Failed, Headers, Reply

__all__ = ["WirePosts"]

_PROXY_SCHEMES = ("all",)


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
        self._idle: dict[tuple[bool, str, int], list[Connection]] = {}
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
                return Reply(status, Headers(pairs), content, url)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _connection(self, target: _Target, timeout: float,
                          loop: asyncio.AbstractEventLoop) -> tuple[Connection, bool]:
        idle = self._idle.get(target.key)
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection, True
        tls = self._tls if target.tls else None
        try:
            _, protocol = await asyncio.wait_for(loop.create_connection(
                lambda: Connection(loop), target.host, target.port,
                ssl=tls if isinstance(tls, ssl.SSLContext) else None,
                server_hostname=target.host if tls else None), timeout)
        except asyncio.TimeoutError:
            raise Failed("ConnectTimeout", "timed out", timeout=True) from None
        except ssl.SSLError as exc:
            raise Failed("ConnectError", f"[SSL] {exc}") from None
        except OSError as exc:
            raise Failed("ConnectError", str(exc)) from None
        return protocol, False

    def forget_after_fork(self) -> None:
        """In a fork child: the parent's connections are not ours (kept open, never used).

        Closing them would need the parent's loop; they stay referenced, so
        the child never closes a descriptor that the parent's socket uses.
        """
        _inherited.extend(c for connections in self._idle.values() for c in connections)
        self._idle, self._slots, self._loop = {}, None, None

    def close(self) -> None:
        """Close every idle connection."""
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle = {}


_inherited: list[Connection] = []  # a fork child's copies of the parent's connections


def _proxied(scheme: str) -> bool:
    proxies = urllib.request.getproxies_environment()
    return any(proxies.get(name) for name in (scheme, *_PROXY_SCHEMES))
