"""A blocking HTTP call made on a running asyncio event loop is flagged, once per transport.

The synchronous transport holds the calling thread for the whole POST
(retries included); on an event loop's thread that stalls every task.  The
warning names the fix (:mod:`consumers.aio`, or a
:class:`~consumers.background.BackgroundConsumer`), the way asyncio's debug
mode flags a slow callback.  It costs a dictionary look-up when asyncio was
never imported, and one C call otherwise.
"""

from __future__ import annotations

import logging
import sys
import warnings
import weakref
from typing import Any

__all__ = ["BlockingCallWarning", "on_event_loop", "warn_if_on_event_loop"]

log = logging.getLogger("consumers.consumer")

_warned: weakref.WeakSet[Any] = weakref.WeakSet()


class BlockingCallWarning(RuntimeWarning):
    """A synchronous consumer posted from a running asyncio event loop, blocking it."""


def on_event_loop() -> bool:
    """Whether the calling thread is running an asyncio event loop."""
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and asyncio._get_running_loop() is not None


def warn_if_on_event_loop(owner: Any) -> None:
    """Warn (once for ``owner``) when called on the thread of a running event loop."""
    if not on_event_loop():
        return
    try:
        if owner in _warned:
            return
        _warned.add(owner)
    except TypeError:  # not weak-referenceable: warn every time rather than never
        pass
    text = ("a synchronous consumer is sending over HTTP on a running asyncio event loop, "
            "which blocks the loop until the answer (and any retries); use "
            "consumers.aio.AsyncBackgroundConsumer, or a BackgroundConsumer")
    log.warning("%s", text)
    warnings.warn(text, BlockingCallWarning, stacklevel=4)
