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
import threading
import weakref
from typing import TYPE_CHECKING

from consumers import _runtime

if TYPE_CHECKING:
    from consumers.background import BackgroundConsumer

__all__ = ["forget_inherited", "live", "on_exit", "watch_multiprocessing"]

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
        _prepare_fork(consumer)


def _after_fork_parent() -> None:
    for consumer in list(live):
        _resume_parent(consumer)


def _after_fork_child() -> None:
    for consumer in list(live):
        _restart_child(consumer)


def _prepare_fork(consumer: BackgroundConsumer) -> None:
    consumer._fork_waited = False
    if not consumer._inner.resets_after_fork:
        # a child must not inherit a sink halfway through a delivery
        consumer._fork_waited = consumer._inner.lock.acquire(timeout=consumer._shutdown_timeout)
    if consumer._spool is not None:
        consumer._spool.before_fork()


def _resume_parent(consumer: BackgroundConsumer) -> None:
    if consumer._fork_waited:
        consumer._inner.lock.release()
        consumer._fork_waited = False


def _restart_child(consumer: BackgroundConsumer) -> None:
    """The child's copy: a fresh queue and no worker; the parent delivers what it had queued."""
    closing = consumer._closing
    inherited = consumer._worker
    inherited.abandoned = True  # a parent's greenlet survives the fork: it must not go on
    _runtime.end_inherited(inherited.green)
    consumer._inner.lock = threading.Lock()
    consumer._reset_state()
    consumer._inherited_green = inherited.green
    consumer._closing = closing
    consumer._stopping = closing
    if consumer._spool is not None:
        consumer._spool.forget_after_fork()
    consumer._inner.reset_after_fork()
    if consumer._atexit_drain and not closing:
        on_exit.add(consumer)


def forget_inherited(consumer: BackgroundConsumer) -> None:
    """On this child's worker, before it delivers: let the parent's greenlet end, and
    drop what it handed back to inner as it unwound (the parent delivers that)."""
    green, consumer._inherited_green = consumer._inherited_green, None
    if green is None:
        return
    _runtime.wait_ended(green)
    try:
        consumer._inner.take_pending()
    except Exception:
        logger.exception("could not clear what the parent left in the wrapped consumer")


def _become_durable_child(consumer: BackgroundConsumer) -> None:
    """In a ``multiprocessing`` child: write ahead, so a terminated child loses nothing."""
    if consumer._closing:
        return
    if consumer._spool is None:
        logger.warning("a multiprocessing child without a spool: what it queues is lost "
                       "if it is terminated (Pool's __exit__ does); give spool= to keep it")
        return
    consumer._durable = True


def _in_multiprocessing_child(consumer: BackgroundConsumer) -> None:
    """Runs in a ``multiprocessing`` child as it starts (after the fork hooks)."""
    from multiprocessing import util

    _become_durable_child(consumer)
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
