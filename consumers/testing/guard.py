"""``RealHostGuard``: refuse, and remember, attempts to reach Mixpanel or PostHog hosts.

Tests must not send events to a production project.  While the guard is
installed, looking up the address of any host under ``mixpanel.com`` or
``posthog.com`` raises :class:`RealHostError` instead, and the attempt is
kept with the stack that made it, so a test whose library code swallowed the
error still fails (the pytest plugin checks after each test).
"""

from __future__ import annotations

import os
import socket
import threading
import traceback
from collections.abc import Iterable
from typing import Any, Callable, Optional

import attrs

__all__ = ["GUARDED_DOMAINS", "RealHostAttempt", "RealHostError", "RealHostGuard"]

#: The domains whose hosts (and subdomains) a test may not reach.
GUARDED_DOMAINS = ("mixpanel.com", "posthog.com")

# frames from these packages are not "the call site" a user wants to see
_LIBRARY_PARTS = tuple(
    os.sep + part + os.sep
    for part in ("consumers", "tracker", "requests", "urllib3", "httpx", "httpcore", "anyio",
                 "asyncio", "concurrent", "_pytest", "pluggy")
)
_LIBRARY_FILES = ("threading.py", "socket.py", "selectors.py")


def _in_library(filename: str) -> bool:
    return any(part in filename for part in _LIBRARY_PARTS) or filename.endswith(_LIBRARY_FILES)


class RealHostError(RuntimeError):
    """A test tried to reach a real Mixpanel or PostHog host."""


@attrs.frozen
class RealHostAttempt:
    """One refused lookup: the host, the thread and the stack that asked for it."""

    host: str
    port: Any
    thread: str
    stack: tuple[traceback.FrameSummary, ...] = attrs.field(repr=False)

    @property
    def call_site(self) -> str:
        """``file:line in function`` of the innermost frame outside the library and its deps.

        On a consumer's delivery thread, where no user code is on the stack,
        the consumer's frame that sent.
        """
        for frame in reversed(self.stack):
            if not _in_library(frame.filename):
                return f"{frame.filename}:{frame.lineno} in {frame.name}"
        # a consumer's own thread: no user frame; name the library frame that sent
        for frame in reversed(self.stack):
            if os.sep + "consumers" + os.sep in frame.filename:
                return f"{frame.filename}:{frame.lineno} in {frame.name}"
        return "<unknown>"

    def describe(self) -> str:
        """One paragraph for a test failure: what was refused, where, and what to do instead."""
        return (
            f"a test tried to reach the real host {self.host}"
            f"{'' if self.port in (None, 0) else f':{self.port}'} (thread {self.thread}), "
            f"called from {self.call_site}. Tests must not send to a real Mixpanel or PostHog "
            "project: use the tracking_collector fixture (every region is served locally) or "
            "the tracking_sink fixture, or mark the test allow_real_tracking_hosts."
        )


def _guarded(host: object, domains: Iterable[str]) -> Optional[str]:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return None
    name = host.rstrip(".").lower()
    for domain in domains:
        if name == domain or name.endswith("." + domain):
            return name
    return None


class RealHostGuard:
    """Guards ``socket.getaddrinfo`` while installed (a context manager, or install/uninstall)."""

    def __init__(self, domains: Iterable[str] = GUARDED_DOMAINS) -> None:
        self.domains = tuple(d.lower() for d in domains)
        self._lock = threading.Lock()
        self._attempts: list[RealHostAttempt] = []
        self._original: Optional[Callable[..., Any]] = None

    @property
    def installed(self) -> bool:
        """Whether lookups go through the guard now."""
        return self._original is not None

    def install(self) -> RealHostGuard:
        """Start refusing guarded hosts in this process."""
        if self._original is None:
            self._original = socket.getaddrinfo
            socket.getaddrinfo = self._getaddrinfo
        return self

    def uninstall(self) -> None:
        """Put ``socket.getaddrinfo`` back (only if it is still ours)."""
        original, self._original = self._original, None
        if original is not None and socket.getaddrinfo == self._getaddrinfo:
            socket.getaddrinfo = original

    def __enter__(self) -> RealHostGuard:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    def attempts(self) -> list[RealHostAttempt]:
        """Every refused attempt since the last :meth:`take`, oldest first."""
        with self._lock:
            return list(self._attempts)

    def take(self) -> list[RealHostAttempt]:
        """The refused attempts, forgetting them."""
        with self._lock:
            attempts, self._attempts = self._attempts, []
        return attempts

    def _getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        original = self._original or socket.getaddrinfo
        name = _guarded(host, self.domains)
        if name is None:
            return original(host, port, *args, **kwargs)
        attempt = RealHostAttempt(
            host=name,
            port=port,
            thread=threading.current_thread().name,
            stack=tuple(traceback.extract_stack()[:-1]),
        )
        with self._lock:
            self._attempts.append(attempt)
        raise RealHostError(attempt.describe())
