"""Consumers in a forked child start clean: what the parent holds stays the parent's.

After ``os.fork()`` (gunicorn with ``--preload``, Celery prefork,
``multiprocessing``) the child has a copy of every consumer: buffered
messages the parent will still send, keep-alive sockets the parent still
reads from, and locks that a parent thread may have held at the instant of
the fork.  :class:`ForkAware` objects reset that state in every child,
before the child's own code runs again.
"""

from __future__ import annotations

import logging
import os
import queue
import weakref
from typing import Any

__all__ = ["ForkAware", "forget_pooled_connections"]

logger = logging.getLogger(__name__)


class ForkAware:
    """Holds per-process state (sockets, buffers, locks) that a forked child must not share.

    Subclasses call ``_watch_forks()`` at the end of ``__init__`` and reset
    their state in ``_reset_in_child()``.
    """

    _fork_pid: int

    def _watch_forks(self) -> None:
        self._fork_pid = os.getpid()
        _registered.add(self)

    def reset_after_fork(self) -> None:
        """Make this object safe to use in a forked child; the parent's state stays the parent's.

        Runs by itself in every child.  Does nothing in the process that made
        the object, or when it already ran in this one, so a wrapper may call
        it on what it wraps.
        """
        pid = os.getpid()
        if pid == self._fork_pid:
            return
        self._fork_pid = pid
        self._reset_in_child()

    def _reset_in_child(self) -> None:
        raise NotImplementedError


_registered: weakref.WeakSet[ForkAware] = weakref.WeakSet()  # alive now, reset in each child


def forget_pooled_connections(manager: Any) -> None:
    """Drop a ``urllib3`` pool manager's idle connections, in a fork child.

    Each socket is closed in this process only (the parent's connection
    stays open), and each pool's queue is renewed, so that nothing later
    waits on a lock a parent thread held at the fork.
    """
    container = getattr(getattr(manager, "pools", None), "_container", None)
    pools = list(container.values()) if isinstance(container, dict) else []
    for pool in pools:
        idle = getattr(pool, "pool", None)
        if not isinstance(idle, queue.Queue):
            continue
        connections = list(getattr(idle, "queue", ()))
        idle.__init__(idle.maxsize)  # type: ignore[misc]  # empty, with fresh locks
        for connection in connections:
            sock = getattr(connection, "sock", None)
            if sock is not None:
                try:
                    sock.close()  # this process's descriptor only: no shutdown()
                except OSError:
                    pass


def _after_fork_in_child() -> None:
    for obj in list(_registered):
        try:
            obj.reset_after_fork()
        except Exception:
            logger.exception("resetting %s after fork failed", type(obj).__name__)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
