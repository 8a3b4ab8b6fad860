"""HTTP/1.1 on one keep-alive connection, as an :class:`asyncio.Protocol`.

A request is written with as few ``write()`` calls as its size allows (a
piece of :data:`PIECE` bytes per turn of the loop); its answer is read in
``data_received``, framed by Content-Length, chunked, or the end of the
connection, interim (1xx) answers skipped.  Failures raise :class:`Failed`
with httpx's names for them (``ConnectError``, ``ReadTimeout``, ...).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from typing import Optional

__all__ = ["PIECE", "Connection", "Failed", "Headers", "Reply"]

#: A body is written this many bytes per turn of the loop (one ``send()`` each).
PIECE = 64 * 1024


class Failed(Exception):
    """A POST that got no answer: ``kind`` is httpx's name for what happened."""

    def __init__(self, kind: str, detail: str, *, timeout: bool = False) -> None:
        super().__init__(detail)
        self.kind = kind
        self.timeout = timeout


class Headers(Mapping[str, str]):
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

    def __init__(self, status: int, headers: Headers, content: bytes, url: str) -> None:
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


class Connection(asyncio.Protocol):
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
            transport.write(head + body[:PIECE])  # one system call per piece
            if len(body) > PIECE:
                view = memoryview(body)
                for start in range(PIECE, len(body), PIECE):
                    await asyncio.sleep(0)  # one piece per turn of the loop
                    transport.write(view[start:start + PIECE])
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
