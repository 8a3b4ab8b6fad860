"""Django: an app that builds the tracker from settings, and a middleware for the request context.

Settings::

    INSTALLED_APPS = [..., "tracker.integrations.django"]
    MIDDLEWARE = [
        ...,
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "tracker.integrations.django.TrackingMiddleware",
    ]
    TRACKING = {
        "TOKEN": "your-project-token",
        "REGION": "eu",                 # or "API_HOST": "https://..."
        "CONTEXT": "myapp.tracking.request_context",   # optional
    }

In a view, ``tracker().track(...)``.  While a request is served, the
tracker's context holds ``distinct_id`` (the authenticated user's primary
key, as text) and whatever ``CONTEXT`` (a dotted path to
``callable(request) -> dict``) returns.  The consumer is flushed and closed
at interpreter exit (a gunicorn or runserver worker's end).
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Mapping
from typing import Any, Callable, Optional, Union

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from tracker.integrations._core import Tracking
from tracker.tracker import Tracker

__all__ = ["TrackingMiddleware", "check_settings", "get_tracking", "tracker"]

_lock = threading.Lock()
_tracking: Optional[Tracking] = None


def check_settings() -> dict[str, Any]:
    config = getattr(settings, "TRACKING", None)
    if not isinstance(config, Mapping):
        raise ImproperlyConfigured(
            "settings.TRACKING must be a dict such as {'TOKEN': '...', 'REGION': 'eu'}"
        )
    unknown = set(config) - {"TOKEN", "REGION", "API_HOST", "CONTEXT", "TIMEOUT"}
    if unknown:
        raise ImproperlyConfigured(f"settings.TRACKING has unknown keys: {sorted(unknown)}")
    if not isinstance(config.get("TOKEN"), str) or not config["TOKEN"]:
        raise ImproperlyConfigured("settings.TRACKING['TOKEN'] must be your project token")
    return dict(config)


def get_tracking() -> Tracking:
    """The process's :class:`Tracking`, built from ``settings.TRACKING`` on first use."""
    global _tracking
    if _tracking is None:
        with _lock:
            if _tracking is None:
                config = check_settings()
                _tracking = Tracking(
                    config["TOKEN"],
                    region=config.get("REGION"),
                    api_host=config.get("API_HOST"),
                    timeout=float(config.get("TIMEOUT", 5.0)),
                )
    return _tracking


def tracker() -> Tracker:
    """The process's tracker (see :func:`get_tracking`)."""
    return get_tracking().tracker


def _user_context(user: Any) -> dict[str, Any]:
    if user is not None and getattr(user, "is_authenticated", False):
        return {"distinct_id": str(user.pk)}
    return {}


def _custom_context() -> Optional[Callable[[Any], Mapping[str, Any]]]:
    path = check_settings().get("CONTEXT")
    return None if path is None else import_string(path)


class TrackingMiddleware:
    """Sets the tracker's context for each request (sync and async views alike)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        from asgiref.sync import iscoroutinefunction, markcoroutinefunction

        self.get_response = get_response
        self._custom = _custom_context()
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def _fields(self, request: Any, user: Any) -> dict[str, Any]:
        fields = _user_context(user)
        if self._custom is not None:
            fields.update(self._custom(request))
        return fields

    def __call__(self, request: Any) -> Union[Any, Awaitable[Any]]:
        if self._async:
            return self._acall(request)
        fields = self._fields(request, getattr(request, "user", None))
        with get_tracking().context(fields):
            return self.get_response(request)

    async def _acall(self, request: Any) -> Any:
        auser = getattr(request, "auser", None)  # Django 5: the user without blocking the loop
        user = await auser() if auser is not None else None
        with get_tracking().context(self._fields(request, user)):
            return await self.get_response(request)
