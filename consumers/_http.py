"""The HTTP transport shared by the HTTP consumers (Mixpanel and PostHog).

:class:`HttpTransport` owns one ``requests.Session`` (keep-alive, a
connection pool sized for several threads; POSTs go straight to that pool
where requests would add nothing, see :mod:`consumers._direct`), applies connect and read
timeouts, verifies TLS by default, sends ``User-Agent:
tracking-toolkit/<version>``, retries under a :class:`~consumers.retry.RetryPolicy`,
and turns every failure into the delivery error family:

=================================  ==========================================
what happened                      raised (after retries, where retried)
=================================  ==========================================
connect or read timeout (any)      :class:`~consumers.errors.TimeoutError_`
refused, reset, DNS, broken body   :class:`~consumers.errors.TransportError`
413                                :class:`~consumers.errors.PayloadTooLargeError`
a status the policy retries        :class:`~consumers.retry.RetryableRefusal`
any other non-2xx status           :class:`~consumers.errors.RefusedError`
=================================  ==========================================

Interpreting a 2xx body (Mixpanel's ``{"status": 0}``, strict /import's
``failed_records``) is the consumer's job.  Credentials travel only in
``auth`` and are never part of an error, a log line or a repr.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, Callable, Optional, Union

import requests
import requests.adapters
import urllib3.exceptions

from consumers import local
from consumers._closing import Closing
from consumers._direct import Answer, DirectPosts
from consumers._fork import ForkAware, forget_pooled_connections
from consumers._loop_check import warn_if_on_event_loop
from consumers._pace import Pace, endpoint_key
from consumers._protocol.answers import (
    answer_error,
    describe_url,
    held_past_budget,
    note_answer,
    short,
)
from consumers._session import CachingAdapter, CachingSession
from consumers.errors import TimeoutError_, TransportError
from consumers.retry import RetryPolicy, retrying

__all__ = ["DEFAULT_TIMEOUT", "USER_AGENT", "HttpTransport", "version"]

log = logging.getLogger(__name__)

#: (connect, read) seconds.  Reading allows for a 10 MB /import to be processed.
DEFAULT_TIMEOUT = (5.0, 30.0)

Timeout = Union[float, tuple[float, float]]
Auth = Optional[tuple[str, str]]
#: What :meth:`HttpTransport.post` answers: read ``status_code``, ``headers``, ``text``, ``url``.
HttpAnswer = Union[requests.Response, Answer]

_TRANSPORT_ERRORS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


def version() -> str:
    """This toolkit's installed version, or ``"unknown"`` when run from a source tree."""
    try:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as _dist_version

        return _dist_version("tracking-toolkit")
    except PackageNotFoundError:
        return "unknown"


#: Sent with every request.
USER_AGENT = f"tracking-toolkit/{version()}"


#: the transport's own session (the name the tests know it by)
_Session = CachingSession


_describe = describe_url
_short = short


class HttpTransport(Closing, ForkAware):
    """POSTs bodies with keep-alive, timeouts and retries; raises the delivery errors.

    ``session`` may be a caller's own ``requests.Session`` (then it is used
    as is and not closed by :meth:`close`).  ``pool_size`` is the number of
    keep-alive connections kept per host: as many as threads posting at once.
    ``sleep`` is what waits between attempts (tests pass a recorder).
    ``pace`` remembers the service's ``Retry-After`` per endpoint (by default
    a :class:`~consumers._pace.Pace` of this transport's own, capped at the
    policy's ``max_retry_after``): every POST waits for its endpoint's hold
    first, within the retry budget and :meth:`end_retries_at`.
    """

    def __init__(
        self,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - a frozen value
        timeout: Timeout = DEFAULT_TIMEOUT,
        verify: Union[bool, str] = True,
        user_agent: str = USER_AGENT,
        session: Optional[requests.Session] = None,
        *,
        pool_size: int = 10,
        sleep: Callable[[float], None] = time.sleep,
        pace: Optional[Pace] = None,
    ) -> None:
        if not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
        self.retry = retry
        self.timeout = timeout
        self.verify = verify
        self.user_agent = user_agent
        self._retry_deadline: Optional[float] = None
        self.retried = 0  # attempts after the first, all requests together
        self.pace = Pace(max_hold=retry.max_retry_after) if pace is None else pace
        self._deadline_moved = threading.Condition()
        if sleep is time.sleep:
            sleep = self._wait_between_attempts
        self._sleep = sleep
        self._owns_session = session is None
        if session is None:
            session = CachingSession()
            adapter = CachingAdapter(
                pool_connections=4, pool_maxsize=max(1, pool_size), max_retries=0
            )
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self.session = session
        self._direct = DirectPosts(session) if isinstance(session, CachingSession) else None
        local.local_collector_url()  # a malformed TRACKING_TOOLKIT_LOCAL_COLLECTOR fails here
        # one controller for every POST: tenacity keeps each run's state apart
        self._retrying = retrying(retry, sleep=sleep, deadline=lambda: self._retry_deadline)
        self._watch_forks()

    def end_retries_at(self, deadline: Optional[float]) -> None:
        """Start no retry that would end after ``deadline`` (``time.monotonic()``; None: lift).

        A wait between attempts in progress ends at once.  For a shutdown
        that must finish in time: the last error is raised at the deadline,
        and the messages stay with whoever sent them.
        """
        with self._deadline_moved:
            self._retry_deadline = deadline
            self._deadline_moved.notify_all()

    def _wait_between_attempts(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        with self._deadline_moved:
            while True:
                deadline = self._retry_deadline
                if deadline is not None and end > deadline:
                    raise _WaitCut  # the next attempt would start after the deadline
                left = end - time.monotonic()
                if left <= 0:
                    return
                self._deadline_moved.wait(left)

    def __repr__(self) -> str:
        return (
            f"HttpTransport(retry={self.retry!r}, timeout={self.timeout!r}, "
            f"verify={self.verify!r}, user_agent={self.user_agent!r})"
        )

    def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        auth: Auth = None,
        params: Optional[Mapping[str, str]] = None,
    ) -> HttpAnswer:
        """POST ``body`` to ``url``; the 2xx answer, or a delivery error after retries."""
        warn_if_on_event_loop(self)
        url, headers = local.redirect(url, headers)  # to a local collector, when one is set
        key = endpoint_key(url)
        started = time.monotonic()
        # Most POSTs succeed at once: the first attempt runs before the retry
        # loop, which starts only after a failure worth retrying and counts
        # that failure as its own first attempt (same budget, same waits).
        try:
            self._await_pace(key, url, started)
            return self._attempt(url, body, headers, auth, params, key)
        except BaseException as exc:
            if not self.retry.retries(exc):
                raise
            failed: BaseException = exc
        replay: Optional[BaseException] = failed
        response: Optional[HttpAnswer] = None
        try:
            for attempt in self._retrying:
                with attempt:
                    if replay is not None:
                        attempt.retry_state.start_time = started
                        first, replay = replay, None
                        raise first
                    self.retried += 1
                    try:
                        self._await_pace(key, url, started)
                        response = self._attempt(url, body, headers, auth, params, key)
                    except BaseException as exc:
                        failed = exc
                        raise
        except _WaitCut:
            raise failed from None
        assert response is not None
        return response

    def _await_pace(self, key: str, url: str, started: float) -> None:
        """Wait until ``key`` is no longer held; RateLimitHeld if that is past the budget."""
        pace = self.pace
        if pace.until(key) <= time.monotonic():
            return
        with self._deadline_moved:
            while True:
                until = pace.until(key)
                now = time.monotonic()
                if until <= now:
                    return
                error = held_past_budget(url, until, now, started, self.retry,
                                         self._retry_deadline)
                if error is not None:
                    raise error
                self._deadline_moved.wait(until - now)

    def _attempt(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        auth: Auth,
        params: Optional[Mapping[str, str]],
        key: str,
    ) -> HttpAnswer:
        sent = time.monotonic()
        try:
            response = self._send(url, body, headers, auth, params)
        except requests.exceptions.Timeout as exc:
            where = _describe(url)
            raise TimeoutError_(f"POST {where} timed out: {type(exc).__name__}") from None
        except _TRANSPORT_ERRORS as exc:
            where = _describe(url)
            if _read_timed_out(exc):  # while reading the body: requests calls it a ConnectionError
                raise TimeoutError_(f"POST {where} timed out reading the answer") from None
            raise TransportError(f"POST {where} failed: {_reason(exc)}") from None
        status = response.status_code
        held_until = note_answer(self.pace, key, self.retry, status, response.headers,
                                 time.monotonic() - sent)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("POST %s -> %d (%d bytes sent)", _describe(url), status, len(body))
        if 200 <= status < 300:
            return response
        error = answer_error(status, response.headers, response.text, url, self.retry,
                             held_until)
        assert error is not None
        raise error

    def _send(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        auth: Auth,
        params: Optional[Mapping[str, str]],
    ) -> HttpAnswer:
        """One POST, as ``session.post`` makes it (straight to the pool where that is the same)."""
        session = self.session
        all_headers = {"User-Agent": self.user_agent}
        all_headers.update(headers)
        if self._direct is not None:
            answer = self._direct.post(url, body, all_headers, auth, params, self.timeout,
                                       self.verify)
            if answer is not None:
                return answer
        if not isinstance(session, CachingSession):  # a caller's session: its own methods
            return session.post(
                url, data=body, headers=all_headers, auth=auth, params=params,
                timeout=self.timeout, verify=self.verify,
            )
        prepared = session.prepare_post(url, body, all_headers, auth, params)
        settings = session.merge_environment_settings(prepared.url, {}, None, self.verify, None)
        return session.send(prepared, timeout=self.timeout, allow_redirects=True, **settings)

    def close(self) -> None:
        """Close the pooled connections (only of a session this transport created)."""
        if self._owns_session:
            self.session.close()

    def _reset_in_child(self) -> None:
        """Forget the parent's keep-alive connections, in a caller's own session too.

        Sharing them, parent and child would write requests onto the same
        sockets and read each other's answers.  The retry deadline's lock is
        renewed too (a parent thread may have held it at the fork).
        """
        self._deadline_moved = threading.Condition()
        self.pace.reset_after_fork()
        adapters = {id(adapter): adapter for adapter in self.session.adapters.values()}
        for adapter in adapters.values():
            if not isinstance(adapter, requests.adapters.HTTPAdapter):
                continue
            forget_pooled_connections(adapter.poolmanager)
            for manager in adapter.proxy_manager.values():
                forget_pooled_connections(manager)
            adapter.proxy_manager = {}
            adapter.init_poolmanager(
                getattr(adapter, "_pool_connections", requests.adapters.DEFAULT_POOLSIZE),
                getattr(adapter, "_pool_maxsize", requests.adapters.DEFAULT_POOLSIZE),
                block=getattr(adapter, "_pool_block", requests.adapters.DEFAULT_POOLBLOCK),
            )


def _read_timed_out(exc: BaseException) -> bool:
    """Whether a requests error wraps urllib3's read timeout."""
    return bool(exc.args) and isinstance(exc.args[0], urllib3.exceptions.ReadTimeoutError)


def _reason(exc: BaseException) -> str:
    """A short cause for a transport failure; requests' own text can be very long."""
    inner: Any = exc.args[0] if exc.args else exc
    reason = getattr(inner, "reason", None)
    return f"{type(exc).__name__}: {_short(str(reason if reason is not None else inner), 200)}"


class _WaitCut(Exception):
    """A wait between attempts was cut short by :meth:`HttpTransport.end_retries_at`."""
