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


# -- prepared once per route, as requests prepares it per request -----------------------

ROUTES = [
    (URL, {"Content-Type": "application/json"}, None, None),
    ("http://127.0.0.1:8123/track", {"Content-Type": "application/json"}, None,
     {"verbose": "1", "ip": "0"}),
    ("http://127.0.0.1:8123/import", {"Content-Type": "application/json",
                                      "Content-Encoding": "gzip"},
     ("user", "secret"), {"strict": "1", "project_id": "42"}),
    ("https://api-eu.mixpanel.com/engage?verbose=1", {"Content-Type": "application/json"},
     ("token", ""), None),
]


def as_requests_prepares(session, url, body, headers, auth, params):
    """What ``session.post`` would send: ``Session.request``'s own preparation."""
    request = requests.Request("POST", url, data=body or {}, headers=dict(headers), auth=auth,
                               params=dict(params) if params else {})
    return session.prepare_request(request)


def wire(prepared):
    return prepared.method, prepared.url, list(prepared.headers.items()), prepared.body


def test_a_prepared_post_is_what_requests_prepares(monkeypatch, tmp_path):
    ours, plain = _Session(), requests.Session()
    assert len(ours.headers) == 0  # the transport's session sends no default headers
    plain.headers.clear()
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login netrc-user password netrc-pass\n")
    steps = [
        lambda: None,
        lambda: monkeypatch.setenv("NETRC", str(netrc)),  # read: no auth of its own
        lambda: [s.headers.update({"X-Team": "data"}) for s in (ours, plain)],
        lambda: [s.cookies.set("session", "abc") for s in (ours, plain)],
        lambda: [s.cookies.clear() for s in (ours, plain)],
        lambda: monkeypatch.delenv("NETRC"),
    ]
    for step in steps:
        step()
        for _ in range(2):  # prepared, then copied
            for url, headers, auth, params in ROUTES:
                for body in (b'[{"event":"a"}]', b"", b"[" + b"x" * 5000 + b"]"):
                    got = ours.prepare_post(url, body, headers, auth, params)
                    assert wire(got) == wire(as_requests_prepares(plain, url, body, headers,
                                                                  auth, params))


def test_each_prepared_post_is_a_fresh_object():
    session = _Session()
    first = session.prepare_post(URL, b"[1]", {"Content-Type": "application/json"})
    first.headers["Host"] = "mutated.invalid"  # as an adapter may do
    first.url = "http://mutated.invalid/"
    second = session.prepare_post(URL, b"[2,3]", {"Content-Type": "application/json"})
    assert (second.url, second.body, second.headers["Content-Length"]) == (URL, b"[2,3]", "5")
    assert "Host" not in second.headers


def test_netrc_credentials_are_sent_as_plain_requests_sends_them(collector, monkeypatch,
                                                                  tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login netrc-user password netrc-pass\n")
    monkeypatch.setenv("NETRC", str(netrc))
    with Consumer(api_host=collector.url, retry=RetryPolicy(max_attempts=1)) as consumer:
        consumer.send("event", '{"event":"a","properties":{"token":"t"}}')
    monkeypatch.delenv("NETRC")
    with Consumer(api_host=collector.url, retry=RetryPolicy(max_attempts=1)) as consumer:
        consumer.send("event", '{"event":"b","properties":{"token":"t"}}')
    logged = [{k.lower(): v for k, v in r["headers"].items()} for r in collector.requests()]
    assert [h.get("authorization", "").split()[:1] for h in logged] == [["Basic"], []]


def test_netrc_is_read_again_when_the_environment_changes(collector, monkeypatch, tmp_path):
    netrc = tmp_path / "netrc"
    monkeypatch.setenv("NETRC", str(netrc))  # no such file yet
    with Consumer(api_host=collector.url, retry=RetryPolicy(max_attempts=1)) as consumer:
        consumer.send("event", '{"event":"a","properties":{"token":"t"}}')
        netrc.write_text("machine 127.0.0.1 login netrc-user password netrc-pass\n")
        consumer.send("event", '{"event":"b","properties":{"token":"t"}}')  # not looked at
        monkeypatch.setenv("TOOLKIT_TEST_MARK", "1")  # any change: everything is read again
        consumer.send("event", '{"event":"c","properties":{"token":"t"}}')
    logged = [{k.lower(): v for k, v in r["headers"].items()} for r in collector.requests()]
    assert ["authorization" in h for h in logged] == [False, False, True]


def test_no_file_system_look_ups_per_request(collector, monkeypatch, tmp_path):
    import os

    bundle = tmp_path / "ca.pem"
    bundle.write_text("not used over plain http, but requests checks the path\n")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    looked_up: list[str] = []
    real_stat = os.stat

    def counting_stat(path, *args, **kwargs):
        looked_up.append(str(path))
        return real_stat(path, *args, **kwargs)

    with Consumer(api_host=collector.url, retry=RetryPolicy(max_attempts=1)) as consumer:
        consumer.send("event", '{"event":"first","properties":{"token":"t"}}')
        monkeypatch.setattr(os, "stat", counting_stat)
        for i in range(20):
            consumer.send_batch("event", [f'{{"event":"e{i}","properties":{{"token":"t"}}}}'])
        monkeypatch.setattr(os, "stat", real_stat)
    assert looked_up == []
    assert len(collector.messages("track")) == 21


@pytest.mark.parametrize("verify", [True, False, "file", "dir"])
@pytest.mark.parametrize("cert", [None, "cert", ("cert", "key")])
@pytest.mark.parametrize("url", ["https://api.mixpanel.com/track", "http://127.0.0.1:1/track"])
def test_the_adapter_configures_pools_as_requests_does(tmp_path, verify, cert, url):
    import urllib3

    from consumers._session import CachingAdapter

    (tmp_path / "ca.pem").write_text("-")
    (tmp_path / "cert.pem").write_text("-")
    (tmp_path / "key.pem").write_text("-")
    paths = {"file": str(tmp_path / "ca.pem"), "dir": str(tmp_path),
             "cert": str(tmp_path / "cert.pem"), "key": str(tmp_path / "key.pem")}
    verify = paths.get(verify, verify) if isinstance(verify, str) else verify
    if isinstance(cert, tuple):
        cert = (paths[cert[0]], paths[cert[1]])
    elif cert is not None:
        cert = paths[cert]
    attributes = ("cert_reqs", "ca_certs", "ca_cert_dir", "cert_file", "key_file")

    def configured(adapter):
        pool = urllib3.HTTPSConnectionPool("api.mixpanel.com")
        adapter.cert_verify(pool, url, verify, cert)
        request = requests.Request("POST", url).prepare()
        return ({a: getattr(pool, a, None) for a in attributes},
                adapter.build_connection_pool_key_attributes(request, verify, cert))

    ours, plain = CachingAdapter(), requests.adapters.HTTPAdapter()
    for _ in range(3):  # checked, then remembered
        assert configured(ours) == configured(plain)


def test_a_missing_ca_bundle_is_refused_every_time(tmp_path):
    import urllib3

    from consumers._session import CachingAdapter

    adapter = CachingAdapter()
    for _ in range(2):
        with pytest.raises(OSError, match="invalid path"):
            adapter.cert_verify(urllib3.HTTPSConnectionPool("h"), "https://h/",
                                str(tmp_path / "missing.pem"), None)
