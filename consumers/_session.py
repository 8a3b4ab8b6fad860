"""The transport's own ``requests.Session``: what requests works out per request, once per session.

For every request ``Session.request`` reads ``os.environ`` (proxies,
``NO_PROXY``, ``REQUESTS_CA_BUNDLE``), looks for ``~/.netrc`` and
``~/_netrc``, rebuilds the request (URL parsing and quoting, header merging,
auth), and the adapter checks the CA bundle's path on disk: about 0.4 ms of
CPU and three file-system look-ups per POST, for answers that do not change
while the environment does not.

:class:`CachingSession` gives the same answers, worked out once:

* the environment settings (proxies, CA bundle) per URL and TLS settings,
* a prepared request per (URL, headers, auth, query): a POST copies it and
  sets its body; ``~/.netrc`` (or ``$NETRC``) is read when it is prepared,
* the adapter's (:class:`CachingAdapter`) checks of the CA bundle and client
  certificate paths per (URL, TLS settings),

and forgets all of them whenever ``os.environ`` changes (compared on every
request: a few microseconds).  A file edited while the environment stays the
same (a new ``~/.netrc``, a CA path turned into a directory) is therefore
seen by the next session, or after the next change to the environment.

What is not fixed per session is done as requests does it: session cookies
(once the server set one), session-wide ``auth``, ``params`` or hooks,
explicit proxies, and any environment that cannot be watched (proxies from
the macOS or Windows settings) all take requests' own path.
"""

from __future__ import annotations

import os
import threading
import urllib.request
from collections.abc import Mapping
from typing import Any, Optional

import requests
import requests.adapters
import requests.utils

from consumers import _stale

__all__ = ["CachingAdapter", "CachingSession"]

# What requests uses where proxies come from the environment only (not macOS, Windows).
_GETPROXIES_ENV = getattr(urllib.request, "getproxies_environment", None)
_PROXY_BYPASS_ENV = getattr(urllib.request, "proxy_bypass_environment", None)

_CACHE_SIZE = 32


def _environment() -> Optional[dict[bytes, bytes]]:
    """The dict behind ``os.environ`` (what requests reads), or None where there is none."""
    environ = getattr(os.environ, "_data", None)
    return environ if isinstance(environ, dict) else None


def _proxies_from_environment_only() -> bool:
    return (
        _GETPROXIES_ENV is not None
        and getattr(requests.utils, "getproxies", None) is _GETPROXIES_ENV
        and getattr(requests.utils, "proxy_bypass", None) is _PROXY_BYPASS_ENV
    )


class _Assignments:
    """Stands in for a connection pool in ``HTTPAdapter.cert_verify``, keeping what it assigns."""

    def __init__(self) -> None:
        object.__setattr__(self, "assigned", {})

    def __setattr__(self, name: str, value: Any) -> None:
        self.assigned[name] = value

    def __getattr__(self, name: str) -> Any:
        try:
            return self.assigned[name]
        except KeyError:
            raise AttributeError(name) from None


class CachingAdapter(requests.adapters.HTTPAdapter):
    """An ``HTTPAdapter`` that checks TLS file paths once per (URL, verify, cert).

    It also handles keep-alive connections that died while idle (see
    :mod:`consumers._stale`): one idle too long is not reused, and a request
    that a dead reused connection provably did not deliver is sent again at
    once on a fresh one (``stale_resends`` counts them).

    ``HTTPAdapter`` asks the file system whether the CA bundle (and a client
    certificate) exists and whether it is a directory on every request.  The
    outcome, the connection-pool settings it leads to, is remembered and
    applied again; :meth:`forget` drops it (the session calls it when the
    environment changes).  A path that does not exist still raises, each time.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_caches()

    def _init_caches(self) -> None:
        self._pool_keys: dict[Any, Any] = {}
        self._verified: dict[Any, dict[str, Any]] = {}
        self.stale_resends = 0

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_stale.POOL_CLASSES)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().send(request, *args, **kwargs)
        except requests.exceptions.ConnectionError as exc:
            if not (_stale.died_unread(exc) and isinstance(request.body, (bytes, str, type(None)))):
                raise
        # not a failure of the destination: a dead connection, the request unread
        self.stale_resends += 1
        _stale.next_connection_fresh()
        return super().send(request, *args, **kwargs)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)  # type: ignore[misc]
        self._init_caches()

    def forget(self) -> None:
        """Check the paths again on the next request."""
        self._pool_keys = {}
        self._verified = {}

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> Any:
        base: Any = super()
        try:
            key = (request.url, verify, cert)
            known = self._pool_keys.get(key)
        except TypeError:  # an unhashable cert (a list)
            return base.build_connection_pool_key_attributes(request, verify, cert)
        if known is None:
            known = base.build_connection_pool_key_attributes(request, verify, cert)
            if len(self._pool_keys) >= _CACHE_SIZE:
                self._pool_keys = {}
            self._pool_keys[key] = (dict(known[0]), dict(known[1]))
            return known
        return dict(known[0]), dict(known[1])

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        base: Any = super()
        try:
            key = (url[:6].lower() == "https:", verify, cert)
            known = self._verified.get(key)
        except TypeError:
            base.cert_verify(conn, url, verify, cert)
            return
        if known is None:
            record = _Assignments()
            try:
                base.cert_verify(record, url, verify, cert)
            except AttributeError:  # this requests reads what it did not set: no shortcut
                base.cert_verify(conn, url, verify, cert)
                return
            known = dict(record.assigned)
            if len(self._verified) >= _CACHE_SIZE:
                self._verified = {}
            self._verified[key] = known
        for name, value in known.items():
            setattr(conn, name, value)


class CachingSession(requests.Session):
    """A ``requests.Session`` that works out per session what requests does per request.

    :meth:`prepare_post` is ``prepare_request`` for a POST of bytes, and
    :meth:`merge_environment_settings` is requests' own, both reusing their
    results while ``os.environ`` is unchanged.  ``session.send(prepared,
    timeout=..., allow_redirects=True, **settings)`` then does what
    ``session.post`` does.
    """

    def __init__(self) -> None:
        super().__init__()
        # requests' defaults (Accept: */*, Accept-Encoding, Connection: keep-alive) say
        # what HTTP/1.1 assumes anyway; a POST carries only the headers its sender gives
        self.headers = requests.structures.CaseInsensitiveDict()
        self._init_caches()

    def _init_caches(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[bytes, bytes] = {}
        self._generation = 0
        self._env_settings: dict[Any, tuple[int, dict[str, Any]]] = {}
        self._templates: dict[Any, tuple[int, requests.PreparedRequest]] = {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)  # type: ignore[misc]
        self._init_caches()

    def _current_generation(self) -> Optional[int]:
        """A number that changes with ``os.environ``; None when it cannot be watched."""
        environ = _environment()
        if environ is None:
            return None
        if environ != self._seen:
            with self._lock:
                if environ != self._seen:
                    # copied before anything reads it: a change meanwhile is noticed next time
                    self._seen = dict(environ)
                    self._generation += 1
                    self._env_settings = {}
                    self._templates = {}
                    for adapter in list(self.adapters.values()):
                        if isinstance(adapter, CachingAdapter):
                            adapter.forget()
        return self._generation

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:
        if proxies or self.proxies or not self.trust_env or not _proxies_from_environment_only():
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        generation = self._current_generation()
        try:
            key = (url, stream, verify, cert, self.stream, self.verify, self.cert)
            cached = self._env_settings.get(key)
        except TypeError:
            generation = None
        if generation is None:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        if cached is not None and cached[0] == generation:
            return {**cached[1], "proxies": dict(cached[1]["proxies"])}
        settings: Any = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if len(self._env_settings) >= _CACHE_SIZE:
            self._env_settings = {}
        self._env_settings[key] = (generation, {**settings, "proxies": dict(settings["proxies"])})
        return settings

    def prepare_post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        auth: Optional[tuple[str, str]] = None,
        params: Optional[Mapping[str, str]] = None,
    ) -> requests.PreparedRequest:
        """What ``prepare_request`` makes of a POST of ``body``; a fresh object each time."""
        generation = self.fixed_generation(auth)
        if generation is None:
            return self._prepare(url, body, headers, auth, params)
        key = (
            url,
            tuple(headers.items()),
            auth,
            tuple(params.items()) if params else None,
            tuple(self.headers.items()),
        )
        entry = self._templates.get(key)
        if entry is None or entry[0] != generation:
            template = self._prepare(url, b"", headers, auth, params)
            if len(self._templates) >= _CACHE_SIZE:
                self._templates = {}
            self._templates[key] = entry = (generation, template)
        prepared = entry[1].copy()
        if body:  # requests leaves an empty body as None, with Content-Length: 0
            prepared.body = body
            prepared.headers["Content-Length"] = str(len(body))
        return prepared

    def fixed_generation(self, auth: Any) -> Optional[int]:
        """The environment's generation when a POST's preparation depends on nothing else.

        None when it also depends on the session's own auth, query, hooks or
        cookies, or on an environment that cannot be watched.
        """
        if not (auth is None or (isinstance(auth, tuple) and len(auth) == 2)):
            return None
        if self.auth is not None or self.params or any(self.hooks.values()) or len(self.cookies):
            return None
        return self._current_generation()

    def _prepare(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        auth: Optional[tuple[str, str]],
        params: Optional[Mapping[str, str]],
    ) -> requests.PreparedRequest:
        # as Session.request builds it
        request = requests.Request(
            "POST", url, data=body or {}, headers=dict(headers), auth=auth,
            params=dict(params) if params else {},
        )
        return self.prepare_request(request)
