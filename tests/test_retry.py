"""RetryPolicy as a value, and the tenacity Retrying built from it (no network)."""

from __future__ import annotations

import email.utils
import time

import attrs
import pytest

from consumers.errors import PayloadTooLargeError, RefusedError, TimeoutError_, TransportError
from consumers.retry import RetryableRefusal, RetryPolicy, parse_retry_after, retrying

TINY = RetryPolicy(initial_backoff=0.001, rate_limit_backoff=0.002, max_backoff=0.01, jitter=0)


def refused(status: int, retry_after: float | None = None) -> RefusedError:
    if status == 413:
        return PayloadTooLargeError("too large", status=413)
    return RetryableRefusal("busy", status=status, retry_after=retry_after)


def run(policy: RetryPolicy, failures: list[BaseException]) -> tuple[int, list[float]]:
    """Run an operation failing with ``failures`` in turn; (attempts made, sleeps)."""
    sleeps: list[float] = []
    calls = 0
    for attempt in retrying(policy, sleep=sleeps.append):
        with attempt:
            calls += 1
            if calls <= len(failures):
                raise failures[calls - 1]
    return calls, sleeps


def test_policy_is_a_frozen_printable_value():
    policy = RetryPolicy()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        policy.max_attempts = 3  # type: ignore[misc]
    assert RetryPolicy() == RetryPolicy()
    assert "max_attempts=6" in repr(policy)
    assert "max_elapsed=60.0" in repr(policy)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 599])
def test_rate_limits_and_server_errors_are_retried(status):
    assert RetryPolicy().retries_status(status)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_final_answers_are_not_retried(status):
    assert not RetryPolicy().retries_status(status)


def test_408_is_retried_only_when_asked():
    assert not RetryPolicy().retries_status(408)
    assert RetryPolicy(retry_408=True).retries_status(408)


def test_5xx_can_be_turned_off_but_429_stays():
    policy = RetryPolicy(retry_5xx=False)
    assert not policy.retries_status(503)
    assert policy.retries_status(429)


@pytest.mark.parametrize("status", [400, 401, 403, 413])
def test_final_statuses_cannot_be_configured_as_retryable(status):
    with pytest.raises(ValueError, match=str(status)):
        RetryPolicy(retry_statuses={429, status})


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"max_elapsed": -1}, {"jitter": 1.5}, {"multiplier": 0.5}],
)
def test_invalid_values_are_refused(kwargs):
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


def test_transport_errors_are_retried_other_exceptions_are_not():
    policy = RetryPolicy()
    assert policy.retries(TransportError("reset"))
    assert policy.retries(TimeoutError_("slow"))
    assert not policy.retries(ValueError("bug"))
    assert not policy.retries(RefusedError("no", status=401))


def test_waits_double_from_the_initial_backoff_up_to_the_cap():
    policy = RetryPolicy(initial_backoff=0.5, multiplier=2, max_backoff=3, jitter=0)
    assert [policy.wait(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_rate_limit_waits_start_at_about_two_seconds_and_reach_a_minute():
    policy = RetryPolicy(jitter=0)
    waits = [policy.wait(n, status=429) for n in range(1, 8)]
    assert waits[0] == 2.0
    assert waits[1] == 4.0
    assert waits[-1] == 60.0


def test_jitter_spreads_waits_around_the_base():
    policy = RetryPolicy(initial_backoff=1.0, jitter=0.25)
    assert policy.wait(1, spread=0.0) == pytest.approx(0.75)
    assert policy.wait(1, spread=1.0) == pytest.approx(1.25)
    assert policy.wait(1, spread=0.5) == pytest.approx(1.0)


def test_retry_after_is_a_minimum_wait_capped_by_max_retry_after():
    policy = RetryPolicy(initial_backoff=0.1, jitter=0, max_retry_after=10)
    assert policy.wait(1, status=503, retry_after=4) == 4
    assert policy.wait(1, status=503, retry_after=500) == 10
    assert RetryPolicy(respect_retry_after=False, jitter=0).wait(1, retry_after=4) == 0.5


def test_parse_retry_after_reads_seconds_and_http_dates():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(30, abs=1)


def test_retrying_stops_after_max_attempts_and_reraises_the_last_error():
    policy = attrs.evolve(TINY, max_attempts=3)
    with pytest.raises(RetryableRefusal) as info:
        run(policy, [refused(503)] * 5)
    assert info.value.status == 503


def test_retrying_makes_one_attempt_for_a_final_answer():
    attempts: list[int] = []
    sleeps: list[float] = []
    with pytest.raises(PayloadTooLargeError):
        for attempt in retrying(TINY, sleep=sleeps.append):
            with attempt:
                attempts.append(1)
                raise refused(413)
    assert (len(attempts), sleeps) == (1, [])


def test_retrying_recovers_and_records_each_wait():
    calls, sleeps = run(TINY, [refused(503), TransportError("reset"), refused(429)])
    assert calls == 4
    assert sleeps == [0.001, 0.002, pytest.approx(0.008)]


def test_retrying_honours_retry_after():
    calls, sleeps = run(TINY, [refused(429, retry_after=0.05)])
    assert calls == 2
    assert sleeps == [0.05]


def test_a_wait_past_the_total_budget_is_not_made():
    policy = attrs.evolve(TINY, max_elapsed=0.5)
    sleeps: list[float] = []
    with pytest.raises(RetryableRefusal):
        for attempt in retrying(policy, sleep=sleeps.append):
            with attempt:
                raise refused(429, retry_after=30)
    assert sleeps == []


def test_never_makes_one_attempt():
    with pytest.raises(TransportError):
        run(RetryPolicy.never(), [TransportError("down")])


def test_one_retrying_serves_run_after_run():
    sleeps: list[float] = []
    controller = retrying(TINY, sleep=sleeps.append)
    for status, failures in ((503, 2), (503, 1), (429, 1), (503, 1)):
        calls = 0
        for attempt in controller:
            with attempt:
                calls += 1
                if calls <= failures:
                    raise refused(status)
        assert calls == failures + 1
    # every run starts again from its own first backoff and attempt count
    assert sleeps == [0.001, 0.002, 0.001, 0.002, 0.001]


def test_one_retrying_serves_threads_at_once():
    import threading

    policy = attrs.evolve(TINY, initial_backoff=0.01, max_backoff=0.1, max_attempts=4)
    slept: dict[str, list[float]] = {}
    lock = threading.Lock()

    def sleep(seconds: float) -> None:
        with lock:
            slept.setdefault(threading.current_thread().name, []).append(seconds)
        time.sleep(seconds)

    controller = retrying(policy, sleep=sleep)
    outcomes: dict[str, object] = {}

    def deliver(failures: int) -> None:
        calls = 0
        try:
            for attempt in controller:
                with attempt:
                    calls += 1
                    if calls <= failures:
                        raise refused(503)
            outcomes[threading.current_thread().name] = calls
        except RetryableRefusal as exc:
            outcomes[threading.current_thread().name] = exc

    threads = [threading.Thread(target=deliver, args=(f,), name=f"t{f}") for f in (0, 1, 2, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes["t0"] == 1 and outcomes["t1"] == 2 and outcomes["t2"] == 3
    assert isinstance(outcomes["t5"], RetryableRefusal)  # 4 attempts, then the last error
    assert slept == {"t1": [0.01], "t2": [0.01, 0.02], "t5": [0.01, 0.02, 0.04]}
