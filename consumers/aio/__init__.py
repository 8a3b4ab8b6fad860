"""asyncio delivery: consumers whose IO runs as a task on the running event loop.

Needs the ``async`` extra (``pip install "tracking-toolkit[async]"``, which
brings ``httpx``).  ``send()`` stays synchronous and never blocks, so a
:class:`~tracker.Tracker` and :class:`tracker.posthog.Client` work with
these consumers unchanged:

* :class:`AsyncBackgroundConsumer`: Mixpanel by default (``region=``,
  ``api_host=``, ... as for :class:`~consumers.consumer.Consumer`), or any
  sender given as ``inner``;
* :class:`AsyncPostHogConsumer`: the same for PostHog's ``/batch/``.

See the asyncio page of the documentation for FastAPI/Starlette and aiohttp
lifespans.
"""

from __future__ import annotations

try:
    import httpx  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        'consumers.aio needs httpx: pip install "tracking-toolkit[async]"') from exc

from consumers.aio._transport import AsyncHttpTransport
from consumers.aio.background import AsyncBackgroundConsumer, AsyncSender
from consumers.aio.posthog import AsyncPostHogConsumer
from consumers.aio.senders import AsyncConsumer, AsyncPostHogSender

__all__ = [
    "AsyncBackgroundConsumer",
    "AsyncConsumer",
    "AsyncHttpTransport",
    "AsyncPostHogConsumer",
    "AsyncPostHogSender",
    "AsyncSender",
]
