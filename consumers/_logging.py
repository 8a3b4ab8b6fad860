"""The ``consumers`` logger tree stays silent until the application configures logging.

A ``NullHandler`` on the top logger is the library convention: without it,
logging's last-resort handler prints WARNING and above to stderr when the
application configured nothing.  See ``docs/logging.md`` for every logger.
"""

from __future__ import annotations

import logging

#: The top logger of this package; every logger here is a child of it.
TOP = "consumers"

_top = logging.getLogger(TOP)
if not any(isinstance(h, logging.NullHandler) for h in _top.handlers):
    _top.addHandler(logging.NullHandler())
