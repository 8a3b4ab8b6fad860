"""Where a background consumer's spool lives by default: a folder the next run finds.

``spool=None`` resolves to a folder under the user's cache directory, one per
program and destination::

    <cache>/tracking-toolkit/spool/<program>-<hash>/

``<cache>`` is ``$TRACKING_TOOLKIT_SPOOL_DIR`` when set, else
``$XDG_CACHE_HOME`` or ``~/.cache`` (Linux and other POSIX systems),
``~/Library/Caches`` (macOS), ``%LOCALAPPDATA%`` (Windows).  ``<program>``
is the script's name, for people reading the folder; ``<hash>`` is a SHA-256
of the program's path and the destination (the sink's endpoint URLs, its
PostHog project key), so no URL, credential or key appears in the path.  A
later process of the same program sending to the same destination uses the
same folder, and adopts (replays) what a process that is gone left there;
processes running at once each write a subfolder of their own and a
``flock`` keeps two of them from replaying the same one
(:mod:`consumers._spool`).

A sink that names no destination (a plain callable) gets the private
temporary form, as does ``spool=TEMP_SPOOL``:
``<tmp>/tracking-spool-<pid>-<random>/``, which no later process adopts.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path
from typing import Any, Optional

__all__ = ["ENV_VAR", "TEMP_SPOOL", "cache_root", "default_spool_root", "destination_of"]

#: Environment variable that moves every default spool (tests, containers).
ENV_VAR = "TRACKING_TOOLKIT_SPOOL_DIR"


class _TempSpool:
    """The private temporary spool: ``spool=TEMP_SPOOL``."""

    def __repr__(self) -> str:
        return "TEMP_SPOOL"


#: Pass as ``spool=`` for a per-process folder under the temp dir that no later run adopts.
TEMP_SPOOL: Any = _TempSpool()


def cache_root() -> Path:
    """The folder default spools go under (see the module)."""
    given = os.environ.get(ENV_VAR)
    if given:
        return Path(given)
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "tracking-toolkit" / "spool"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "tracking-toolkit" / "spool"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tracking-toolkit" / "spool"


def destination_of(sink: Any) -> Optional[str]:
    """What identifies where ``sink`` delivers (URLs, PostHog key, whether as an import of
    past events), or None if it cannot say."""
    parts: list[str] = []
    for _ in range(4):  # through wrappers: BufferedConsumer -> Consumer
        endpoints = getattr(sink, "endpoints", None)
        if endpoints is not None and hasattr(endpoints, "url_for"):
            parts += [endpoints.url_for(t) for t in
                      ("event", "profile_update", "group_update", "import")]
            break
        url = getattr(sink, "url", None)
        if isinstance(url, str):
            parts += [url, str(getattr(sink, "api_key", ""))]
            if getattr(sink, "historical_migration", False) is True:
                parts.append("historical")  # never replayed as live events
            break
        sink = getattr(sink, "consumer", None)
        if sink is None:
            break
    return "\n".join(parts) if parts else None


def _program() -> tuple[str, str]:
    """(a readable name, the full path) of the running program."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None) or (sys.argv[0] if sys.argv else "") or "python"
    full = os.path.abspath(path) if path not in ("-c", "python") else path
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(path).stem or "python")[:40]
    return name, full


def default_spool_root(sink: Any) -> Optional[Path]:
    """The spool root for ``spool=None``: per user, program and destination; None: temp form."""
    destination = destination_of(sink)
    if destination is None:
        return None
    name, full = _program()
    digest = hashlib.sha256(f"{full}\0{destination}".encode()).hexdigest()[:16]
    return cache_root() / f"{name}-{digest}"
