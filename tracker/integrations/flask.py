"""Flask: an extension that builds the tracker from the app's config and sets the request context.

::

    tracking = Tracking()                 # or Tracking(app)

    def create_app():
        app = Flask(__name__)
        app.config["TRACKING_TOKEN"] = "your-project-token"
        app.config["TRACKING_REGION"] = "eu"       # or TRACKING_API_HOST
        tracking.init_app(app)
        return app

    @app.post("/signup")
    def signup():
        tracking.tracker.track(user_id, "Signed Up")

While a request is served the tracker's context holds what ``context``
(``callable() -> dict``, called inside the request) returns, such as
``{"distinct_id": session["user_id"]}``.  The consumer is flushed and closed
at interpreter exit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, Callable, Optional

from flask import Flask, current_app, g

from tracker.integrations._core import Tracking as _Tracking
from tracker.tracker import Tracker

__all__ = ["Tracking"]

_KEY = "tracking"
_G_STACK = "_tracking_context"


class Tracking:
    """The Flask extension: ``Tracking(app)`` or ``Tracking()`` then ``init_app(app)``."""

    def __init__(
        self,
        app: Optional[Flask] = None,
        *,
        context: Optional[Callable[[], Mapping[str, Any]]] = None,
    ) -> None:
        self._context = context
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Build this app's tracker from ``TRACKING_*`` config and hook its requests."""
        token = app.config.get("TRACKING_TOKEN")
        if not isinstance(token, str) or not token:
            raise RuntimeError("app.config['TRACKING_TOKEN'] must be your project token")
        app.extensions[_KEY] = _Tracking(
            token,
            region=app.config.get("TRACKING_REGION"),
            api_host=app.config.get("TRACKING_API_HOST"),
            timeout=float(app.config.get("TRACKING_TIMEOUT", 5.0)),
        )
        app.before_request(self._enter)
        app.teardown_request(self._exit)

    @staticmethod
    def _state() -> _Tracking:
        try:
            return current_app.extensions[_KEY]  # type: ignore[no-any-return]
        except KeyError:
            raise RuntimeError("Tracking.init_app(app) was not called for this app") from None

    @property
    def tracker(self) -> Tracker:
        """The current app's tracker."""
        return self._state().tracker

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Deliver what the current app's consumer holds."""
        return self._state().flush(timeout)

    def _enter(self) -> None:
        fields = dict(self._context()) if self._context is not None else {}
        stack = contextlib.ExitStack()
        stack.enter_context(self._state().context(fields))
        setattr(g, _G_STACK, stack)

    @staticmethod
    def _exit(error: Optional[BaseException] = None) -> None:
        stack = g.pop(_G_STACK, None)
        if stack is not None:
            stack.close()
