"""Messages nobody flushed: warn, as an unclosed file does, when a buffering consumer is
garbage-collected or still open at interpreter exit with messages it never sent."""

from __future__ import annotations

import atexit
import logging
import warnings
import weakref
from typing import Protocol

__all__ = ["Buffering", "UnflushedWatch"]


class Buffering(Protocol):
    """What the watch reads of a consumer."""

    _warned_at_exit: bool

    def _unflushed(self) -> int:
        """How many messages it holds that were never sent."""
        ...


class UnflushedWatch:
    """The open consumers of one kind (weakly held); each warns at most once.

    ``kind`` names the class in the warning; ``log`` is the logger the
    warning is also written to (the consumer module's own).
    """

    def __init__(self, kind: str, log: logging.Logger) -> None:
        self._kind = kind
        self._log = log
        self._open: weakref.WeakSet[Buffering] = weakref.WeakSet()
        atexit.register(self._at_exit)

    def add(self, consumer: Buffering) -> None:
        """Watch ``consumer`` from now on (until :meth:`discard`)."""
        self._open.add(consumer)

    def discard(self, consumer: Buffering) -> None:
        """``consumer`` was closed: nothing of it is left to warn about."""
        self._open.discard(consumer)

    def collected(self, consumer: Buffering) -> None:
        """From ``consumer.__del__``: warn if it still holds messages."""
        count = consumer._unflushed()
        if count and not getattr(consumer, "_warned_at_exit", False):
            self.warn(count, "was garbage-collected")

    def warn(self, count: int, how: str) -> None:
        """Log and raise a ``ResourceWarning`` for ``count`` messages never sent."""
        text = (f"a {self._kind} {how} with {count} buffered message(s) never sent; "
                "call flush() or close() (or use it in a with block)")
        self._log.error("%s", text)
        warnings.warn(text, ResourceWarning, stacklevel=3)

    def _at_exit(self) -> None:
        for consumer in list(self._open):
            count = consumer._unflushed()
            if count:
                consumer._warned_at_exit = True
                self.warn(count, "was still open at interpreter exit")
