"""ASGI (Starlette, FastAPI, any ASGI app): a middleware for the request context, and the lifespan.

::

    tracking = Tracking("your-project-token", region="eu")
    app = Starlette(routes=..., lifespan=lifespan(tracking))
    app.add_middleware(TrackingMiddleware, tracking=tracking)

FastAPI: ``FastAPI(lifespan=lifespan(tracking))`` and the same
``add_middleware``.  The middleware sets the tracker's context for each HTTP
and WebSocket connection from ``context(scope) -> dict`` (by default
``distinct_id`` from an authenticated ``scope["user"]``, as Starlette's
``AuthenticationMiddleware`` leaves it).  When the app runs without a
lifespan of its own, the middleware closes the consumer at the server's
lifespan shutdown itself.  Closing never blocks the event loop: an asyncio
consumer (``Tracking("token", consumer=AsyncBackgroundConsumer(region="eu"))``)
is awaited on it, any other is closed in a thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Mapping, MutableMapping
from typing import Any, Callable, Optional

from tracker.integrations._core import Tracking

__all__ = ["TrackingMiddleware", "lifespan", "user_context"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def user_context(scope: Scope) -> dict[str, Any]:
    """``{"distinct_id": ...}`` for an authenticated ``scope["user"]``, else nothing."""
    user = scope.get("user")
    if user is not None and getattr(user, "is_authenticated", False):
        try:
            identity = getattr(user, "identity", None)
        except NotImplementedError:  # Starlette's SimpleUser before 0.32 has no identity
            identity = None
        identity = identity or getattr(user, "display_name", None)
        if identity:
            return {"distinct_id": str(identity)}
    return {}


def lifespan(
    tracking: Tracking, timeout: Optional[float] = None
) -> Callable[[Any], contextlib.AbstractAsyncContextManager[None]]:
    """A Starlette/FastAPI ``lifespan=``: at shutdown, flush and close within ``timeout``."""

    @contextlib.asynccontextmanager
    async def run(app: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await tracking.aclose(timeout)

    return run


class TrackingMiddleware:
    """Pure ASGI middleware: the tracker's context per connection; close at lifespan shutdown."""

    def __init__(
        self,
        app: ASGIApp,
        tracking: Tracking,
        context: Callable[[Scope], Mapping[str, Any]] = user_context,
        timeout: Optional[float] = None,
    ) -> None:
        self.app = app
        self.tracking = tracking
        self._context = context
        self._timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._closing_send(send))
            return
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        with self.tracking.context(dict(self._context(scope))):
            await self.app(scope, receive, send)

    def _closing_send(self, send: Send) -> Send:
        async def closing_send(message: Message) -> None:
            if message.get("type") == "lifespan.shutdown.complete":
                await self.tracking.aclose(self._timeout)  # no-op if lifespan() closed it
            await send(message)

        return closing_send
