"""pytest plugin (``-p green_lane``): checks the patching, skips what is unsupported.

Loaded by ``nox -s green`` and ``.ci/run`` together with ``sitecustomize``
from this folder.  It refuses to run unpatched (a lane that silently tests
real threads proves nothing), and skips, with the reason, the few tests whose
subject the green library itself does not support.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

GREEN = os.environ.get("TRACKING_TOOLKIT_GREEN", "")

#: (library, test id fragment, reason)
UNSUPPORTED = [
    ("gevent", "[pool-", "multiprocessing.Pool hangs under gevent's patching, with no "
     "consumer involved (its result-handler threads become greenlets)"),
    ("eventlet", "[pool-", "multiprocessing.Pool hangs under eventlet's patching, with no "
     "consumer involved"),
    ("eventlet", "fork", "eventlet does not support os.fork(): parent and child share its "
     "epoll hub (https://eventlet.readthedocs.io/en/latest/fork.html)"),
    ("eventlet", "multiprocessing", "eventlet does not support os.fork() (multiprocessing's "
     "fork start method)"),
]


HERE = os.path.dirname(os.path.abspath(__file__))


def pytest_configure(config: Any) -> None:
    from consumers._runtime import green_library

    if GREEN and green_library() != GREEN:
        raise pytest.UsageError(
            f"TRACKING_TOOLKIT_GREEN={GREEN} but threading is not patched by it: "
            "put tests/green on PYTHONPATH so its sitecustomize patches first")
    if GREEN:
        _patch_children()


def _patch_children() -> None:
    """Child processes get this folder on PYTHONPATH too, even where a test sets its own."""
    import subprocess

    original = subprocess.Popen.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        env = kwargs.get("env")
        if env is not None and env.get("TRACKING_TOOLKIT_GREEN") == GREEN:
            path = env.get("PYTHONPATH", "")
            if HERE not in path.split(os.pathsep):
                env = dict(env, PYTHONPATH=os.pathsep.join(p for p in (HERE, path) if p))
                kwargs["env"] = env
        original(self, *args, **kwargs)

    subprocess.Popen.__init__ = init  # type: ignore[method-assign]


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    for item in items:
        for library, fragment, reason in UNSUPPORTED:
            if library == GREEN and fragment in item.nodeid:
                item.add_marker(pytest.mark.skip(reason=f"{GREEN}: {reason}"))
                break
