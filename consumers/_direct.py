"""POSTs straight to urllib3's connection pool wherever requests would add nothing.

For a POST of bytes, requests' ``Session.send`` and ``HTTPAdapter.send``
wrap one urllib3 ``urlopen`` in work whose outcome does not change while
the session and the environment do not: hooks, cookie extraction (twice),
a redirect check, the body streamed back through generators, a
``Response`` built around it.  On a keep-alive connection to a nearby
collector that is about 120 µs of CPU per request, as much as the
request itself.

A *route* (per URL, headers, auth, query, TLS setting and timeout) is
worked out once, through requests itself: the prepared request's target
and headers (``auth`` and ``~/.netrc`` applied), the environment's TLS
settings, the adapter whose pool it uses.  It is direct only where
requests would do nothing more:

* the transport's own :class:`~consumers._session.CachingSession` with its
  :class:`~consumers._session.CachingAdapter`, with no session cookies,
  hooks, auth or query (:meth:`CachingSession.fixed_generation`);
* no proxy for the URL and no client certificate from the environment.

Routes are forgotten when ``os.environ`` changes, like the session's own
caches.  Everything else takes requests' path, as does a URL whose answer
redirected (requests follows redirects: that request is sent again through
requests, and so are later ones to that URL).  An answer that sets a
cookie stores it in the session, whose later requests then take requests'
path.  A reused connection that died unread is replaced and the request
resent once, as :class:`~consumers._session.CachingAdapter` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, Optional, Union

import attrs
import requests
import requests.cookies
import requests.utils
import urllib3
import urllib3.exceptions as u3

from consumers import _stale
from consumers._protocol.answers import describe_url, short
from consumers._session import CachingAdapter, CachingSession
from consumers.errors import TimeoutError_, TransportError

__all__ = ["Answer", "DirectPosts"]

_REDIRECTS = frozenset((301, 302, 303, 307, 308))
_CACHE_SIZE = 32


@attrs.frozen
class Answer:
    """What the transport reads of an HTTP answer (a ``requests.Response`` has the same)."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes
    url: str = attrs.field(repr=describe_url)  # a URL may carry a password

    @property
    def text(self) -> str:
        """The body as text, in the charset the answer names (else UTF-8)."""
        charset = requests.utils.get_encoding_from_headers(self.headers) or "utf-8"
        try:
            return self.content.decode(charset, errors="replace")
        except LookupError:  # a charset Python does not know
            return self.content.decode("utf-8", errors="replace")


class _Ask(NamedTuple):
    """What a POST asks for, but its body: the key of its route."""

    url: str
    headers: tuple[tuple[str, str], ...]
    auth: Optional[tuple[str, str]]
    params: Optional[tuple[tuple[str, str], ...]]
    timeout: Union[float, tuple[float, float]]
    verify: Union[bool, str]


@attrs.define
class _Route:
    adapter: CachingAdapter
    template: requests.PreparedRequest  # the pool is looked up with it (TLS settings)
    url: str = attrs.field(repr=describe_url)  # a URL may carry a password
    target: str = attrs.field(repr=False)  # path and query, as sent on the request line
    headers: dict[str, str] = attrs.field(repr=False)  # Authorization among them
    verify: Any
    timeout: urllib3.Timeout
    # the pool last used, while its pool manager keeps it open
    pool: Any = None
    manager: Any = None


class DirectPosts:
    """The direct routes of one :class:`CachingSession`."""

    def __init__(self, session: CachingSession) -> None:
        self._session = session
        self._routes: dict[Any, tuple[int, Optional[_Route]]] = {}
        self._redirected: set[str] = set()

    def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        auth: Optional[tuple[str, str]],
        params: Optional[Mapping[str, str]],
        timeout: Union[float, tuple[float, float]],
        verify: Union[bool, str],
    ) -> Optional[Answer]:
        """POST ``body`` on the direct route; None where requests' path must take it.

        Raises :class:`TimeoutError_` or :class:`TransportError` as the
        transport would for the same failure through requests.
        """
        ask = _Ask(url, tuple(headers.items()), auth,
                   tuple(params.items()) if params else None, timeout, verify)
        route = self._route(ask)
        if route is None:
            return None
        answer = self._send(route, body)
        if answer.status_code in _REDIRECTS and "location" in answer.headers:
            self._redirected.add(url)
            self._routes = {}
            return None
        return answer

    def _route(self, ask: _Ask) -> Optional[_Route]:
        session = self._session
        generation = session.fixed_generation(ask.auth)
        if generation is None:
            return None
        try:
            key = (ask, tuple(session.headers.items()))
            known = self._routes.get(key)
        except TypeError:  # an unhashable setting: requests' path
            return None
        if known is not None and known[0] == generation:
            return known[1]
        route = None if ask.url in self._redirected else self._work_out(ask)
        if len(self._routes) >= _CACHE_SIZE:
            self._routes = {}
        self._routes[key] = (generation, route)
        return route

    def _work_out(self, ask: _Ask) -> Optional[_Route]:
        session = self._session
        template = session.prepare_post(ask.url, b"", dict(ask.headers), ask.auth,
                                        dict(ask.params) if ask.params else None)
        full_url = str(template.url)
        settings = session.merge_environment_settings(full_url, {}, None, ask.verify, None)
        if settings.get("cert") is not None or settings.get("stream"):
            return None
        if requests.utils.select_proxy(full_url, settings.get("proxies") or {}) is not None:
            return None
        adapter = session.get_adapter(full_url)
        if type(adapter) is not CachingAdapter:  # a subclass may send its own way
            return None
        timeout = ask.timeout
        connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        sent_headers = {k: v for k, v in template.headers.items() if k.lower() != "content-length"}
        return _Route(adapter, template, full_url, template.path_url, sent_headers,
                      settings["verify"], urllib3.Timeout(connect=connect, read=read))

    def _send(self, route: _Route, body: bytes) -> Answer:
        try:
            return self._urlopen(route, body)
        except Exception as exc:
            if not _stale.died_unread(exc):
                raise _delivery_error(exc, route.url) from None
        # not a failure of the destination: a dead connection, the request unread
        route.adapter.stale_resends += 1
        _stale.next_connection_fresh()
        try:
            return self._urlopen(route, body)
        except Exception as exc:
            raise _delivery_error(exc, route.url) from None

    def _urlopen(self, route: _Route, body: bytes) -> Answer:
        adapter = route.adapter
        pool, manager = route.pool, adapter.poolmanager
        if pool is None or route.manager is not manager or pool.pool is None:  # None: closed
            if hasattr(adapter, "get_connection_with_tls_context"):  # requests >= 2.32.2
                pool = adapter.get_connection_with_tls_context(route.template, route.verify)
            else:
                pool = adapter.get_connection(route.url)
            route.pool, route.manager = pool, manager
        adapter.cert_verify(pool, route.url, route.verify, None)
        headers = dict(route.headers)
        headers["Content-Length"] = str(len(body))
        response = pool.urlopen(
            "POST", route.target, body=body, headers=headers, redirect=False,
            assert_same_host=False, preload_content=True, decode_content=True,
            retries=adapter.max_retries, timeout=route.timeout,
        )
        if "set-cookie" in response.headers:  # kept as requests keeps it
            requests.cookies.extract_cookies_to_jar(  # type: ignore[no-untyped-call]
                self._session.cookies, route.template, response)
        return Answer(response.status, response.headers, response.data, route.url)


def _delivery_error(exc: BaseException, url: str) -> Exception:
    """The delivery error requests' path raises for the same urllib3 failure."""
    where = describe_url(url)
    reason: Any = exc.reason if isinstance(exc, u3.MaxRetryError) else exc
    if isinstance(reason, u3.ReadTimeoutError):
        return TimeoutError_(f"POST {where} timed out: ReadTimeout")
    if isinstance(reason, u3.ConnectTimeoutError) and not isinstance(
            reason, u3.NewConnectionError):
        return TimeoutError_(f"POST {where} timed out: ConnectTimeout")
    kind = "SSLError" if isinstance(reason, u3.SSLError) else "ConnectionError"
    if isinstance(reason, (u3.DecodeError, u3.ProtocolError, u3.HTTPError, OSError)):
        inner = getattr(reason, "reason", None)
        text = short(str(inner if inner is not None else reason), 200)
        return TransportError(f"POST {where} failed: {kind}: {text}")
    raise exc  # not a transport failure: a bug, raised as it is
