"""Retry policy as data, and the tenacity ``Retrying`` built from it.

A :class:`RetryPolicy` is a frozen, printable value: which failures are
retried, how long to wait between attempts, and how much time a delivery may
spend retrying in total.  :func:`retrying` turns it into a
``tenacity.Retrying``, which can be reused for any number of operations, from
any number of threads; :class:`consumers._http.HttpTransport` builds one and
uses it for every POST.

What is retried (the rules every consumer follows):

* :class:`~consumers.errors.TransportError` (connection refused or reset,
  timeouts): always.
* A :class:`~consumers.errors.RefusedError` whose status is 5xx (unless
  ``retry_5xx=False``), in ``retry_statuses`` (default ``{429}``), or 408 when
  ``retry_408=True``.
* Never 400, 401, 403 or 413: asking again cannot change the answer (413 is
  split by the buffered consumer instead).

Waits grow exponentially: after the n-th failed attempt the base wait is
``initial_backoff * multiplier ** (n - 1)`` (``rate_limit_backoff`` instead of
``initial_backoff`` after a 429, as Mixpanel asks: about 2 s doubling to about
60 s), capped at ``max_backoff``, then spread by ``jitter`` (each wait is drawn
uniformly from ``base * (1 ± jitter)``).  When the server sent ``Retry-After``
the wait is what it says instead (capped at ``max_retry_after``): the service
knows its own limit better than a guess, and the transport holds the endpoint
until then for every other request too (:mod:`consumers._pace`).  No retry is
made once ``max_attempts`` attempts were made, or when the next wait would end
after ``max_elapsed`` seconds from the first attempt: the last error is raised
instead.

The defaults give up after at most 6 attempts and 60 s, which keeps a
``flush()`` at interpreter exit bounded while riding out a short outage or a
rate limit.  Tests use tiny backoffs::

    RetryPolicy(initial_backoff=0.001, rate_limit_backoff=0.001, max_backoff=0.01)
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
import weakref
from collections.abc import Awaitable
from typing import Any, Callable, Optional

import attrs
import tenacity

from consumers.errors import RefusedError, TransportError

__all__ = [
    "NEVER_RETRIED",
    "RateLimitHeld",
    "RetryPolicy",
    "RetryableRefusal",
    "async_retrying",
    "parse_retry_after",
    "retrying",
]

log = logging.getLogger(__name__)

#: Statuses no policy retries: the same request would get the same answer.
NEVER_RETRIED = frozenset({400, 401, 403, 413})


class RetryableRefusal(RefusedError):
    """The server refused for now (429, 5xx, ...): may be retried; keeps ``Retry-After``.

    This is what a consumer raises when the retry budget runs out on such an
    answer, so callers can treat it as any :class:`RefusedError`.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        body: str = "",
        retry_after: Optional[float] = None,
        messages: Any = (),
        pending: int = 0,
    ) -> None:
        super().__init__(message, status=status, body=body, messages=messages, pending=pending)
        #: seconds the server asked to wait (``Retry-After``), if it said
        self.retry_after = retry_after
        #: ``time.monotonic()`` instant the endpoint is held until, if it is
        self.held_until: Optional[float] = None


class RateLimitHeld(RetryableRefusal):
    """Not sent: the endpoint is held (the service asked to wait) past the retry budget
    or a shutdown deadline.  Nothing was posted; the messages are the caller's to keep."""


def parse_retry_after(value: Optional[str], *, now: Optional[float] = None) -> Optional[float]:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), or None."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def _check_statuses(instance: RetryPolicy, attribute: Any, value: frozenset[int]) -> None:
    bad = sorted(value & NEVER_RETRIED)
    if bad:
        raise ValueError(f"retry_statuses must not contain {bad}: these answers are final")


def _non_negative(instance: RetryPolicy, attribute: Any, value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


@attrs.frozen
class RetryPolicy:
    """How failed deliveries are retried. Frozen, comparable, printable::

        RetryPolicy(max_attempts=1)          # never retry
        RetryPolicy(max_elapsed=300)         # ride out a five-minute outage
    """

    #: attempts in all, the first included (1 = never retry)
    max_attempts: int = attrs.field(default=6, validator=attrs.validators.ge(1))
    #: total retry budget in seconds, measured from the first attempt
    max_elapsed: float = attrs.field(default=60.0, validator=_non_negative)
    #: first wait after a connection error, timeout or 5xx
    initial_backoff: float = attrs.field(default=0.5, validator=_non_negative)
    #: first wait after a 429 (Mixpanel: start at about 2 s)
    rate_limit_backoff: float = attrs.field(default=2.0, validator=_non_negative)
    #: no computed wait is longer than this
    max_backoff: float = attrs.field(default=60.0, validator=_non_negative)
    multiplier: float = attrs.field(default=2.0, validator=attrs.validators.ge(1.0))
    #: each wait is drawn uniformly from ``base * (1 - jitter) .. base * (1 + jitter)``
    jitter: float = attrs.field(
        default=0.25, validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)]
    )
    #: statuses retried besides 5xx
    retry_statuses: frozenset[int] = attrs.field(
        default=frozenset({429}), converter=frozenset, validator=_check_statuses
    )
    #: retry every 5xx answer
    retry_5xx: bool = True
    #: retry 408 Request Timeout
    retry_408: bool = False
    #: wait at least as long as the server's ``Retry-After`` says
    respect_retry_after: bool = True
    #: ... but never longer than this for one wait
    max_retry_after: float = attrs.field(default=60.0, validator=_non_negative)

    @classmethod
    def never(cls) -> RetryPolicy:
        """A policy that makes exactly one attempt."""
        return cls(max_attempts=1)

    def retries_status(self, status: int) -> bool:
        """Whether an answer with this HTTP status is worth another attempt."""
        if status in NEVER_RETRIED:
            return False
        if status in self.retry_statuses:
            return True
        if status == 408:
            return self.retry_408
        return self.retry_5xx and 500 <= status <= 599

    def retries(self, error: BaseException) -> bool:
        """Whether this failure (one of the delivery errors) is worth another attempt."""
        if isinstance(error, TransportError):
            return True
        if isinstance(error, RateLimitHeld):
            return False  # waiting is what cannot be done within the budget
        if isinstance(error, RefusedError):
            return self.retries_status(error.status)
        return False

    def wait(
        self,
        attempts: int,
        *,
        status: Optional[int] = None,
        retry_after: Optional[float] = None,
        spread: float = 0.5,
    ) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt.

        ``status`` is the refusal's HTTP status (None for a transport error);
        ``spread`` in [0, 1] picks where in the jitter range the wait falls
        (0.5 = no jitter), so the computation is testable without randomness.
        """
        base = self.rate_limit_backoff if status == 429 else self.initial_backoff
        wait = min(self.max_backoff, base * self.multiplier ** max(0, attempts - 1))
        wait *= 1.0 + self.jitter * (2.0 * spread - 1.0)
        wait = max(0.0, min(wait, self.max_backoff))
        if self.respect_retry_after and retry_after is not None:
            return min(retry_after, self.max_retry_after)
        return wait


class _Schedule:
    """The stop and wait callbacks of a Retrying; the wait is drawn once per attempt.

    tenacity asks for the wait and for the stop decision separately (in an
    order that differs between its versions), and both must see the same
    jittered draw.  The draw is remembered per thread with a weak reference
    to the run's state, so one Retrying serves every operation and thread,
    and a finished run's error is not kept alive.
    """

    def __init__(self, policy: RetryPolicy,
                 deadline: Optional[Callable[[], Optional[float]]] = None) -> None:
        self.policy = policy
        self.deadline = deadline
        self._drawn = threading.local()

    def next_wait(self, state: tenacity.RetryCallState) -> float:
        drawn: Optional[tuple[weakref.ref[tenacity.RetryCallState], int, float]]
        drawn = getattr(self._drawn, "last", None)
        if drawn is not None and drawn[0]() is state and drawn[1] == state.attempt_number:
            return float(drawn[2])
        error = state.outcome.exception() if state.outcome is not None else None
        status = error.status if isinstance(error, RefusedError) else None
        retry_after = error.retry_after if isinstance(error, RetryableRefusal) else None
        wait = self.policy.wait(
            state.attempt_number,
            status=status,
            retry_after=retry_after,
            spread=random.random(),
        )
        self._drawn.last = (weakref.ref(state), state.attempt_number, wait)
        return wait

    def stop(self, state: tenacity.RetryCallState) -> bool:
        if state.attempt_number >= self.policy.max_attempts:
            return True
        now = time.monotonic()
        wait = self.next_wait(state)
        if self.deadline is not None:
            end = self.deadline()
            if end is not None and now + wait > end:
                return True
        return now - state.start_time + wait > self.policy.max_elapsed


def _log_retry(state: tenacity.RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    wait = state.next_action.sleep if state.next_action is not None else 0.0
    # DEBUG: one outage makes many attempts; what finally fails is raised to the caller
    log.debug(
        "delivery attempt %d failed (%s); retrying in %.3f s",
        state.attempt_number, error, wait,
    )


def retrying(
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    deadline: Optional[Callable[[], Optional[float]]] = None,
) -> tenacity.Retrying:
    """A ``tenacity.Retrying`` that runs operations under ``policy``.

    The operation signals failure by raising a delivery error
    (:class:`~consumers.errors.TransportError`, :class:`RetryableRefusal`,
    :class:`~consumers.errors.RefusedError`); what the policy does not retry,
    and the last error once the budget is spent, is re-raised unchanged.
    ``sleep`` is called with each wait (tests pass a recorder).
    ``deadline()``, when given, returns a ``time.monotonic()`` instant (or
    ``None``): no retry is started whose wait would end after it.  Build it
    once and reuse it: each ``for attempt in ...`` loop is a run of its own,
    and runs in different threads do not share state.
    """
    return tenacity.Retrying(sleep=sleep, **_decisions(policy, deadline))


def async_retrying(
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], Awaitable[None]],
    deadline: Optional[Callable[[], Optional[float]]] = None,
) -> tenacity.AsyncRetrying:
    """The asyncio form of :func:`retrying`: the same decisions, waits awaited with ``sleep``.

    Use it as ``async for attempt in controller.copy(): with attempt: ...``:
    tenacity keeps a run's state per thread, and the runs of one event loop
    share its thread, so each concurrent run needs a copy of its own.
    The stop and wait decisions are the same :class:`RetryPolicy` calls as
    the threaded transport's; only the waiting differs.
    """
    return tenacity.AsyncRetrying(sleep=sleep, **_decisions(policy, deadline))


def _decisions(policy: RetryPolicy,
               deadline: Optional[Callable[[], Optional[float]]]) -> dict[str, Any]:
    """What a tenacity controller decides under ``policy``, threaded or asyncio alike."""
    schedule = _Schedule(policy, deadline)
    return {
        "retry": tenacity.retry_if_exception(policy.retries),
        "stop": schedule.stop,
        "wait": schedule.next_wait,
        "before_sleep": _log_retry,
        "reraise": True,
    }
