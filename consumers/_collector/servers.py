"""The two HTTP/1.1 servers that carry :class:`App`: threaded (default) and asyncio.

Both keep connections alive, answer in order, and carry out the App's
delays (sleep before answering) and drops (close without an answer).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
import time
import weakref
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional

from consumers import _runtime
from consumers._collector.app import App, Request, Response
from consumers._collector.idle import IdleFault, reset_socket

__all__ = ["MODES", "AsyncioServer", "FramingError", "ThreadedServer", "answer", "render",
           "render_head"]

logger = logging.getLogger(__name__)

MODES = ("threaded", "asyncio")

_PHRASES = {s.value: s.phrase for s in HTTPStatus}
_MAX_HEAD = 64 * 1024
#: A chunk-size line longer than this is not one (the size itself is at most 16 hex digits).
_MAX_CHUNK_LINE = 4096
_HEX = frozenset(b"0123456789abcdefABCDEF")


class FramingError(ValueError):
    """The request's body framing (chunked encoding) is malformed; the connection is lost."""


def answer(app: App, request: Request) -> Response:
    """The App's answer; a bug in it becomes a 500, never a connection closed unanswered."""
    try:
        return app.handle(request)
    except Exception as exc:
        logger.exception("collector: error answering %s %s", request.method, request.path)
        error = f"internal error in the collector: {type(exc).__name__}"
        return Response(500, json.dumps({"error": error, "status": 0}).encode())


def _refusal(status: int, reason: str = "") -> Response:
    return Response(status, reason.encode("latin-1", "replace"), "text/plain")


def render(response: Response, close: bool) -> bytes:
    """The response's bytes on the wire."""
    return render_head(response, close) + response.body


def render_head(response: Response, close: bool) -> bytes:
    """The status line and headers, up to the blank line before the body."""
    lines = [
        f"HTTP/1.1 {response.status} {_PHRASES.get(response.status, 'Unknown')}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
    ]
    lines.extend(f"{name}: {value}" for name, value in response.headers)
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Handler(BaseHTTPRequestHandler):
    """One keep-alive connection of the threaded server.

    ``http.server``'s own request parsing (``email.parser`` for headers)
    costs more than everything else a request does, so the connection is
    read with the same lean HTTP/1.1 parser the asyncio server uses.
    """

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: ThreadedServer

    def setup(self) -> None:
        super().setup()
        self.server.track_connection(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track_connection(self.connection, add=False)

    def handle(self) -> None:
        try:
            self._serve_connection()
        except OSError:  # reset by the client, or closed by stop()
            pass

    def _serve_connection(self) -> None:
        sock = self.connection
        peer = _peer(self.client_address)
        buffer = b""
        idle_since = time.monotonic()
        while True:
            end = buffer.find(b"\r\n\r\n")
            while end < 0:
                if len(buffer) > _MAX_HEAD:
                    sock.sendall(render(Response(431, b"", "text/plain"), True))
                    return
                chunk = self._recv_idle(idle_since) if not buffer else sock.recv(65536)
                if not chunk:
                    return
                buffer += chunk
                end = buffer.find(b"\r\n\r\n")
            parsed = _parse_head(buffer[:end])
            if parsed is None:
                sock.sendall(render(Response(400, b"", "text/plain"), True))
                return
            method, target, headers, length, chunked, close, expect = parsed
            start = end + 4
            continued = False
            while True:
                if chunked:
                    try:
                        decoded = _dechunk(buffer, start)
                    except FramingError as exc:
                        sock.sendall(render(_refusal(400, str(exc)), True))
                        return
                    if decoded is not None:
                        body, stop = decoded
                        break
                elif len(buffer) - start >= length:
                    body, stop = buffer[start:start + length], start + length
                    break
                if expect and not continued:
                    continued = True
                    sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                chunk = sock.recv(max(65536, length - (len(buffer) - start)))
                if not chunk:
                    return
                buffer += chunk
            buffer = buffer[stop:]
            response = answer(self.server.app, Request(method, target, headers, body, peer))
            if response.drop:
                _abort(sock)
                return
            if response.delay > 0 and response.delay_after_headers:
                sock.sendall(render_head(response, close))
                time.sleep(response.delay)
                sock.sendall(response.body)
            else:
                if response.delay > 0:
                    time.sleep(response.delay)
                sock.sendall(render(response, close))
            if close:
                return
            idle_since = time.monotonic()

    def _recv_idle(self, idle_since: float) -> bytes:
        """The first bytes of the next request; b"" once the idle fault ended the connection."""
        sock = self.connection
        idle = self.server.idle
        eager = idle.eager
        if eager is not None:
            sock.settimeout(max(0.001, idle_since + eager - time.monotonic()))
        try:
            chunk: bytes = sock.recv(65536)
        except socket.timeout:
            self._end_idle(clean=False)
            return b""
        finally:
            if eager is not None and sock.fileno() >= 0:
                sock.settimeout(None)
        if chunk and idle.expired(time.monotonic() - idle_since):
            self._end_idle(clean=True)  # the request is left unread
            return b""
        return chunk

    def _end_idle(self, *, clean: bool) -> None:
        sock = self.connection
        self.server.idle.counted()
        if self.server.idle.reset:
            reset_socket(sock)
            self.rfile.close()  # the last reference: close() then really closes (RST)
            sock.close()
            return
        if not clean:
            _abort(sock)
            return
        try:  # FIN first, then read and discard until the client gives up
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(2.0)
            while sock.recv(65536):
                pass
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _peer(address: Any) -> str:
    """``host:port`` of a client address (``""`` when unknown)."""
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return ""


def _abort(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class ThreadedServer(ThreadingHTTPServer):
    """``http.server`` with HTTP/1.1 keep-alive, one daemon thread per connection."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], app: App, idle: Optional[IdleFault] = None
    ) -> None:
        self.app = app
        self.idle = idle if idle is not None else IdleFault()
        self._connections: dict[socket.socket, Any] = {}  # and the greenlet serving each
        self._connections_lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._pid = os.getpid()
        self._green: Any = None
        super().__init__(address, _Handler)
        _servers.add(self)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("collector: error serving %s", client_address, exc_info=True)

    def track_connection(self, sock: socket.socket, *, add: bool) -> None:
        with self._connections_lock:
            if add:
                self._connections[sock] = _runtime.current_greenlet()
            else:
                self._connections.pop(sock, None)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name="collector-http", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self._green = _runtime.current_greenlet()
        self.serve_forever(poll_interval=0.05)

    def shutdown_request(self, request: Any) -> None:
        if os.getpid() != self._pid:  # a fork child's copy: the connection is the parent's
            request.close()
            return
        super().shutdown_request(request)

    def _after_fork_in_child(self) -> None:
        """Under green threads the serving greenlets survive a fork: end them in the child.

        (OS threads do not survive it, so the child's copy serves nothing.)
        Otherwise parent and child would take turns reading the same sockets.
        """
        greens = [self._green, *self._connections.values()]
        self._connections = {}
        self._connections_lock = threading.Lock()
        for green in greens:
            _runtime.end_inherited(green)

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        with self._connections_lock:
            connections = list(self._connections)
        for sock in connections:
            _abort(sock)
        if self._thread is not None:
            self._thread.join(timeout=5)


_servers: weakref.WeakSet[ThreadedServer] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    if _runtime.green_library() is None:
        return
    for server in list(_servers):
        server._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _Connection(asyncio.Protocol):
    """One keep-alive connection: parse requests, answer them in order."""

    def __init__(self, server: AsyncioServer) -> None:
        self._server = server
        self._buffer = b""
        self._busy = False
        self._continued = False
        self._transport: Optional[asyncio.Transport] = None
        self._peer = ""
        self._idle_since = time.monotonic()
        self._idle_timer: Optional[asyncio.TimerHandle] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._peer = _peer(transport.get_extra_info("peername"))
        self._server.connections.add(transport)
        self._became_idle()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if self._transport is not None:
            self._server.connections.discard(self._transport)
        self._transport = None
        if self._idle_timer is not None:
            self._idle_timer.cancel()

    def data_received(self, data: bytes) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if not self._buffer and not self._busy and self._server.idle.expired(
                time.monotonic() - self._idle_since):
            self._end_idle()  # the request is left unread
            return
        self._buffer += data
        self._process()
        if not self._buffer and not self._busy:
            self._became_idle()

    def _became_idle(self) -> None:
        self._idle_since = time.monotonic()
        eager = self._server.idle.eager
        if eager is not None and self._transport is not None:
            self._idle_timer = asyncio.get_running_loop().call_later(eager, self._end_idle)

    def _end_idle(self) -> None:
        transport, self._transport = self._transport, None
        if transport is None:
            return
        self._server.idle.counted()
        if self._server.idle.reset:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                reset_socket(sock)
            transport.abort()
        else:
            transport.close()

    def _process(self) -> None:
        while not self._busy and self._transport is not None:
            buffer = self._buffer
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > _MAX_HEAD:
                    self._fail(431)
                return
            parsed = _parse_head(buffer[:end])
            if parsed is None:
                self._fail(400)
                return
            method, target, headers, length, chunked, close, expect = parsed
            start = end + 4
            if chunked:
                try:
                    decoded = _dechunk(buffer, start)
                except FramingError as exc:
                    self._fail(400, str(exc))
                    return
                if decoded is None:
                    self._continue(expect)
                    return
                body, start = decoded
                rest = buffer[start:]
            else:
                if len(buffer) - start < length:
                    self._continue(expect)
                    return
                body = buffer[start:start + length]
                rest = buffer[start + length:]
            self._buffer = rest
            self._continued = False
            response = answer(
                self._server.app, Request(method, target, headers, body, self._peer))
            if response.drop:
                self._transport.abort()
                return
            if response.delay > 0:
                self._busy = True
                head_sent = response.delay_after_headers
                if head_sent:
                    self._transport.write(render_head(response, close))
                asyncio.get_running_loop().call_later(
                    response.delay, self._finish_delayed, response, close, head_sent
                )
                return
            self._send(response, close)

    def _continue(self, expect: bool) -> None:
        if expect and not self._continued and self._transport is not None:
            self._continued = True
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _finish_delayed(self, response: Response, close: bool, head_sent: bool) -> None:
        self._busy = False
        if self._transport is None:
            return
        if head_sent:
            self._transport.write(response.body)
            if close:
                self._transport.close()
                self._transport = None
        else:
            self._send(response, close)
        self._process()
        if not self._buffer and not self._busy:
            self._became_idle()

    def _send(self, response: Response, close: bool) -> None:
        assert self._transport is not None
        self._transport.write(render(response, close))
        if close:
            self._transport.close()
            self._transport = None

    def _fail(self, status: int, reason: str = "") -> None:
        self._send(_refusal(status, reason), True)


def _parse_head(
    head: bytes,
) -> Optional[tuple[str, str, list[tuple[str, str]], int, bool, bool, bool]]:
    try:
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers: list[tuple[str, str]] = []
        length = 0
        chunked = False
        close = version == "HTTP/1.0"
        expect = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            value = value.strip()
            headers.append((name, value))
            lower = name.lower()
            if lower == "content-length":
                length = int(value)
            elif lower == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif lower == "connection":
                close = value.lower() == "close" or (
                    version == "HTTP/1.0" and value.lower() != "keep-alive"
                )
            elif lower == "expect":
                expect = value.lower() == "100-continue"
    except ValueError:
        return None
    if length < 0 or not version.startswith("HTTP/1."):
        return None
    return method, target, headers, length, chunked, close, expect


def _dechunk(buffer: bytes, start: int) -> Optional[tuple[bytes, int]]:
    """The chunked body starting at ``start`` and where it ends, or None if incomplete.

    Raises FramingError when the bytes cannot be a chunked body.
    """
    chunks: list[bytes] = []
    pos = start
    while True:
        eol = buffer.find(b"\r\n", pos, pos + _MAX_CHUNK_LINE)
        if eol < 0:
            if len(buffer) - pos >= _MAX_CHUNK_LINE:
                raise FramingError("malformed chunked body: chunk-size line too long")
            return None
        size = _chunk_size(buffer[pos:eol])
        pos = eol + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n", pos)
            while trailer_end > pos:
                pos = trailer_end + 2
                trailer_end = buffer.find(b"\r\n", pos)
            if trailer_end < 0:
                return None
            return b"".join(chunks), trailer_end + 2
        if len(buffer) < pos + size + 2:
            return None
        if buffer[pos + size:pos + size + 2] != b"\r\n":
            raise FramingError("malformed chunked body: chunk data not followed by CRLF")
        chunks.append(buffer[pos:pos + size])
        pos += size + 2


def _chunk_size(line: bytes) -> int:
    digits = line.split(b";", 1)[0].strip()
    if not digits or len(digits) > 16 or not _HEX.issuperset(digits):
        raise FramingError(f"malformed chunked body: invalid chunk size {line[:40]!r}")
    return int(digits, 16)


class AsyncioServer:
    """A minimal HTTP/1.1 server on an asyncio event loop in one background thread."""

    def __init__(
        self, address: tuple[str, int], app: App, idle: Optional[IdleFault] = None
    ) -> None:
        self.app = app
        self.idle = idle if idle is not None else IdleFault()
        self.connections: set[asyncio.Transport] = set()
        self._address = address
        self._server: Optional[asyncio.base_events.Server] = None
        self._thread: Optional[threading.Thread] = None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(128)
            sock.setblocking(False)
        except BaseException:  # a busy port must not leak the socket
            sock.close()
            raise
        self._socket = sock
        self._loop = asyncio.new_event_loop()

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    def start(self) -> None:
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                self._loop.create_server(lambda: _Connection(self), sock=self._socket)
            )
            ready.set()
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=run, name="collector-asyncio", daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop(self) -> None:
        def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for transport in list(self.connections):
                transport.abort()
            self._loop.stop()

        if self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(shutdown)
            self._thread.join(timeout=5)
