"""The Django app: checks the ``PGWERK`` setting at startup and rebuilds the ``Werk`` when
the settings change."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed


class PgwerkConfig(AppConfig):
    name = "pgwerk.contrib.django"
    label = "pgwerk"
    verbose_name = "pgwerk"

    def ready(self) -> None:
        checks.register(check_settings, "pgwerk")
        setting_changed.connect(_forget_werk, dispatch_uid="pgwerk.contrib.django")


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``manage.py check``: the ``PGWERK`` setting can be read."""
    from pgwerk.contrib.django._settings import read_settings

    try:
        read_settings()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="pgwerk.E001")]
    return []


def _forget_werk(setting: str, **kwargs: Any) -> None:
    if setting in ("PGWERK", "DATABASES"):
        from pgwerk.contrib.django import reset_werk

        reset_werk()
