"""The transport's direct route to urllib3's pool: what requests would send, and requests'
own path wherever requests would do more (redirects, cookies, proxies, TLS settings)."""

from __future__ import annotations

import http.server
import json
import ssl
from typing import Any

import pytest
import requests

from consumers import Consumer
from consumers.errors import TransportError
from consumers.retry import RetryPolicy
from tests.fronts import reply

ONCE = RetryPolicy(max_attempts=1)
ACCOUNT = ("svc-user", "svc-secret", "12345")


def event(name: str) -> str:
    return json.dumps({"event": name, "properties": {"token": "t", "distinct_id": "u"}})


def direct_routes(consumer: Consumer) -> list[Any]:
    """The routes the consumer's transport found direct (white-box: which path was taken)."""
    direct = consumer.transport._direct
    assert direct is not None
    return [route for _, route in direct._routes.values() if route is not None]


OK = b'{"status": 1, "error": null}'


def test_the_direct_route_sends_what_requests_sends(collector):
    ours = Consumer(api_host=collector.url, retry=ONCE, service_account=ACCOUNT)
    session = requests.Session()
    session.headers.clear()  # as the transport's own session: no default headers
    plain = Consumer(api_host=collector.url, retry=ONCE, service_account=ACCOUNT,
                     session=session)  # a caller's session: requests' own path
    old = json.dumps({"event": "old", "properties": {
        "token": "t", "distinct_id": "u", "time": 1_700_000_000_000, "$insert_id": "i1"}})
    for consumer in (ours, plain):
        consumer.send("event", event("a"))
        consumer.send("import", old)
    assert len(direct_routes(ours)) == 2
    seen = collector.requests()
    assert len(seen) == 4

    def shape(request: dict[str, Any]) -> tuple[Any, ...]:
        headers = {k.lower(): v for k, v in request["headers"].items()}
        headers.pop("content-length")
        return request["method"], request["path"], sorted(request["query"].items()), headers

    assert shape(seen[0]) == shape(seen[2]) and shape(seen[1]) == shape(seen[3])
    assert "authorization" in {k.lower() for k in seen[1]["headers"]}
    # only what the consumer gives, and what HTTP/1.1 needs (no Accept, no Connection)
    assert sorted(k.lower() for k in seen[0]["headers"]) == [
        "accept-encoding", "content-length", "content-type", "host", "user-agent"]
    assert seen[0]["headers"].get("Accept-Encoding") == "identity"
    ours.close()
    plain.close()


def test_a_redirect_is_followed_as_requests_follows_it(collector, front):
    def moved(handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        reply(handler, 307, headers=(("Location", collector.url + handler.path),))

    server = front(moved)
    consumer = Consumer(api_host=server.url, retry=ONCE)
    for name in ("a", "b", "c"):
        consumer.send("event", event(name))
    assert [m["event"] for m in collector.messages("track")] == ["a", "b", "c"]
    # the first answer redirected: that request went again through requests, as did the rest
    assert len(server.seen) == 4
    assert direct_routes(consumer) == []
    consumer.close()


def test_a_cookie_the_server_sets_is_sent_back_as_requests_would(front):
    def sets_cookie(handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        reply(handler, 200, OK, (("Content-Type", "application/json"),
                                 ("Set-Cookie", "lb=node-7; Path=/")))

    server = front(sets_cookie)
    consumer = Consumer(api_host=server.url, retry=ONCE)
    consumer.send("event", event("a"))
    consumer.send("event", event("b"))
    assert [s["headers"].get("Cookie") for s in server.seen] == [None, "lb=node-7"]
    assert len(consumer.transport.session.cookies) == 1
    consumer.close()


def test_an_answer_in_another_charset_is_read_in_it(front):
    refusal = '{"error": "jeton refusé", "status": 0}'.encode("latin-1")

    def latin(handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        reply(handler, 200, refusal, (("Content-Type", "application/json; charset=latin-1"),))

    server = front(latin)
    consumer = Consumer(api_host=server.url, retry=ONCE)
    with pytest.raises(Exception, match="jeton refusé"):
        consumer.send("event", event("a"))
    consumer.close()


def test_tls_is_verified_on_the_direct_route(front, certificate):
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def ok(handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        reply(handler, 200, OK, (("Content-Type", "application/json"),))

    server = front(ok, tls=context)
    untrusting = Consumer(api_host=server.url, retry=ONCE)  # default CA bundle: not trusted
    with pytest.raises(TransportError, match="SSLError"):
        untrusting.send("event", event("refused"))
    trusting = Consumer(api_host=server.url, retry=ONCE, verify=str(cert))
    trusting.send("event", event("a"))
    trusting.send("event", event("b"))
    assert len(direct_routes(trusting)) == 1
    assert [s["path"].split("?")[0] for s in server.seen] == ["/track", "/track"]
    untrusting.close()
    trusting.close()


def test_a_refusal_in_a_2xx_answer_names_the_url_without_its_password(front, caplog):
    secret = "pa55-in-the-url"

    def nothing_valid(handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        reply(handler, 200, b'{"status": 0, "error": "no valid data"}',
              (("Content-Type", "application/json"),))

    server = front(nothing_valid)
    host = server.url.replace("http://", f"http://ann:{secret}@")
    for session in (None, requests.Session()):  # the direct route, and requests' path
        consumer = Consumer(api_host=host, retry=ONCE, session=session)
        with pytest.raises(Exception, match="refused the batch") as caught:
            consumer.send("event", event("a"))
        assert secret not in str(caught.value) and secret not in repr(caught.value)
        consumer.close()
    assert secret not in caplog.text
    assert all(s["headers"].get("Authorization", "").startswith("Basic ") for s in server.seen)


def test_the_route_and_the_answer_keep_credentials_out_of_their_repr(collector):
    secret = "s3cret-of-the-account"
    consumer = Consumer(api_host=collector.url.replace("http://", f"http://ann:{secret}@"),
                        retry=ONCE, service_account=("svc", secret, "12345"))
    consumer.send("event", event("a"))
    consumer.send("import", json.dumps({"event": "old", "properties": {
        "token": "t", "distinct_id": "u", "time": 1_700_000_000_000, "$insert_id": "i2"}}))
    routes = direct_routes(consumer)
    assert len(routes) == 2
    answer = consumer.transport.post(routes[0].url, b"[]", {"Content-Type": "application/json"})
    for text in [repr(r) for r in routes] + [repr(answer)]:
        assert secret not in text and "Authorization" not in text
    consumer.close()
