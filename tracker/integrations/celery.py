"""Celery: flush after every task, close at worker shutdown, carry the caller's context into tasks.

::

    tracking = Tracking("your-project-token", region="eu")
    app = Celery("proj")
    connect(tracking)

A task published while the tracker's context holds fields (``distinct_id``
set by a web request, say) carries them in a message header; the worker runs
the task inside the same context.  After each task the consumer is flushed
(a prefork child can be replaced at any moment, so nothing waits in it), and
at worker and child shutdown it is closed.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Optional

from celery import signals

from tracker.integrations._core import Tracking

__all__ = ["HEADER", "connect"]

#: The message header that carries the caller's context.
HEADER = "tracking_context"

_lock = threading.Lock()


def connect(tracking: Tracking) -> None:
    """Hook ``tracking`` into Celery's publish, task and shutdown signals (for every app)."""
    running: dict[str, contextlib.ExitStack] = {}

    def before_publish(headers: Optional[dict[str, Any]] = None, **_: Any) -> None:
        fields = tracking.current_context()
        if fields and headers is not None and HEADER not in headers:
            headers[HEADER] = fields

    def prerun(task_id: Optional[str] = None, task: Any = None, **_: Any) -> None:
        fields = getattr(task.request, HEADER, None) if task is not None else None
        if not isinstance(fields, dict) or task_id is None:
            return
        stack = contextlib.ExitStack()
        stack.enter_context(tracking.context(fields))
        with _lock:
            running[task_id] = stack

    def postrun(task_id: Optional[str] = None, **_: Any) -> None:
        with _lock:
            stack = running.pop(task_id, None) if task_id is not None else None
        if stack is not None:
            stack.close()
        tracking.flush()

    def shutdown(**_: Any) -> None:
        tracking.close()

    signals.before_task_publish.connect(before_publish, weak=False)
    signals.task_prerun.connect(prerun, weak=False)
    signals.task_postrun.connect(postrun, weak=False)
    signals.worker_process_shutdown.connect(shutdown, weak=False)
    signals.worker_shutdown.connect(shutdown, weak=False)
