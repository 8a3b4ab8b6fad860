"""Consumer against the local collector over real HTTP: hosts, auth, gzip, retries.

Every assertion is about what the collector received: which host and path,
which headers and query, how many attempts, which records were stored.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from typing import Any, Optional

import pytest
import requests
from consumer_messages import (
    ENDPOINT,
    PATHS,
    TOKEN,
    _ids,
    event,
    now_ms,
    profile_update,
    quick_retry,
)

from consumers.collector import Collector
from consumers.consumer import MAX_BATCH, Consumer, ServiceAccount
from consumers.endpoints import MESSAGE_TYPES
from consumers.errors import (
    ConfigurationError,
    DeliveryError,
    PayloadTooLargeError,
    RecordsRejectedError,
    RefusedError,
    TimeoutError_,
    TransportError,
)
from consumers.retry import RetryPolicy
from tests.local_routing import local_session

SA_USER = "sa.importer"
SA_SECRET = "sa-secret-9f2c41d7e0"
PROJECT_ID = "4242"

HOSTS = {"us": "api.mixpanel.com", "eu": "api-eu.mixpanel.com", "in": "api-in.mixpanel.com"}


def fast(attempts: int = 4, **kwargs: Any) -> RetryPolicy:
    return quick_retry(attempts, **kwargs)


def group_update() -> str:
    return json.dumps({"$token": TOKEN, "$group_key": "company", "$group_id": "acme",
                       "$set": {"seats": next(_ids)}})


BUILD = {"event": event, "profile_update": profile_update, "group_update": group_update,
         "import": event}


def headers(entry: dict[str, Any]) -> dict[str, str]:
    """A logged request's headers with lower-cased names."""
    return {k.lower(): v for k, v in entry["headers"].items()}


def attempts(collector: Any, path: Optional[str] = None) -> list[dict[str, Any]]:
    """The requests the collector saw (on ``path``), in order."""
    return [r for r in collector.requests() if path is None or r["path"] == path]


@pytest.fixture
def cloud(collector: Any) -> Iterator[requests.Session]:
    """A session that delivers Mixpanel's three regional hosts to the collector."""
    session = local_session(collector.url, tuple(HOSTS.values()))
    yield session
    session.close()


# -- where messages go ---------------------------------------------------------------


@pytest.mark.parametrize("message_type", MESSAGE_TYPES)
@pytest.mark.parametrize("region", ["us", "eu", "in"])
def test_every_type_reaches_its_regions_host_and_path(
    collector: Any, cloud: requests.Session, region: str, message_type: str
) -> None:
    message = BUILD[message_type]()
    with Consumer(region=region, project_token=TOKEN, session=cloud, retry=fast()) as consumer:
        consumer.send(message_type, message)
    (request,) = collector.requests()
    assert headers(request)["host"] == HOSTS[region]
    assert request["path"] == PATHS[message_type]
    assert request["status"] == 200
    if message_type == "import":
        assert request["query"]["strict"] == "1"
    else:
        assert request["query"] == {"verbose": "1", "ip": "0"}
    assert collector.messages(ENDPOINT[message_type]) == [json.loads(message)]


@pytest.mark.parametrize("message_type", MESSAGE_TYPES)
def test_the_default_region_is_the_us_host(
    collector: Any, cloud: requests.Session, message_type: str
) -> None:
    with Consumer(project_token=TOKEN, session=cloud, retry=fast()) as consumer:
        consumer.send(message_type, BUILD[message_type]())
    (request,) = collector.requests()
    assert (headers(request)["host"], request["path"]) == ("api.mixpanel.com",
                                                          PATHS[message_type])


@pytest.mark.parametrize("suffix", ["", "/"])
def test_a_custom_api_host_gets_every_type(collector: Any, suffix: str) -> None:
    with Consumer(api_host=collector.url + suffix, project_token=TOKEN, retry=fast()) as consumer:
        for message_type in MESSAGE_TYPES:
            consumer.send(message_type, BUILD[message_type]())
    seen = [(r["path"], r["status"], headers(r)["host"]) for r in collector.requests()]
    host = f"127.0.0.1:{collector.port}"
    assert seen == [(PATHS[t], 200, host) for t in MESSAGE_TYPES]
    for message_type in MESSAGE_TYPES:
        assert len(collector.messages(ENDPOINT[message_type])) == 1


def test_per_type_urls_route_each_type_to_its_own_host(collector: Any) -> None:
    """The Ruby ``Consumer.new(events, update, groups, import)`` form, as keywords."""
    own = {"event": "events.example.test", "profile_update": "people.example.test",
           "group_update": "groups.example.test", "import": "import.example.test"}
    session = local_session(collector.url, tuple(own.values()))
    consumer = Consumer(
        events_url="https://events.example.test/track",
        update_url="https://people.example.test/engage",
        groups_url="https://groups.example.test/groups",
        import_url="https://import.example.test/import",
        project_token=TOKEN, session=session, retry=fast(),
    )
    with consumer, session:
        for message_type in MESSAGE_TYPES:
            consumer.send(message_type, BUILD[message_type]())
    seen = [(headers(r)["host"], r["path"], r["status"]) for r in collector.requests()]
    assert seen == [(own[t], PATHS[t], 200) for t in MESSAGE_TYPES]


def test_a_per_type_url_overrides_only_its_type(collector: Any, cloud: requests.Session) -> None:
    consumer = Consumer(region="eu", events_url=collector.url + "/track", project_token=TOKEN,
                        session=cloud, retry=fast())
    with consumer:
        for message_type in MESSAGE_TYPES:
            consumer.send(message_type, BUILD[message_type]())
    hosts = {r["path"]: headers(r)["host"] for r in collector.requests()}
    assert hosts == {"/track": f"127.0.0.1:{collector.port}", "/engage": "api-eu.mixpanel.com",
                     "/groups": "api-eu.mixpanel.com", "/import": "api-eu.mixpanel.com"}


def test_a_batch_is_one_request(collector: Any) -> None:
    messages = [event() for _ in range(5)]
    with Consumer(api_host=collector.url, retry=fast()) as consumer:
        consumer.send_batch("event", messages)
        consumer.send_batch("event", [])
        with pytest.raises(ValueError, match="at most 2000"):
            consumer.send_batch("event", [event()] * (MAX_BATCH + 1))
    (request,) = collector.requests()
    assert request["n_records"] == request["accepted"] == 5
    assert collector.messages("track") == [json.loads(m) for m in messages]


def test_messages_are_sent_byte_for_byte(collector: Any) -> None:
    """Key order, spacing and escapes survive: the consumer never re-serialises."""
    odd = [
        f'{{ "properties" : {{"time": {now_ms()}, "$insert_id": "raw-{i}", "token": "{TOKEN}",'
        ' "distinct_id": "u1", "city": "Zürich"},   "event":"Raw"}'
        for i in range(3)
    ]
    with Consumer(api_host=collector.url, project_token=TOKEN, import_gzip=False,
                  retry=fast()) as consumer:
        consumer.send_batch("event", odd)
        consumer.send_batch("import", odd)
    body = ("[" + ",".join(odd) + "]").encode("utf-8")
    assert [r["bytes"] for r in collector.requests()] == [len(body), len(body)]
    for endpoint in ("track", "import"):
        stored = collector.messages(endpoint)
        assert [list(m) for m in stored] == [["properties", "event"]] * 3
        assert list(stored[0]["properties"]) == ["time", "$insert_id", "token", "distinct_id",
                                                 "city"]
        assert stored[0]["properties"]["city"] == "Zürich"


def test_a_refused_track_batch_raises_and_is_not_retried(collector: Any) -> None:
    bad = json.dumps({"event": "No token", "properties": {"distinct_id": "u1"}})
    with Consumer(api_host=collector.url, retry=fast(5)) as consumer:
        with pytest.raises(RefusedError) as caught:
            consumer.send("event", bad)
    assert caught.value.status == 200
    assert "token" in str(caught.value)
    assert caught.value.messages == [("event", bad)]
    assert len(collector.requests()) == 1
    assert collector.messages("track") == []


# -- /import authentication ----------------------------------------------------------


def _secret_free(text: str) -> None:
    assert SA_SECRET not in text
    for user_password in (f"{SA_USER}:{SA_SECRET}", f"{SA_SECRET}:"):
        assert base64.b64encode(user_password.encode()).decode() not in text


def test_import_with_a_service_account() -> None:
    with Collector(service_accounts={SA_USER: SA_SECRET}, project_id=PROJECT_ID) as c:
        account = (SA_USER, SA_SECRET, int(PROJECT_ID))
        with Consumer(api_host=c.url, service_account=account, retry=fast()) as consumer:
            assert consumer.auth_kind == "service_account"
            consumer.send("import", event())
        (request,) = c.requests()
        assert request["status"] == 200
        assert request["query"] == {"strict": "1", "project_id": PROJECT_ID}
        assert headers(request)["x-collector-service-account"] == SA_USER
        assert len(c.messages("import")) == 1


def test_import_with_the_project_token() -> None:
    with Collector(project_token=TOKEN) as c:
        with Consumer(api_host=c.url, project_token=TOKEN, retry=fast()) as consumer:
            assert consumer.auth_kind == "project_token"
            consumer.send("import", event())
        (request,) = c.requests()
        assert request["status"] == 200
        assert request["query"] == {"strict": "1"}
        assert "x-collector-service-account" not in headers(request)
        assert headers(request)["authorization"].startswith("Basic ")
        assert len(c.messages("import")) == 1


@pytest.mark.parametrize("credentials", [
    {"service_account": (SA_USER, "wrong-secret", PROJECT_ID)},
    {"service_account": (SA_USER, SA_SECRET, "999")},
    {"project_token": "not-the-token"},
])
def test_wrong_import_credentials_get_401_once(credentials: dict[str, Any]) -> None:
    with Collector(service_accounts={SA_USER: SA_SECRET}, project_id=PROJECT_ID,
                   project_token=TOKEN) as c:
        with Consumer(api_host=c.url, retry=fast(5), **credentials) as consumer:
            with pytest.raises(RefusedError) as caught:
                consumer.send("import", event())
        assert caught.value.status == 401
        assert [r["status"] for r in c.requests()] == [401]
        assert c.messages("import") == []


def test_import_without_credentials_sends_nothing(collector: Any) -> None:
    with Consumer(api_host=collector.url, retry=fast()) as consumer:
        assert consumer.auth_kind is None
        with pytest.raises(ConfigurationError, match="credentials"):
            consumer.send("import", event())
        consumer.send("event", event())  # the other types need none
    assert [r["path"] for r in collector.requests()] == ["/track"]


def test_import_without_basic_auth_is_refused_by_the_collector(collector: Any) -> None:
    """What "401 without" looks like on the wire (the consumer never sends this)."""
    response = requests.post(collector.url + "/import", params={"strict": "1"},
                             data="[" + event() + "]", timeout=10,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 401
    assert collector.messages("import") == []


def test_secrets_stay_out_of_reprs_errors_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with Collector(service_accounts={SA_USER: SA_SECRET}, project_id=PROJECT_ID) as c:
        account = ServiceAccount(SA_USER, SA_SECRET, PROJECT_ID)
        consumer = Consumer(api_host=c.url, service_account=account, retry=fast(3))
        c.fail_next(5, 503, path="/import")
        with pytest.raises(RefusedError) as failed:
            consumer.send("import", event())
        assert [r["status"] for r in c.requests()] == [503, 503, 503]
        c.reset()
        c.fail_next(1, 401, path="/import", body={"error": "Invalid credentials"})
        with pytest.raises(RefusedError) as refused:
            consumer.send("import", event())
        consumer.close()
        wrong = Consumer(api_host=c.url, service_account=(SA_USER, SA_SECRET + "x", PROJECT_ID),
                         retry=fast())
        with pytest.raises(RefusedError) as real_401:
            wrong.send("import", event())
        wrong.close()
        assert real_401.value.status == 401
        with Consumer(api_host=c.url, api_secret=SA_SECRET, retry=fast()) as by_secret:
            assert by_secret.auth_kind == "api_secret"
            with pytest.raises(RefusedError) as secret_401:
                by_secret.send("import", event())
            assert secret_401.value.status == 401
            _secret_free(repr(by_secret))
    assert "retrying" in caplog.text  # the retries were logged ...
    for error in (failed.value, refused.value, real_401.value, secret_401.value):
        for text in (str(error), repr(error), error.body, repr(error.args)):
            _secret_free(text)
    for text in (repr(consumer), repr(consumer.transport), repr(account), caplog.text):
        _secret_free(text)
    for request in c.requests():
        _secret_free(json.dumps(request))


# -- gzip on /import -----------------------------------------------------------------


def test_import_is_gzipped_by_default(collector: Any) -> None:
    messages = [event(plan="pro", note="x" * 200) for _ in range(20)]
    with Consumer(api_host=collector.url, project_token=TOKEN, retry=fast()) as consumer:
        consumer.send_batch("import", messages)
        consumer.send_batch("event", messages)
    imported, tracked = collector.requests()
    assert headers(imported)["content-encoding"] == "gzip"
    raw = len(("[" + ",".join(messages) + "]").encode())
    assert imported["bytes"] < raw / 3
    assert "content-encoding" not in headers(tracked)  # only /import is compressed
    assert tracked["bytes"] == raw
    assert collector.messages("import") == [json.loads(m) for m in messages]


def test_import_gzip_can_be_turned_off(collector: Any) -> None:
    messages = [event() for _ in range(3)]
    with Consumer(api_host=collector.url, project_token=TOKEN, import_gzip=False,
                  retry=fast()) as consumer:
        consumer.send_batch("import", messages)
    (request,) = collector.requests()
    assert "content-encoding" not in headers(request)
    assert request["bytes"] == len(("[" + ",".join(messages) + "]").encode())
    assert len(collector.messages("import")) == 3


# -- retries ---------------------------------------------------------------------------


@pytest.mark.parametrize("message_type", ["event", "import"])
def test_dropped_connections_are_retried(collector: Any, message_type: str) -> None:
    path = PATHS[message_type]
    collector.drop_next(2, path=path)
    with Consumer(api_host=collector.url, project_token=TOKEN, retry=fast(4)) as consumer:
        consumer.send(message_type, event())
    assert [r["status"] for r in attempts(collector, path)] == [None, None, 200]
    assert len(collector.messages(ENDPOINT[message_type])) == 1


def test_connection_errors_give_up_after_max_attempts(collector: Any) -> None:
    collector.drop_next(10)
    message = event()
    with Consumer(api_host=collector.url, retry=fast(3)) as consumer:
        with pytest.raises(TransportError) as caught:
            consumer.send("event", message)
    assert not isinstance(caught.value, RefusedError)
    assert caught.value.messages == [("event", message)]
    assert len(collector.requests()) == 3
    assert collector.faults()[0]["count"] == 7


def test_a_closed_port_is_a_transport_error() -> None:
    with Collector() as c:
        url = c.url
    with Consumer(api_host=url, retry=fast(2)) as consumer:
        with pytest.raises(TransportError):
            consumer.send("event", event())


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
@pytest.mark.parametrize("message_type", ["event", "import"])
def test_rate_limits_and_server_errors_are_retried(
    collector: Any, status: int, message_type: str
) -> None:
    path = PATHS[message_type]
    collector.fail_next(2, status, path=path)
    with Consumer(api_host=collector.url, project_token=TOKEN, retry=fast(4)) as consumer:
        consumer.send(message_type, event())
    assert [r["status"] for r in attempts(collector, path)] == [status, status, 200]
    assert len(collector.messages(ENDPOINT[message_type])) == 1


def test_retries_stop_at_max_attempts_with_the_last_answer(collector: Any) -> None:
    collector.fail_next(10, 503)
    with Consumer(api_host=collector.url, retry=fast(3)) as consumer:
        with pytest.raises(RefusedError) as caught:
            consumer.send("event", event())
    assert caught.value.status == 503
    assert [r["status"] for r in collector.requests()] == [503, 503, 503]
    assert collector.faults()[0]["count"] == 7
    assert collector.messages("track") == []


@pytest.mark.parametrize("status", [400, 401, 403, 413])
@pytest.mark.parametrize("message_type", ["event", "profile_update", "import"])
def test_final_answers_are_never_retried(collector: Any, status: int, message_type: str) -> None:
    path = PATHS[message_type]
    collector.fail_next(3, status, path=path)
    message = BUILD[message_type]()
    with Consumer(api_host=collector.url, project_token=TOKEN, retry=fast(5)) as consumer:
        with pytest.raises(RefusedError) as caught:
            consumer.send(message_type, message)
    assert caught.value.status == status
    assert isinstance(caught.value, PayloadTooLargeError) == (status == 413)
    assert not isinstance(caught.value, RecordsRejectedError)  # no failed_records in the body
    assert caught.value.messages == [(message_type, message)]
    assert [r["status"] for r in collector.requests()] == [status]
    assert collector.faults()[0]["count"] == 2


def test_a_real_413_from_an_oversized_import_is_not_retried(collector: Any) -> None:
    """Over 10 MiB: the collector itself answers 413, like the service."""
    big = [event(blob="x" * 5500) for _ in range(2000)]
    with Consumer(api_host=collector.url, project_token=TOKEN, import_gzip=False,
                  retry=fast(5)) as consumer:
        with pytest.raises(PayloadTooLargeError) as caught:
            consumer.send_batch("import", big)
    assert caught.value.status == 413
    assert len(caught.value.messages) == 2000
    assert [r["status"] for r in collector.requests()] == [413]
    assert collector.messages("import") == []


def test_retry_after_is_honoured() -> None:
    arrivals: list[float] = []
    with Collector(on_request=lambda entry: arrivals.append(time.monotonic())) as c:
        c.fail_next(1, 429, retry_after=1)
        with Consumer(api_host=c.url, retry=fast(3)) as consumer:
            consumer.send("event", event())
        assert [r["status"] for r in c.requests()] == [429, 200]
        assert len(c.messages("track")) == 1
    assert arrivals[1] - arrivals[0] >= 0.9 * 1.0


def test_retry_after_as_an_http_date_is_honoured() -> None:
    import email.utils

    arrivals: list[float] = []
    with Collector(on_request=lambda entry: arrivals.append(time.monotonic())) as c:
        # whole seconds on the wire: the wait is between 1 and 2 s from now
        when = email.utils.formatdate(time.time() + 2, usegmt=True)
        c.fail_next(1, 503, retry_after=when)
        with Consumer(api_host=c.url, retry=fast(3)) as consumer:
            consumer.send("event", event())
        assert [r["status"] for r in c.requests()] == [503, 200]
        assert len(c.messages("track")) == 1
    assert arrivals[1] - arrivals[0] >= 0.9


def test_retry_after_past_the_budget_stops_at_once(collector: Any) -> None:
    collector.fail_next(3, 503, retry_after=30)
    started = time.monotonic()
    with Consumer(api_host=collector.url, retry=fast(5, max_elapsed=2.0)) as consumer:
        with pytest.raises(RefusedError) as caught:
            consumer.send("event", event())
    assert time.monotonic() - started < 2.0
    assert caught.value.status == 503
    assert getattr(caught.value, "retry_after", None) == 30
    assert len(collector.requests()) == 1


def test_a_long_retry_after_is_capped_by_the_policy(collector: Any) -> None:
    collector.fail_next(2, 429, retry_after=30)
    started = time.monotonic()
    with Consumer(api_host=collector.url, retry=fast(3, max_retry_after=0.05)) as consumer:
        consumer.send("event", event())
    assert time.monotonic() - started < 5.0
    assert [r["status"] for r in collector.requests()] == [429, 429, 200]
    assert len(collector.messages("track")) == 1


def test_the_total_retry_budget_stops_retrying(collector: Any) -> None:
    collector.fail_next(1000, 503)
    policy = fast(1000, initial_backoff=0.05, max_backoff=0.05, multiplier=1.0,
                  max_elapsed=0.5)
    started = time.monotonic()
    with Consumer(api_host=collector.url, retry=policy) as consumer:
        with pytest.raises(RefusedError):
            consumer.send("event", event())
    elapsed = time.monotonic() - started
    made = len(collector.requests())
    assert 2 <= made <= 12
    assert elapsed < 3.0
    assert collector.faults()[0]["count"] == 1000 - made


@pytest.mark.parametrize("after_headers", [False, True], ids=["before-headers", "in-body"])
def test_a_read_timeout_raises_timeout_error(collector: Any, after_headers: bool) -> None:
    collector.delay_next(1, 1.0, after_headers=after_headers)
    message = event()
    with Consumer(api_host=collector.url, timeout=(2.0, 0.2), retry=RetryPolicy.never()) as c:
        with pytest.raises(TimeoutError_) as caught:
            c.send("event", message)
    assert isinstance(caught.value, TransportError)
    assert caught.value.messages == [("event", message)]
    assert "timed out" in str(caught.value)
    assert len(collector.requests()) == 1


def test_a_timed_out_request_is_retried_with_the_same_insert_ids(collector: Any) -> None:
    collector.delay_next(1, 1.0)
    messages = [event() for _ in range(3)]
    with Consumer(api_host=collector.url, timeout=(2.0, 0.2), retry=fast(3)) as consumer:
        consumer.send_batch("event", messages)
    assert len(collector.requests()) == 2
    # the slow first request was processed too; the retry repeats the same events
    assert len(collector.messages("track")) == 6
    unique = collector.unique("track")
    assert [m["properties"]["$insert_id"] for m in unique] == [
        json.loads(m)["properties"]["$insert_id"] for m in messages
    ]


def test_strict_import_partial_failure_reports_exactly_the_refused(collector: Any) -> None:
    good = [event() for _ in range(3)]
    future = event(time=now_ms() + 3 * 3_600_000)
    placeholder = event(distinct_id="undefined")
    batch = [good[0], future, good[1], placeholder, good[2]]
    with Consumer(api_host=collector.url, project_token=TOKEN, retry=fast(5)) as consumer:
        with pytest.raises(RecordsRejectedError) as caught:
            consumer.send_batch("import", batch)
    error = caught.value
    assert error.num_imported == 3
    assert [r.index for r in error.failed_records] == [1, 3]
    assert [r.record for r in error.failed_records] == [("import", future),
                                                        ("import", placeholder)]
    assert error.failed_records[0].field == "properties.time"
    assert "future" in error.failed_records[0].message
    assert "placeholder" in error.failed_records[1].message
    assert error.failed_records[1].insert_id == json.loads(placeholder)["properties"]["$insert_id"]
    assert error.messages == [("import", future), ("import", placeholder)]
    assert [r["status"] for r in collector.requests()] == [400]  # not retried
    assert collector.messages("import") == [json.loads(m) for m in good]


def test_delivery_errors_are_one_family(collector: Any) -> None:
    collector.fail_next(1, 500)
    with Consumer(api_host=collector.url, retry=RetryPolicy.never()) as consumer:
        with pytest.raises(DeliveryError):
            consumer.send("event", event())


def test_a_password_in_a_proxy_url_stays_out_of_repr_and_errors(collector: Any) -> None:
    port = collector.url.rsplit(":", 1)[1]
    consumer = Consumer(api_host=f"http://relay:hunter2@127.0.0.1:{port}",
                        retry=RetryPolicy(max_attempts=1))
    assert "hunter2" not in repr(consumer) and "relay:***@" in repr(consumer)
    collector.fail_next(1, 400)
    with pytest.raises(RefusedError) as info:
        consumer.send("event", json.dumps({"event": "e", "properties": {"token": "t"}}))
    assert "hunter2" not in str(info.value) and "hunter2" not in repr(info.value)
    consumer.close()


def test_one_transport_retries_each_delivery_afresh(collector: Any) -> None:
    sleeps: list[float] = []
    from consumers._http import HttpTransport

    transport = HttpTransport(retry=fast(3, jitter=0), sleep=sleeps.append)
    with Consumer(api_host=collector.url, transport=transport) as consumer:
        for name in ("a", "b"):
            collector.fail_next(2, 503)
            consumer.send("event", event(name))
    transport.close()
    assert len(attempts(collector, "/track")) == 6
    assert sleeps == [fast(3, jitter=0).wait(1), fast(3, jitter=0).wait(2)] * 2
