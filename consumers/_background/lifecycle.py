"""Fork and exit: what happens to background consumers when the process forks or ends.

* Interpreter exit: every open consumer is closed (drained for at most its
  ``shutdown_timeout``) by one ``atexit`` hook, unless made with
  ``atexit_drain=False``; in a uWSGI worker also by ``uwsgi.atexit``, which
  uWSGI runs at every worker reload and shutdown.
* ``os.fork()``: the child starts with an empty queue and no worker (the
  parent delivers what it had queued); see ``BackgroundConsumer``.
* ``multiprocessing`` children (fork start method): their consumers write
  ahead to the spool (durable mode, when there is a spool), because a pool
  ends its workers with SIGTERM; and they are closed when the child's
  ``multiprocessing`` bootstrap ends it normally (``Process`` targets that
  return, ``Pool.close()``), which runs no ``atexit`` hooks.  What a
  terminated child left on disk is delivered by the parent (its next
  ``flush()`` or its ``close()``) or by the next consumer on the spool.
"""

from __future__ import annotations

import atexit
import logging
import os
import weakref
from typing import TYPE_CHECKING

from consumers import _runtime

if TYPE_CHECKING:
    from consumers.background import BackgroundConsumer

__all__ = ["live", "on_exit"]

logger = logging.getLogger("consumers.background")

# Live consumers, for the fork hooks (weak: hooks never keep one alive).
live: weakref.WeakSet[BackgroundConsumer] = weakref.WeakSet()


class _AtexitRegistry:
    """Consumers to drain when the interpreter exits normally."""

    def __init__(self) -> None:
        self._members: weakref.WeakSet[BackgroundConsumer] = weakref.WeakSet()
        self._registered = False

    def add(self, consumer: BackgroundConsumer) -> None:
        self._members.add(consumer)
        if not self._registered:
            self._registered = True
            atexit.register(self.drain)
            # a uWSGI worker run with --skip-atexit runs only uwsgi.atexit at reload and exit
            _runtime.on_uwsgi_exit(self.drain)

    def discard(self, consumer: BackgroundConsumer) -> None:
        self._members.discard(consumer)

    def drain(self) -> None:
        for consumer in list(self._members):
            try:
                consumer.close()
            except Exception:
                logger.exception("close at exit failed")


on_exit = _AtexitRegistry()


def _before_fork() -> None:
    for consumer in list(live):
        consumer._before_fork()


def _after_fork_parent() -> None:
    for consumer in list(live):
        consumer._after_fork_parent()


def _after_fork_child() -> None:
    for consumer in list(live):
        consumer._after_fork_child()


def _in_multiprocessing_child(consumer: BackgroundConsumer) -> None:
    """Runs in a ``multiprocessing`` child as it starts (after the fork hooks)."""
    from multiprocessing import util

    consumer._become_durable_child()
    # multiprocessing ends its children with os._exit(): atexit never runs there
    util.Finalize(consumer, consumer.close, exitpriority=100)


def watch_multiprocessing(consumer: BackgroundConsumer) -> None:
    """Have ``consumer`` prepared in every ``multiprocessing`` child started from here."""
    try:
        from multiprocessing import util
    except ImportError:  # pragma: no cover - a Python without multiprocessing
        return
    util.register_after_fork(consumer, _in_multiprocessing_child)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_parent,
                        after_in_child=_after_fork_child)
