"""Send what is meant for Mixpanel's and PostHog's hosts to a local collector instead.

Code written for ``region="eu"`` (or ``"us"``, ``"in"``, or PostHog's cloud
hosts) runs unchanged in development and tests: with the environment variable
``TRACKING_TOOLKIT_LOCAL_COLLECTOR=http://127.0.0.1:8080`` set, or inside
``with use_local_collector("http://127.0.0.1:8080"):``, every request a
consumer would make to one of those hosts goes to that collector, with the
same path and query.  The host the code chose travels in the
``X-Forwarded-Host`` header, which the collector keeps in its request log
(``Collector.requests()``), so you can see that a request was meant for
``api-eu.mixpanel.com`` and was served locally.

Only the known cloud hosts are redirected (:data:`CLOUD_HOSTS`); an explicit
``api_host`` that names anything else (a proxy, a self-hosted PostHog, the
collector itself) is left alone.  Nothing is sent to the real host, so no
TLS verification is turned off for it; a collector URL that is ``https``
is verified as usual.  The first redirected request logs one WARNING on the
``consumers.local`` logger naming the collector (never a password).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Optional
from urllib.parse import urlsplit, urlunsplit

from consumers.endpoints import REGIONS, redact_url
from consumers.errors import ConfigurationError, TransportError

__all__ = ["CLOUD_HOSTS", "LOCAL_COLLECTOR_ENV", "ORIGINAL_HOST_HEADER", "use_local_collector"]

log = logging.getLogger(__name__)

#: The environment variable that names the local collector's base URL.
LOCAL_COLLECTOR_ENV = "TRACKING_TOOLKIT_LOCAL_COLLECTOR"

#: The request header that carries the host the code chose.
ORIGINAL_HOST_HEADER = "X-Forwarded-Host"

#: Mixpanel's residency hosts and PostHog's cloud hosts (the current and the
#: older names, ``app.posthog.com`` being the Ruby library's default).
CLOUD_HOSTS = frozenset(
    {str(urlsplit(url).hostname) for url in REGIONS.values()}
    | {"us.i.posthog.com", "eu.i.posthog.com", "app.posthog.com", "us.posthog.com",
       "eu.posthog.com"}
)

_UNSET = object()
_override: object = _UNSET  # what use_local_collector set: a URL, None (off) or _UNSET
_lock = threading.Lock()
_announced: set[str] = set()


def _new_lock_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # a parent thread may have held it at the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock_in_child)


def _checked(url: str, where: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        # the value is not shown: a misplaced secret must not reach an error message
        raise ConfigurationError(
            f"{where} must be an http(s) base URL such as 'http://127.0.0.1:8080'"
        )
    return url.rstrip("/")


def local_collector_url() -> Optional[str]:
    """The collector in force: :class:`use_local_collector`'s, else the environment's, else None."""
    override = _override
    if override is not _UNSET:
        return override if isinstance(override, str) else None
    value = os.environ.get(LOCAL_COLLECTOR_ENV, "").strip()
    return _checked(value, LOCAL_COLLECTOR_ENV) if value else None


class use_local_collector:
    """Redirect the cloud hosts to ``url`` (None: to nowhere, ignoring the environment).

    Called, it takes effect at once for the whole process (every thread and
    consumer, existing or not); as a ``with`` block, the previous setting
    comes back at its end::

        with use_local_collector(collector.url):
            Tracker(TOKEN, region="eu").track("user-1", "Signed Up")
    """

    def __init__(self, url: Optional[str]) -> None:
        global _override
        checked = None if url is None else _checked(url, "use_local_collector(url)")
        with _lock:
            self._previous = _override
            _override = checked

    def __enter__(self) -> use_local_collector:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        global _override
        with _lock:
            _override = self._previous


def redirect(url: str, headers: Mapping[str, str]) -> tuple[str, Mapping[str, str]]:
    """``(url, headers)`` as they should be sent: to the local collector when one is in force."""
    parts = urlsplit(url)
    host = parts.hostname
    if host is None or host.lower() not in CLOUD_HOSTS or parts.port is not None:
        return url, headers
    try:
        base = local_collector_url()
    except ConfigurationError as exc:  # changed since the consumer was built: not the caller's bug
        raise TransportError(f"{exc}; nothing was sent") from None
    if base is None:
        return url, headers
    target = urlsplit(base)
    path = target.path.rstrip("/") + parts.path
    local = urlunsplit((target.scheme, target.netloc, path, parts.query, ""))
    if base not in _announced:
        with _lock:
            first = base not in _announced
            _announced.add(base)
        if first:
            log.warning(
                "requests for Mixpanel's and PostHog's cloud hosts go to the local collector "
                "%s instead (%s or use_local_collector)", redact_url(base), LOCAL_COLLECTOR_ENV,
            )
    return local, {**headers, ORIGINAL_HOST_HEADER: parts.netloc}
