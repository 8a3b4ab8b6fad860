"""Framework integrations: Django, Flask, ASGI (Starlette, FastAPI) and Celery.

Each module imports its framework only when it is imported itself, so none
of them is a dependency of the package.  They share :class:`Tracking`: a
tracker on a ``BackgroundConsumer``, flushed at the end of a task and closed
at shutdown, and the tracker's request context set per request or task.
"""

from __future__ import annotations

from tracker.integrations._core import Tracking

__all__ = ["Tracking"]
