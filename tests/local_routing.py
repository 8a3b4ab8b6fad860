"""A test helper: a session that delivers requests for any named hosts to the local collector.

For tests of URL routing with hosts of their own (``events.example.test``) and of the
``Host`` header a consumer sends.  The public way to run code written for Mixpanel's and
PostHog's cloud hosts against a collector is ``consumers.use_local_collector`` (or
``TRACKING_TOOLKIT_LOCAL_COLLECTOR``).  The adapter posts to the collector over plain
HTTP, keeping the original ``Host`` header; nothing reaches the named hosts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional, Union
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

__all__ = ["local_session"]


class _LocalAdapter(HTTPAdapter):
    def __init__(self, collector_url: str) -> None:
        super().__init__()
        self._target = urlsplit(collector_url)

    def send(  # type: ignore[override]
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Union[float, tuple[float, float], None] = None,
        verify: Union[bool, str] = True,
        cert: Any = None,
        proxies: Optional[Mapping[str, str]] = None,
    ) -> requests.Response:
        original = urlsplit(request.url or "")
        request.headers["Host"] = original.netloc
        request.url = urlunsplit(
            (self._target.scheme, self._target.netloc, original.path, original.query, "")
        )
        # plain HTTP to the collector: no TLS, so nothing to verify
        return super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert,
                            proxies=proxies)


def local_session(collector_url: str, hosts: tuple[str, ...]) -> requests.Session:
    """A session that sends requests for ``hosts`` (https) to ``collector_url`` instead."""
    session = requests.Session()
    adapter = _LocalAdapter(collector_url)
    for host in hosts:
        session.mount(f"https://{host}/", adapter)
    return session
