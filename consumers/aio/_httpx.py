"""The httpx path of the asyncio transport: a caller's client, or a proxy in the environment.

Also the TLS context both paths verify with: one for every client, made
once (loading the CA bundle takes ~20 ms, on a thread at the transport's
start).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Optional, Union

import httpx

# Imported now, not on the first request: each would stall the running loop
# for tens of milliseconds (httpcore alone takes ~50 ms to import).
import httpcore  # noqa: F401  # isort: skip
import h11  # noqa: F401  # isort: skip

from consumers._http import Auth, Timeout
from consumers._protocol.answers import describe_url, short
from consumers.errors import TimeoutError_, TransportError

try:
    import anyio._backends._asyncio  # noqa: F401  (httpcore's backend on asyncio)
except ImportError:  # pragma: no cover - an httpcore that does not use anyio
    pass

__all__ = ["WRITE_CHUNK", "default_tls_loaded", "new_client", "post", "tls"]

#: A body is written to the socket this many bytes per turn of the loop: one
#: 400 KB ``send()`` holds the loop ~0.75 ms (the kernel copies it at once).
WRITE_CHUNK = 64 * 1024


async def _pieces(body: bytes) -> AsyncIterator[bytes]:
    view = memoryview(body)
    for start in range(0, len(body), WRITE_CHUNK):
        yield bytes(view[start:start + WRITE_CHUNK])


_default_tls: Optional[ssl.SSLContext] = None


def default_tls_loaded() -> bool:
    """Whether the verifying TLS context is made (loading it reads the CA bundle)."""
    return _default_tls is not None


def tls(verify: Union[bool, str]) -> Union[bool, ssl.SSLContext]:
    """One verifying TLS context for every client: loading the CA bundle takes ~20 ms."""
    global _default_tls
    if verify is not True:
        if isinstance(verify, bool):
            return verify
        if os.path.isdir(verify):
            return ssl.create_default_context(capath=verify)
        return ssl.create_default_context(cafile=verify)
    if _default_tls is None:
        _default_tls = httpx.create_ssl_context()
    return _default_tls


def _timeout(timeout: Timeout) -> httpx.Timeout:
    if isinstance(timeout, tuple):
        connect, read = timeout
        return httpx.Timeout(read, connect=connect, pool=connect)
    return httpx.Timeout(timeout)


def new_client(timeout: Timeout, verify: Union[bool, str], pool_size: int) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` with these settings, honouring the environment's proxies."""
    limits = httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size)
    return httpx.AsyncClient(timeout=_timeout(timeout), verify=tls(verify), limits=limits,
                             trust_env=True)


async def post(client: httpx.AsyncClient, url: str, body: bytes, all_headers: dict[str, str],
               auth: Auth, params: Optional[Mapping[str, str]]) -> httpx.Response:
    """POST through ``client``; its failures raised as the delivery errors."""
    content: Union[bytes, AsyncIterator[bytes]] = body
    # written piece by piece, framed by its length (not chunked); not to a client that
    # follows redirects, which would have to send the body a second time
    if len(body) > WRITE_CHUNK and not client.follow_redirects:
        all_headers["Content-Length"] = str(len(body))
        content = _pieces(body)
    try:
        if auth is None:
            return await client.post(
                url, content=content, headers=all_headers, params=params)
        return await client.post(
            url, content=content, headers=all_headers, params=params,
            auth=httpx.BasicAuth(*auth))
    except httpx.TimeoutException as exc:
        raise TimeoutError_(
            f"POST {describe_url(url)} timed out: {type(exc).__name__}") from None
    except httpx.HTTPError as exc:
        raise TransportError(
            f"POST {describe_url(url)} failed: {type(exc).__name__}: "
            f"{short(str(exc), 200)}") from None
