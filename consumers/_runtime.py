"""What the process runs under: green threads (gevent, eventlet) and uWSGI workers without threads.

Nothing here imports gevent, eventlet or uwsgi unless the process already
did: asking costs a dictionary look-up in ``sys.modules``.

* Green threads: under ``gevent.monkey.patch_all()`` or
  ``eventlet.monkey_patch()`` the background worker is a greenlet.  Unlike
  an OS thread, a greenlet survives ``os.fork()``: the child would resume the
  parent's worker halfway through a delivery, on the parent's socket.
  :func:`end_inherited` ends it in the child before it runs again.
* uWSGI without ``--enable-threads`` (older releases such as 2.0.23;
  2.0.31 always runs threads): the worker never lets another Python thread
  run, so a background thread does not deliver.  :func:`threads_disabled_by_uwsgi`
  says so, and :func:`warn_uwsgi_without_threads` tells the user once, with
  the fix.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
import time
from typing import Any, Callable, Optional

__all__ = ["current_greenlet", "end_inherited", "green_library", "on_uwsgi_exit",
           "threads_disabled_by_uwsgi", "wait_ended", "warn_uwsgi_without_threads"]

logger = logging.getLogger("consumers.background")

UWSGI_FIX = ("start uWSGI with --enable-threads (or set enable-threads = true), or use a "
             "consumer that needs no thread: BufferedConsumer flushed at the end of each "
             "request, or FileConsumer with replay in another process")


def green_library() -> Optional[str]:
    """``"gevent"`` or ``"eventlet"`` when that library has monkey-patched ``threading``."""
    if "gevent.monkey" in sys.modules:
        if sys.modules["gevent.monkey"].is_module_patched("threading"):
            return "gevent"
    patcher = sys.modules.get("eventlet.patcher")
    if patcher is not None and patcher.is_monkey_patched("thread"):
        return "eventlet"
    return None


def current_greenlet() -> Any:
    """The greenlet running now, when threads are green; None under real threads."""
    if green_library() is None:
        return None
    return importlib.import_module("greenlet").getcurrent()


def end_inherited(green: Any) -> None:
    """In a fork child: end a greenlet the parent was running, before it runs again here."""
    library = green_library()
    if green is None or library is None or green.dead:
        return
    try:
        # scheduled, not run here: the green hub is not yet reinitialised in a fork hook
        if library == "gevent":
            importlib.import_module("gevent").kill(green)  # ahead of whatever would wake it
        else:
            eventlet = importlib.import_module("eventlet")
            eventlet.spawn_n(importlib.import_module("eventlet.greenthread").kill, green)
    except Exception:
        logger.exception("could not stop the parent's worker greenlet in this child")


def wait_ended(green: Any) -> None:
    """Wait until a greenlet ended by :func:`end_inherited` has finished unwinding."""
    while green is not None and not green.dead:
        time.sleep(0.001)  # patched: lets the hub run the kill


def threads_disabled_by_uwsgi() -> bool:
    """Whether this is a uWSGI worker whose Python threads never run.

    Older uWSGI releases (2.0.23, for one) run Python threads only with
    ``enable-threads`` (or ``threads`` > 1); recent ones (2.0.31) always do.
    The python plugin says which in ``uwsgi.has_threads``.
    """
    uwsgi = _uwsgi()
    if uwsgi is None:
        return False
    has_threads = getattr(uwsgi, "has_threads", None)
    if has_threads is None:  # not uWSGI's own module
        return False
    return not has_threads


def _uwsgi() -> Any:
    """uWSGI's embedded module, when this process is a uWSGI worker."""
    module = sys.modules.get("uwsgi")
    if module is None:
        try:
            module = importlib.import_module("uwsgi")
        except ImportError:
            return None
    return module if hasattr(module, "has_threads") else None


def on_uwsgi_exit(hook: Callable[[], None]) -> bool:
    """Also run ``hook`` from ``uwsgi.atexit`` (uWSGI runs it even with ``--skip-atexit``)."""
    uwsgi = _uwsgi()
    if uwsgi is None:
        return False
    previous = getattr(uwsgi, "atexit", None)

    def both() -> None:
        try:
            hook()
        finally:
            if callable(previous):
                previous()

    uwsgi.atexit = both
    return True


_warned = threading.Event()


def warn_uwsgi_without_threads(what: str) -> bool:
    """Log once per process that ``what`` cannot run here, and how to fix it; True if so."""
    if not threads_disabled_by_uwsgi():
        return False
    if not _warned.is_set():
        _warned.set()
        logger.warning("%s needs a thread, and this uWSGI worker does not run Python threads "
                       "(no enable-threads): delivery stalls between requests and what is "
                       "queued waits for the worker's exit. To fix it, %s", what, UWSGI_FIX)
    return True
