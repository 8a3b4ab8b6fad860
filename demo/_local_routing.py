"""Route Mixpanel's real hostnames to the local collector, so demos send nothing off the machine.

A consumer built with ``region="eu"`` still chooses ``https://api-eu.mixpanel.com/...``;
this adapter, mounted on the consumer's ``requests.Session``, delivers that request to
the collector over plain HTTP and keeps the original ``Host`` header, so the collector's
request log shows which regional host the consumer chose.
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
        return super().send(request, stream=stream, timeout=timeout, verify=False, cert=cert,
                            proxies=proxies)


def local_session(collector_url: str, hosts: tuple[str, ...]) -> requests.Session:
    """A session that sends requests for ``hosts`` (https) to ``collector_url`` instead."""
    session = requests.Session()
    adapter = _LocalAdapter(collector_url)
    for host in hosts:
        session.mount(f"https://{host}/", adapter)
    return session
