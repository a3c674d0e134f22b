"""The Django app: add ``"ratelimitd.django"`` to ``INSTALLED_APPS`` for ``manage.py ratelimitd_health``."""

from django.apps import AppConfig


class RatelimitdConfig(AppConfig):
    """Deliberately no ``ready()``: a channel made here would be inherited by forked workers."""

    name = "ratelimitd.django"
    label = "ratelimitd"
    verbose_name = "ratelimitd"
