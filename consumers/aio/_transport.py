"""The asyncio HTTP transport: the same rules as the threaded one, on the running loop.

It posts on connections of its own (:mod:`consumers.aio._wire`), or through
``httpx.AsyncClient`` where httpx would do more (a caller's client, a proxy
in the environment).  :class:`AsyncHttpTransport` posts a body and returns
the 2xx :class:`Answer`, or raises the delivery error family exactly as
:class:`~consumers._http.HttpTransport` does: the status mapping, the
``Retry-After`` holds per endpoint (:mod:`consumers._pace`) and the retry
decisions (:class:`~consumers.retry.RetryPolicy`) come from
:mod:`consumers._protocol`; this module only moves bytes and awaits.
Nothing here blocks the event loop: waits are ``asyncio`` sleeps, and a
shutdown deadline (:meth:`AsyncHttpTransport.end_retries_at`) cuts them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from collections.abc import Mapping
from typing import Optional, Union

import attrs
import httpx

from consumers import local
from consumers._http import DEFAULT_TIMEOUT, USER_AGENT, Auth, Timeout
from consumers._pace import Pace, endpoint_key
from consumers._protocol.answers import (
    answer_error,
    describe_url,
    held_past_budget,
    note_answer,
    short,
)
from consumers.aio import _httpx
from consumers.aio._http11 import Failed, Reply
from consumers.aio._turns import heavy_step
from consumers.aio._wire import WirePosts
from consumers.errors import TimeoutError_, TransportError
from consumers.retry import RetryPolicy, async_retrying

__all__ = ["Answer", "AsyncHttpTransport"]

log = logging.getLogger("consumers.aio")

#: How often a wait looks at a deadline moved meanwhile (seconds).
_DEADLINE_POLL = 0.05

@attrs.frozen
class Answer:
    """A 2xx answer: what the consumers read of it."""

    status: int
    text: str
    url: str


def _seconds(timeout: Timeout) -> tuple[float, float]:
    """(connect, read) seconds."""
    if isinstance(timeout, tuple):
        return float(timeout[0]), float(timeout[1])
    return float(timeout), float(timeout)


class AsyncHttpTransport:
    """POSTs bodies on the running event loop with keep-alive, timeouts and retries.

    ``client`` may be a caller's own ``httpx.AsyncClient``: then every
    request goes through it, and :meth:`aclose` does not close it.  ``pace`` remembers the
    service's ``Retry-After`` per endpoint, as for the threaded transport.
    """

    def __init__(
        self,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - a frozen value
        timeout: Timeout = DEFAULT_TIMEOUT,
        verify: Union[bool, str] = True,
        user_agent: str = USER_AGENT,
        client: Optional[httpx.AsyncClient] = None,
        *,
        pool_size: int = 10,
        pace: Optional[Pace] = None,
    ) -> None:
        if not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
        self.retry = retry
        self.timeout = timeout
        self.verify = verify
        self.user_agent = user_agent
        self.pace = Pace(max_hold=retry.max_retry_after) if pace is None else pace
        self._retry_deadline: Optional[float] = None
        self._owns_client = client is None
        self._client = client
        self._pool_size = pool_size
        self._wire: Optional[WirePosts] = None
        self._client_loop: Optional[asyncio.AbstractEventLoop] = None
        local.local_collector_url()  # a malformed TRACKING_TOOLKIT_LOCAL_COLLECTOR fails here
        self._retrying = async_retrying(retry, sleep=self._wait_between_attempts,
                                        deadline=lambda: self._retry_deadline)

    def __repr__(self) -> str:
        return (f"AsyncHttpTransport(retry={self.retry!r}, timeout={self.timeout!r}, "
                f"verify={self.verify!r}, user_agent={self.user_agent!r})")

    @property
    def client(self) -> httpx.AsyncClient:
        """The ``httpx.AsyncClient`` posting (made on first use, on the running loop)."""
        if self._client is None:
            self._client = self._new_client()
        return self._client

    async def open(self) -> None:
        """Make the client and its TLS context now, before the first POST needs them."""
        loop = asyncio.get_running_loop()
        if self._owns_client and self._client_loop is not loop:
            self._client = None  # made on a loop that ended: its connections ended with it
            self._client_loop = loop
        if self.verify is True and not _httpx.default_tls_loaded():
            await asyncio.to_thread(_httpx.tls, True)  # the CA bundle is read off the loop
        self.client  # noqa: B018 - made here, at start, not in the middle of a burst

    def _new_client(self) -> httpx.AsyncClient:
        return _httpx.new_client(self.timeout, self.verify, self._pool_size)

    @property
    def wire(self) -> Optional[WirePosts]:
        """The transport's own connections (None with a caller's client: all goes through it)."""
        if self._wire is None and self._owns_client:
            self._wire = WirePosts(_httpx.tls(self.verify), self._pool_size)
        return self._wire

    def end_retries_at(self, deadline: Optional[float]) -> None:
        """Start no retry that would end after ``deadline`` (``time.monotonic()``; None: lift)."""
        self._retry_deadline = deadline

    async def _wait_between_attempts(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            deadline = self._retry_deadline
            if deadline is not None and end > deadline:
                raise _WaitCut
            left = end - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, _DEADLINE_POLL))

    async def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        auth: Auth = None,
        params: Optional[Mapping[str, str]] = None,
    ) -> Answer:
        """POST ``body`` to ``url``; the 2xx answer, or a delivery error after retries."""
        url, headers = local.redirect(url, headers)
        key = endpoint_key(url)
        started = time.monotonic()
        # Most POSTs succeed at once: the first attempt runs before the retry
        # loop, which starts only after a failure worth retrying and counts
        # that failure as its own first attempt (same budget, same waits).
        try:
            await self._await_pace(key, url, started)
            return await self._attempt(url, body, headers, auth, params, key)
        except BaseException as exc:
            if not self.retry.retries(exc):
                raise
            failed: BaseException = exc
        replay: Optional[BaseException] = failed
        answer: Optional[Answer] = None
        try:
            # a run of its own: tenacity keeps a run's state per thread, and
            # concurrent POSTs on one loop share the thread
            async for attempt in self._retrying.copy():
                with attempt:
                    if replay is not None:
                        attempt.retry_state.start_time = started
                        first, replay = replay, None
                        raise first
                    try:
                        await self._await_pace(key, url, started)
                        answer = await self._attempt(url, body, headers, auth, params, key)
                    except BaseException as exc:
                        failed = exc
                        raise
        except _WaitCut:
            raise failed from None
        assert answer is not None
        return answer

    async def _await_pace(self, key: str, url: str, started: float) -> None:
        if self.pace.until(key) <= time.monotonic():
            return
        while True:
            until = self.pace.until(key)
            now = time.monotonic()
            if until <= now:
                return
            error = held_past_budget(url, until, now, started, self.retry, self._retry_deadline)
            if error is not None:
                raise error
            await asyncio.sleep(min(until - now, _DEADLINE_POLL))

    async def _attempt(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        auth: Auth,
        params: Optional[Mapping[str, str]],
        key: str,
    ) -> Answer:
        all_headers = {"User-Agent": self.user_agent}
        all_headers.update(headers)
        wire = self.wire
        full = url
        if params:
            full += ("&" if "?" in url else "?") + urllib.parse.urlencode(params)
        target = None if wire is None else wire.target(full)
        sent = time.monotonic()
        response: Union[httpx.Response, Reply]
        if wire is not None and target is not None:
            connect, read = _seconds(self.timeout)
            try:
                response = await wire.post(target, body, all_headers, auth, connect, read, full)
            except Failed as exc:
                if exc.timeout:
                    raise TimeoutError_(
                        f"POST {describe_url(url)} timed out: {exc.kind}") from None
                raise TransportError(f"POST {describe_url(url)} failed: {exc.kind}: "
                                     f"{short(str(exc), 200)}") from None
        else:
            response = await _httpx.post(self.client, url, body, all_headers, auth, params)
        took = time.monotonic() - sent
        await heavy_step()  # reading an answer (and what follows it) is a step of its own
        status = response.status_code
        held_until = note_answer(self.pace, key, self.retry, status, response.headers, took)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("POST %s -> %d (%d bytes sent)", describe_url(url), status, len(body))
        text = response.text
        error = answer_error(status, response.headers, text, url, self.retry, held_until)
        if error is not None:
            raise error
        return Answer(status, text, str(response.url))

    def forget_after_fork(self) -> None:
        """In a fork child: the parent's connections and client stay the parent's."""
        if self._wire is not None:
            self._wire.forget_after_fork()
        if self._owns_client:
            self._client, self._client_loop = None, None

    async def aclose(self) -> None:
        """Close the pooled connections (only of a client this transport created)."""
        if self._wire is not None:
            self._wire.close()
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None


class _WaitCut(Exception):
    """A wait between attempts was cut short by :meth:`AsyncHttpTransport.end_retries_at`."""
