"""What the process runs under: green threads (gevent, eventlet) and uWSGI workers without threads.

Nothing here imports gevent, eventlet or uwsgi unless the process already
did: asking costs a dictionary look-up in ``sys.modules``.

* Green threads: under ``gevent.monkey.patch_all()`` or
  ``eventlet.monkey_patch()`` the background worker is a greenlet.  Unlike
  an OS thread, a greenlet survives ``os.fork()``: the child would resume the
  parent's worker halfway through a delivery, on the parent's socket.
  :func:`end_inherited` ends it in the child before it runs again.
* uWSGI without ``--enable-threads`` (and without ``--lazy-apps`` threads):
  the Python GIL is never released to other threads, so a background thread
  never runs and nothing is delivered.  :func:`threads_disabled_by_uwsgi`
  says so, and :func:`warn_uwsgi_without_threads` tells the user once, with
  the fix.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
import time
from typing import Any, Optional

__all__ = ["current_greenlet", "end_inherited", "green_library", "threads_disabled_by_uwsgi",
           "wait_ended", "warn_uwsgi_without_threads"]

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
    """Whether this is a uWSGI worker whose Python threads never run (no ``enable-threads``)."""
    uwsgi = sys.modules.get("uwsgi")
    if uwsgi is None or not hasattr(uwsgi, "opt"):
        return False
    opt = uwsgi.opt

    def enabled(name: str) -> bool:
        value = opt.get(name)
        if isinstance(value, list):
            value = value[-1] if value else None
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        return value not in (None, False, "", "0", "false", "False", "no", "off")

    # threads= above 1 and --enable-threads both turn the GIL on for Python threads
    threads = opt.get("threads")
    if isinstance(threads, (bytes, str)) and threads.isdigit() and int(threads) > 1:
        return False
    return not enabled("enable-threads")


_warned = threading.Event()


def warn_uwsgi_without_threads(what: str) -> bool:
    """Log once per process that ``what`` cannot run here, and how to fix it; True if so."""
    if not threads_disabled_by_uwsgi():
        return False
    if not _warned.is_set():
        _warned.set()
        logger.warning("%s needs a thread, and this uWSGI worker runs none: nothing is "
                       "delivered until the worker stops. To fix it, %s", what, UWSGI_FIX)
    return True
