"""``AsyncPostHogConsumer``: PostHog's ``/batch/`` delivered from a task on the running loop."""

from __future__ import annotations

from typing import Any, Optional

from consumers.aio.background import AsyncBackgroundConsumer
from consumers.aio.senders import AsyncPostHogSender

__all__ = ["AsyncPostHogConsumer"]

_SENDER_KEYWORDS = ("max_batch", "max_batch_bytes", "gzip", "retry", "timeout", "verify",
                    "client", "historical_migration")


class AsyncPostHogConsumer(AsyncBackgroundConsumer):
    """An :class:`AsyncBackgroundConsumer` posting to PostHog.

    ``api_key`` and ``host`` (or ``region``), and ``max_batch``,
    ``max_batch_bytes``, ``gzip``, ``retry``, ``timeout``, ``verify``,
    ``client``, ``historical_migration`` configure the
    :class:`AsyncPostHogSender`; the other keyword arguments are the
    background consumer's (``on_error``, ``spool``, ...).  With
    ``historical_migration=True`` the default spool folder is one of its
    own, so what it keeps is never replayed as live events.
    """

    def __init__(self, api_key: str, host: Optional[str] = None, *,
                 region: Optional[str] = None, **options: Any) -> None:
        sender_options = {k: options.pop(k) for k in _SENDER_KEYWORDS if k in options}
        sender = AsyncPostHogSender(api_key, host, region=region, **sender_options)
        super().__init__(sender, **options)
