"""The asyncio server: a minimal HTTP/1.1 server on one event loop in a background thread.

It keeps connections alive, answers in order, and carries out the App's
delays (a timer on the loop, the connection answers nothing else meanwhile)
and drops (abort without an answer).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Optional

from consumers._collector import wire
from consumers._collector.app import App, Request, Response
from consumers._collector.idle import IdleFault, reset_socket

__all__ = ["AsyncioServer"]


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
        self._peer = wire.peer(transport.get_extra_info("peername"))
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
                if len(buffer) > wire.MAX_HEAD:
                    self._fail(431)
                return
            parsed = wire.parse_head(buffer[:end])
            if parsed is None:
                self._fail(400)
                return
            method, target, headers, length, chunked, close, expect = parsed
            start = end + 4
            if chunked:
                try:
                    decoded = wire.dechunk(buffer, start)
                except wire.FramingError as exc:
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
            response = wire.answer(
                self._server.app, Request(method, target, headers, body, self._peer))
            if response.drop:
                self._transport.abort()
                return
            if response.delay > 0:
                self._busy = True
                head_sent = response.delay_after_headers
                if head_sent:
                    self._transport.write(wire.render_head(response, close))
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
        self._transport.write(wire.render(response, close))
        if close:
            self._transport.close()
            self._transport = None

    def _fail(self, status: int, reason: str = "") -> None:
        self._send(wire.refusal(status, reason), True)


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
