"""The transport's own session reads the environment exactly as requests does, only less often."""

from __future__ import annotations

import pickle

import pytest
import requests

from consumers import Consumer
from consumers._http import HttpTransport, _Session
from consumers.errors import TransportError
from consumers.retry import RetryPolicy

URL = "http://127.0.0.1:8123/track?verbose=1&ip=0"
ENV = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy",
       "NO_PROXY", "no_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def settings(session, url=URL, verify=True):
    return session.merge_environment_settings(url, {}, None, verify, None)


def test_settings_follow_every_environment_change(monkeypatch):
    ours, plain = _Session(), requests.Session()
    steps = [
        lambda: None,
        lambda: monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128"),
        lambda: monkeypatch.setenv("NO_PROXY", "127.0.0.1"),
        lambda: monkeypatch.setenv("NO_PROXY", "example.com"),
        lambda: monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/tmp/bundle.pem"),
        lambda: monkeypatch.delenv("HTTP_PROXY"),
        lambda: monkeypatch.setenv("https_proxy", "http://other.invalid:8080"),
    ]
    for step in steps:
        step()
        for _ in range(2):  # computed, then reused
            for url in (URL, "https://api.mixpanel.com/track", "http://127.0.0.1:8123/import"):
                for verify in (True, False, "/ca.pem"):
                    assert settings(ours, url, verify) == settings(plain, url, verify)


def test_reused_settings_are_fresh_copies():
    session = _Session()
    first = settings(session)
    first["proxies"]["http"] = "http://mutated.invalid"
    first["verify"] = "changed"
    assert settings(session) == settings(requests.Session())


def test_session_settings_and_explicit_proxies_are_honoured(monkeypatch):
    ours, plain = _Session(), requests.Session()
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    for session in (ours, plain):
        session.verify = False
    assert settings(ours) == settings(plain)
    explicit = {"http": "http://explicit.invalid:1"}
    assert ours.merge_environment_settings(URL, dict(explicit), None, True, None) == (
        plain.merge_environment_settings(URL, dict(explicit), None, True, None))
    for session in (ours, plain):
        session.proxies = {"https": "http://session.invalid:2"}
    assert settings(ours) == settings(plain)
    for session in (ours, plain):
        session.trust_env = False
    assert settings(ours) == settings(plain)


def test_a_proxy_set_after_the_first_request_is_used(collector, monkeypatch):
    transport = HttpTransport(retry=RetryPolicy(max_attempts=1))
    assert isinstance(transport.session, _Session)
    with Consumer(api_host=collector.url, transport=transport) as consumer:
        consumer.send("event", '{"event":"a","properties":{"token":"t"}}')
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
        monkeypatch.setenv("NO_PROXY", "")
        with pytest.raises(TransportError):
            consumer.send("event", '{"event":"b","properties":{"token":"t"}}')
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        consumer.send("event", '{"event":"c","properties":{"token":"t"}}')
    assert [m["event"] for m in collector.messages("track")] == ["a", "c"]
    transport.close()


def test_the_session_survives_pickling():
    session = pickle.loads(pickle.dumps(_Session()))
    assert settings(session) == settings(requests.Session())
