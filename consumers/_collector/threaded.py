"""The threaded server (the default mode): ``http.server`` with keep-alive, a thread a connection.

It carries out the App's delays (sleep before answering) and drops (close
without an answer), and under green threads ends in a fork child the
greenlets the parent's server left behind.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import weakref
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional

from consumers import _runtime
from consumers._collector import wire
from consumers._collector.app import App, Request, Response
from consumers._collector.idle import IdleFault, reset_socket

__all__ = ["ThreadedServer"]

# the name docs/logging.md gives the servers' logger
logger = logging.getLogger("consumers._collector.servers")

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
        client = wire.peer(self.client_address)
        buffer = b""
        idle_since = time.monotonic()
        while True:
            end = buffer.find(b"\r\n\r\n")
            while end < 0:
                if len(buffer) > wire.MAX_HEAD:
                    sock.sendall(wire.render(Response(431, b"", "text/plain"), True))
                    return
                chunk = self._recv_idle(idle_since) if not buffer else sock.recv(65536)
                if not chunk:
                    return
                buffer += chunk
                end = buffer.find(b"\r\n\r\n")
            parsed = wire.parse_head(buffer[:end])
            if parsed is None:
                sock.sendall(wire.render(Response(400, b"", "text/plain"), True))
                return
            method, target, headers, length, chunked, close, expect = parsed
            start = end + 4
            continued = False
            while True:
                if chunked:
                    try:
                        decoded = wire.dechunk(buffer, start)
                    except wire.FramingError as exc:
                        sock.sendall(wire.render(wire.refusal(400, str(exc)), True))
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
            request = Request(method, target, headers, body, client)
            response = wire.answer(self.server.app, request)
            if response.drop:
                _abort(sock)
                return
            if response.delay > 0 and response.delay_after_headers:
                sock.sendall(wire.render_head(response, close))
                time.sleep(response.delay)
                sock.sendall(response.body)
            else:
                if response.delay > 0:
                    time.sleep(response.delay)
                sock.sendall(wire.render(response, close))
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

