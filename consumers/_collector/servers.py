"""The two HTTP/1.1 servers that carry :class:`App`: threaded (default) and asyncio.

Both keep connections alive, answer in order, and carry out the App's
delays (sleep before answering) and drops (close without an answer).  Each
is a module of its own (:mod:`~consumers._collector.threaded`,
:mod:`~consumers._collector.aioserver`); what they share on the wire (a
request's head and chunked body, an answer's bytes) is in
:mod:`~consumers._collector.wire`.  Both offer ``port``, ``start()`` and
``stop()``.
"""

from __future__ import annotations

from consumers._collector.aioserver import AsyncioServer
from consumers._collector.threaded import ThreadedServer
from consumers._collector.wire import FramingError, answer, render, render_head

__all__ = ["MODES", "AsyncioServer", "FramingError", "ThreadedServer", "answer", "render",
           "render_head"]

#: The collector's server modes, the default first.
MODES = ("threaded", "asyncio")
