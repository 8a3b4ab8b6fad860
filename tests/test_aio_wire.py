"""The asyncio transport's own connections: what httpx would send, and httpx's path wherever
it would do more (a caller's client, proxies), over real HTTP on 127.0.0.1."""

from __future__ import annotations

import http.server
import json
import socket
import ssl
import time
from typing import Any

import httpx
import pytest

from consumers.aio import AsyncConsumer, AsyncHttpTransport
from consumers.errors import RefusedError, TimeoutError_, TransportError
from consumers.retry import RetryPolicy
from tests.fronts import reply
from tests.test_direct_posts import event

pytestmark = pytest.mark.anyio
ONCE = RetryPolicy(max_attempts=1)
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def connections(transport: AsyncHttpTransport) -> int:
    """Idle connections the transport keeps of its own (white-box: which path was taken)."""
    wire = transport._wire
    return 0 if wire is None else sum(len(c) for c in wire._idle.values())


def old_event(name: str) -> str:
    return json.dumps({"event": name, "properties": {
        "token": "t", "distinct_id": "u", "time": 1_700_000_000_000, "$insert_id": name}})


async def test_the_own_connections_send_what_httpx_sends(collector: Any) -> None:
    account = ("svc-user", "svc-secret", "12345")
    ours = AsyncConsumer(api_host=collector.url, retry=ONCE, service_account=account)
    async with httpx.AsyncClient() as client:
        theirs = AsyncConsumer(api_host=collector.url, retry=ONCE, service_account=account,
                               client=client)
        for consumer in (ours, theirs):
            await consumer.send_batch("event", [event("a"), event("b")])
            await consumer.send_batch("import", [old_event("i1")])
    assert connections(ours.transport) == 1 and connections(theirs.transport) == 0
    await ours.aclose()
    seen = collector.requests()
    assert len(seen) == 4
    kept = ("Content-Type", "Content-Encoding", "Content-Length", "Authorization", "User-Agent",
            "Host")
    for mine, httpx_s in ((seen[0], seen[2]), (seen[1], seen[3])):
        assert (mine["method"], mine["path"], mine["query"], mine["bytes"]) == (
            httpx_s["method"], httpx_s["path"], httpx_s["query"], httpx_s["bytes"])
        assert {k: mine["headers"].get(k) for k in kept} == {
            k: httpx_s["headers"].get(k) for k in kept}
    assert seen[1]["query"]["project_id"] == "12345"
    assert seen[1]["headers"]["Authorization"].startswith("Basic ")
    assert [m["event"] for m in collector.messages("track")] == ["a", "b", "a", "b"]


async def test_one_connection_carries_request_after_request(front: Any) -> None:
    peers = []

    def ok(handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        peers.append(handler.client_address)
        reply(handler, 200, b"1")

    server = front(ok)
    transport = AsyncHttpTransport(retry=ONCE)
    for _ in range(3):
        answer = await transport.post(server.url + "/track", b"[]", JSON)
        assert (answer.status, answer.text) == (200, "1")
    assert len(set(peers)) == 1
    await transport.aclose()


async def test_a_connection_the_server_closed_while_idle_is_replaced(front: Any) -> None:
    bodies = []

    def once_then_close(handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        bodies.append(body)
        reply(handler, 200, b"1")  # keep-alive as far as the client knows ...
        handler.close_connection = True  # ... but the server closes it

    server = front(once_then_close)
    transport = AsyncHttpTransport(retry=ONCE)
    await transport.post(server.url + "/track", b"[1]", JSON)
    await transport.post(server.url + "/track", b"[2]", JSON)  # one attempt: no retry hid it
    assert bodies == [b"[1]", b"[2]"]
    await transport.aclose()


async def test_chunked_and_unframed_answers_are_read_in_their_charset(front: Any) -> None:
    refusal = '{"error": "jeton refusé", "status": 0}'.encode("latin-1")

    def chunked(handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json; charset=latin-1")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for piece in (refusal[:10], refusal[10:]):
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        handler.wfile.write(b"0\r\n\r\n")

    def unframed(handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        handler.send_response(200)  # no length: the answer ends with the connection
        handler.send_header("Content-Type", "application/json; charset=latin-1")
        handler.end_headers()
        handler.wfile.write(refusal)
        handler.close_connection = True

    for answer in (chunked, unframed):
        server = front(answer)
        consumer = AsyncConsumer(api_host=server.url, retry=ONCE)
        with pytest.raises(RefusedError, match="jeton refusé"):
            await consumer.send_batch("event", [event("a")])
        await consumer.aclose()


async def test_a_large_body_arrives_whole(collector: Any) -> None:
    consumer = AsyncConsumer(api_host=collector.url, retry=ONCE)
    names = [f"e{i}-" + "x" * 300 for i in range(1000)]  # ~340 KB: written in pieces
    await consumer.send_batch("event", [event(n) for n in names])
    assert [m["event"] for m in collector.messages("track")] == names
    assert connections(consumer.transport) == 1
    await consumer.aclose()


async def test_timeouts_and_refused_connections_raise_delivery_errors(front: Any) -> None:
    def late(handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        time.sleep(3.0)
        reply(handler, 200, b"1")

    server = front(late)
    transport = AsyncHttpTransport(retry=ONCE, timeout=(1.0, 0.2))
    started = time.monotonic()
    with pytest.raises(TimeoutError_, match="ReadTimeout"):
        await transport.post(server.url + "/track", b"[]", JSON)
    assert time.monotonic() - started < 2.5  # the timeout ended it, not the answer
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(TransportError, match="ConnectError"):
        await transport.post(f"http://127.0.0.1:{port}/track", b"[]", JSON)
    await transport.aclose()


async def test_tls_is_verified_on_the_own_connections(front: Any, certificate: Any) -> None:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def ok(handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        reply(handler, 200, b"1")

    server = front(ok, tls=context)
    untrusting = AsyncHttpTransport(retry=ONCE)  # the default CA bundle: not trusted
    with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
        await untrusting.post(server.url + "/track", b"[]", JSON)
    trusting = AsyncHttpTransport(retry=ONCE, verify=str(cert))
    await trusting.post(server.url + "/track", b"[]", JSON)
    await trusting.post(server.url + "/track", b"[]", JSON)
    assert connections(trusting) == 1 and len(server.seen) == 2
    await untrusting.aclose()
    await trusting.aclose()


async def test_a_proxy_in_the_environment_takes_httpx_path(collector: Any,
                                                           monkeypatch: Any) -> None:
    consumer = AsyncConsumer(api_host=collector.url, retry=ONCE)
    await consumer.send_batch("event", [event("a")])
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "")
    with pytest.raises(TransportError):
        await consumer.send_batch("event", [event("b")])
    monkeypatch.delenv("HTTP_PROXY")
    await consumer.send_batch("event", [event("c")])
    assert [m["event"] for m in collector.messages("track")] == ["a", "c"]
    await consumer.aclose()


async def test_a_password_in_the_url_is_sent_as_basic_auth_and_kept_out_of_errors(
        front: Any) -> None:
    secret = "pa55-in-the-url"

    def refuse(handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        reply(handler, 503, b"busy")

    server = front(refuse)
    transport = AsyncHttpTransport(retry=ONCE)
    url = server.url.replace("http://", f"http://ann:{secret}@") + "/track"
    with pytest.raises(Exception) as caught:
        await transport.post(url, b"[]", JSON)
    assert secret not in str(caught.value) and secret not in repr(caught.value)
    assert server.seen[0]["headers"]["Authorization"].startswith("Basic ")
    assert connections(transport) == 1
    await transport.aclose()
