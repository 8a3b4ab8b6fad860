"""The collector answers hostile input in each endpoint's own shape, in both server modes.

Deep nesting, malformed chunked framing and gzip bombs, over real HTTP (and
raw sockets where ``requests`` cannot send the bytes); the tracking pixel;
/import's required ``$insert_id``; the command line's busy port and ``--help``.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
import requests
from collector_messages import DROP, event, form

from consumers.collector import Collector
from tracker import Tracker

ROOT = Path(__file__).resolve().parent.parent
DEEP = 100_000
TOO_DEEP = "invalid JSON: nested too deeply"
TOO_LARGE = {
    "code": 413,
    "error": "request exceeds max limit of 10485760 bytes",
    "status": "Request Entity Too Large",
}


def deep_event() -> str:
    """A /track batch whose one event holds a property nested far past any decoder's limit."""
    text = json.dumps([event(nested=0)])
    return text.replace('"nested": 0', '"nested": ' + "[" * DEEP + "]" * DEEP)


def still_serves(c, session, peer_before: str) -> None:
    """The same keep-alive connection answers the next request, and the event is stored."""
    assert session.post(c.url + "/track", data=form([event()]), timeout=10).text == "1"
    peers = [r["peer"] for r in c.requests()]
    assert peers[-1] == peer_before


# -- deep nesting ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["json-body", "form-json", "form-base64"])
@pytest.mark.parametrize("path", ["/track", "/engage", "/groups"])
def test_deep_nesting_on_track_like_endpoints_answers_0(any_collector, session, path, shape):
    c = any_collector
    text = deep_event()
    if shape == "json-body":
        kw = {"data": text, "headers": {"Content-Type": "application/json"}}
    elif shape == "form-json":
        kw = {"data": {"data": text}}
    else:
        kw = {"data": {"data": base64.b64encode(text.encode()).decode()}}
    r = session.post(c.url + path, timeout=10, **kw)
    assert (r.status_code, r.text) == (200, "0")
    r = session.post(c.url + path + "?verbose=1", timeout=10, **kw)
    assert r.status_code == 200 and r.json() == {"status": 0, "error": TOO_DEEP}
    assert c.messages(path.strip("/")) == []
    still_serves(c, session, c.requests()[-1]["peer"])


def test_deep_nesting_on_import_answers_400(any_collector, session):
    c = any_collector
    for body, headers in [
        (deep_event(), {"Content-Type": "application/json"}),
        (deep_event(), {"Content-Type": "application/x-ndjson"}),
        (gzip.compress(deep_event().encode()), {"Content-Encoding": "gzip"}),
    ]:
        r = session.post(c.url + "/import", params={"strict": 1, "project_id": "1"},
                         auth=("sa", "secret"), data=body, headers=headers, timeout=10)
        assert r.status_code == 400
        assert r.json() == {"code": 400, "error": TOO_DEEP, "status": "Bad Request",
                            "num_records_imported": 0}
    assert c.messages("import") == []
    still_serves(c, session, c.requests()[-1]["peer"])


def test_deep_nesting_on_posthog_batch_answers_400(any_collector, session):
    c = any_collector
    nested = "[" * DEEP + "]" * DEEP
    body = ('{"api_key": "k", "batch": [{"event": "e", "distinct_id": "d", '
            '"properties": {"p": %s}}]}')
    r = session.post(c.url + "/batch/", data=body % nested, timeout=10,
                     headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json() == {"type": "validation_error", "code": "invalid_payload",
                        "detail": f"Malformed request data: {TOO_DEEP}", "attr": None}
    assert c.messages("posthog") == []
    still_serves(c, session, c.requests()[-1]["peer"])


def test_deep_nesting_on_the_fault_api_answers_400(any_collector, session):
    c = any_collector
    r = session.post(c.url + "/_collector/faults", data="[" * DEEP + "]" * DEEP, timeout=10)
    assert r.status_code == 400 and r.json() == {"error": TOO_DEEP, "status": 0}
    assert c.faults() == []
    assert session.post(c.url + "/track", data=form([event()]), timeout=10).text == "1"


@pytest.mark.parametrize("mode", ["threaded", "asyncio"])
def test_fast_json_stores_only_what_reads_back(session, mode):
    """orjson follows deeper nesting than json: what json cannot decode is refused, not stored."""
    pytest.importorskip("orjson")
    texts = [deep_event().replace("[" * DEEP + "]" * DEEP, "[" * depth + "]" * depth)
             for depth in (300, 990, 1020)]
    decodable = 0  # json's depth limit depends on the Python version (deeper from 3.12)
    for text in texts:
        try:
            json.loads(text)
            decodable += 1
        except RecursionError:
            pass
    with Collector(mode=mode, fast_json=True) as c:
        for text in texts:
            session.post(c.url + "/track", data=text, timeout=10,
                         headers={"Content-Type": "application/json"})
        r = session.get(c.url + "/_collector/records", timeout=10)
        assert r.status_code == 200
        assert len(r.json()) == decodable  # stored exactly what json reads back


# -- malformed chunked framing --------------------------------------------------------------


def raw_exchange(c, request: bytes) -> bytes:
    """Send raw bytes on a fresh connection; everything answered until the server closes."""
    with socket.create_connection(("127.0.0.1", c.port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return answer
            answer += chunk


@pytest.mark.parametrize("chunks", [
    b"zz\r\nab\r\n0\r\n\r\n",            # not hex
    b"-5\r\nabcde\r\n0\r\n\r\n",         # a sign is not hex
    b"0x2\r\nab\r\n0\r\n\r\n",           # nor a prefix
    b"2\r\nabXY0\r\n\r\n",               # data not followed by CRLF
    b"1" * 5000,                         # a size line that never ends
], ids=["not-hex", "negative", "0x-prefix", "no-crlf-after-data", "endless-size-line"])
def test_malformed_chunked_body_answers_400_and_closes(any_collector, chunks):
    c = any_collector
    head = b"POST /track HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    answer = raw_exchange(c, head + chunks)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Connection: close\r\n" in answer
    assert b"malformed chunked body" in answer
    assert requests.post(c.url + "/track", data=form([event()]), timeout=10).text == "1"


def test_well_formed_chunked_body_is_still_read(any_collector):
    c = any_collector
    body = json.dumps([event()]).encode()
    chunked = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(part), part)
                       for part in (body[:10], body[10:])) + b"0\r\n\r\n"
    head = (b"POST /track HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    answer = raw_exchange(c, head + chunked)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\n1")


# -- gzip bombs -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """About 200 KB of gzip that inflates to 200 MB."""
    encoder = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"0" * (1024 * 1024)
    parts = [encoder.compress(block) for _ in range(200)]
    return b"".join(parts) + encoder.flush()


@pytest.mark.parametrize("path", ["/track", "/engage", "/groups", "/import"])
def test_gzip_bomb_answers_413_at_once(any_collector, session, bomb, path):
    c = any_collector
    started = time.monotonic()
    r = session.post(c.url + path, params={"project_id": "1"}, auth=("sa", "secret"),
                     data=bomb, headers={"Content-Encoding": "gzip",
                                         "Content-Type": "application/json"}, timeout=30)
    elapsed = time.monotonic() - started
    assert r.status_code == 413 and r.json() == TOO_LARGE
    assert elapsed < 1.5, f"answered in {elapsed:.2f}s: the bomb was inflated"
    assert c.messages(path.strip("/")) == []
    still_serves(c, session, c.requests()[-1]["peer"])


def test_gzip_bomb_on_posthog_batch_answers_413(any_collector, session, bomb):
    c = any_collector
    r = session.post(c.url + "/batch/", data=bomb, headers={"Content-Encoding": "gzip"},
                     timeout=30)
    assert r.status_code == 413
    assert r.json()["type"] == "validation_error" and r.json()["code"] == "payload_too_large"
    assert c.messages("posthog") == []


def test_uncompressed_body_over_the_limit_answers_413_on_track(any_collector, session):
    c = any_collector
    body = json.dumps([event(blob="x" * 900_000) for _ in range(12)])
    r = session.post(c.url + "/track", data=body, timeout=30,
                     headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json() == TOO_LARGE
    assert c.messages("track") == []


def test_gzip_bodies_under_the_limit_are_accepted(any_collector, session):
    c = any_collector
    gz = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    batch = json.dumps([event() for _ in range(50)]).encode()
    r = session.post(c.url + "/track", data=gzip.compress(batch), headers=gz)
    assert r.text == "1" and len(c.messages("track")) == 50
    update = json.dumps([{"$token": "t", "$distinct_id": "u", "$set": {"a": 1}}]).encode()
    r = session.post(c.url + "/engage", data=gzip.compress(update), headers=gz)
    assert r.text == "1" and len(c.messages("engage")) == 1


# -- as the real service --------------------------------------------------------------------


def gif_size(body: bytes) -> tuple[int, int]:
    assert body[:6] == b"GIF89a" and body[-1:] == b";"
    return int.from_bytes(body[6:8], "little"), int.from_bytes(body[8:10], "little")


def test_tracking_pixel_url_answers_a_1x1_gif_and_records_the_event(any_collector, session):
    c = any_collector
    url = Tracker("tok").generate_tracking_url("user-1", "Opened email", {"campaign": "june"},
                                                endpoint=c.url + "/track")
    r = session.get(url, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/gif"
    assert gif_size(r.content) == (1, 1)
    assert "no-cache" in r.headers["Cache-Control"]
    [stored] = c.messages("track")
    assert stored["event"] == "Opened email" and stored["properties"]["campaign"] == "june"


def test_tracking_pixel_is_served_for_a_refused_event_too(any_collector, session):
    c = any_collector
    r = session.get(c.url + "/track", params={"img": 1, "data": "%%%"}, timeout=10)
    assert r.headers["Content-Type"] == "image/gif" and gif_size(r.content) == (1, 1)
    assert c.messages("track") == []
    assert session.get(c.url + "/track", params={"data": "%%%"}, timeout=10).text == "0"


def test_import_reports_a_missing_insert_id_as_required(any_collector, session):
    c = any_collector
    r = session.post(c.url + "/import", params={"strict": 1, "project_id": "1"},
                     auth=("sa", "secret"), json=[event(**{"$insert_id": DROP}), event()])
    assert r.status_code == 400
    [failed] = r.json()["failed_records"]
    assert failed == {"index": 0, "insert_id": "", "field": "properties.$insert_id",
                      "message": "'properties.$insert_id' is required"}
    assert r.json()["num_records_imported"] == 1


# -- the command line -----------------------------------------------------------------------


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "consumers.collector", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("mode", ["threaded", "asyncio"])
def test_busy_port_is_one_clear_line_and_exit_4(mode):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        done = run_cli("--port", str(port), "--mode", mode)
    assert done.returncode == 4
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"collector: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


def test_bad_options_are_refused_by_name():
    done = run_cli("--service-account", "no-colon")
    assert done.returncode == 2 and "--service-account" in done.stderr
    assert "Traceback" not in done.stderr
    done = run_cli("--port", "70000")
    assert done.returncode == 2 and "port must be 0-65535" in done.stderr


def test_help_documents_every_option_with_its_default():
    done = run_cli("--help")
    assert done.returncode == 0
    text = done.stdout
    options = sorted(set(re.findall(r"\[(--[a-z-]+)", text)))
    assert options == ["--close-idle", "--fast-json", "--host", "--idle-reset", "--idle-when",
                       "--mode", "--port", "--project-id", "--quiet", "--rate-limit",
                       "--service-account"]
    # each option's help paragraph: from its line to the next option's
    # "options:" since Python 3.10, "optional arguments:" before
    paragraphs = re.split(r"\n  (?=-)", re.split(r"\n(?:optional arguments|options):", text)[1])
    for option in options:
        [paragraph] = [p for p in paragraphs if p.startswith(option)]
        assert "(default:" in paragraph.replace("\n", " "), paragraph
    assert "(default: 127.0.0.1)" in text and "(default: 8080)" in text
    assert "(default: threaded)" in text
    assert "Exit status" in text
