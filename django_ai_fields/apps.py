import sys

from django.apps import AppConfig, apps
from django.db.models.signals import class_prepared
from django.utils.translation import gettext_lazy as _


class AIFieldsConfig(AppConfig):
    name = "django_ai_fields"
    verbose_name = _("AI fields")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.utils.module_loading import autodiscover_modules

        from .intake.tracking import install
        from .tenants import credential_audit as credentials  # noqa: F401  (register the system checks)

        for model in apps.get_models():
            install(model)
        class_prepared.connect(_install_late_model, dispatch_uid="django_ai_fields.late")
        # Each installed app's ai_functions.py registers its AI functions.
        autodiscover_modules("ai_functions")
        from .observability import metrics

        metrics.install()  # the queue depth gauge, when prometheus_client is installed
        if _is_worker_process():
            from .jobs.sweep import schedule_sweep
            from .providers import preload

            preload()
            # A (re)started worker arms the periodic sweep: after Redis lost its data
            # (restart without persistence) nothing else would, with the queue empty.
            schedule_sweep()


def _is_worker_process() -> bool:
    """``manage.py rqworker``: import the SDKs once, before RQ forks a work horse
    per job, instead of in every work horse (about 1 s for anthropic)."""
    return len(sys.argv) > 1 and sys.argv[1] in ("rqworker", "rqworker-pool")


def _install_late_model(sender: type, **kwargs: object) -> None:
    """Models created after start-up (tests, dynamic models) get tracking too."""
    if apps.ready:
        from .intake.tracking import install

        install(sender)
