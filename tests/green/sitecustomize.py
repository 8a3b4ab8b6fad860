"""Monkey-patch for gevent or eventlet first thing, in every Python process of a green test run.

With this folder on ``PYTHONPATH`` and ``TRACKING_TOOLKIT_GREEN`` set to
``gevent`` or ``eventlet``, Python imports this module at startup, before
pytest (or a test's child process) imports ``threading``, ``socket`` or
``queue``: the way gunicorn's gevent and eventlet workers patch before the
app loads.  ``nox -s green`` and ``.ci/run`` start those runs.
"""

import os

_GREEN = os.environ.get("TRACKING_TOOLKIT_GREEN", "")

if _GREEN == "gevent":
    from gevent import monkey

    monkey.patch_all()
elif _GREEN == "eventlet":
    import warnings

    # said at import, on stderr, in every child: the tests that read a child's stderr
    # are about the toolkit's output
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    import eventlet

    eventlet.monkey_patch()
elif _GREEN:
    raise SystemExit(f"TRACKING_TOOLKIT_GREEN must be gevent or eventlet, got {_GREEN!r}")
