"""The Django app config: ``settings.TRACKING`` is checked when Django starts."""

from __future__ import annotations

from django.apps import AppConfig

__all__ = ["TrackingConfig"]


class TrackingConfig(AppConfig):
    """The ``tracker.integrations.django`` app: checks ``settings.TRACKING`` at start."""

    name = "tracker.integrations.django"
    label = "tracking"
    verbose_name = "Tracking"

    def ready(self) -> None:
        from tracker.integrations.django import check_settings

        check_settings()  # a misconfiguration fails at start, not at the first request
