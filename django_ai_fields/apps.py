"""The app config: installs change tracking, the system checks and, in workers,
the providers and the periodic sweep."""

import logging
import sys
import warnings

from django.apps import AppConfig, apps
from django.core import checks
from django.db.models.signals import class_prepared
from django.utils.translation import gettext_lazy as _

logger = logging.getLogger("django_ai_fields")


class AIFieldsConfig(AppConfig):
    name = "django_ai_fields"
    verbose_name = _("AI fields")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.utils.module_loading import autodiscover_modules

        from .intake.tracking import install

        register_checks()
        for model in apps.get_models():
            install(model)
        class_prepared.connect(_install_late_model, dispatch_uid="django_ai_fields.late")
        # Each installed app's ai_functions.py registers its AI functions.
        autodiscover_modules("ai_functions")
        from .observability import metrics
        from .observability.health import queue_health

        metrics.install(queue_health)  # the queue depth gauge, with prometheus_client
        _install_celery_tasks()
        if _is_worker_process():
            _start_worker()


def _start_worker() -> None:
    """In a worker: warm the providers and arm the periodic sweep. A (re)started
    worker arms it because after the queue lost its data (Redis restarted without
    persistence) nothing else would, with the queue empty."""
    from .jobs.sweep import schedule_sweep
    from .money.pricing import load_price_data

    _preload_providers()
    load_price_data()
    # Deliberate queries in ready(): a worker has no later hook that runs before its
    # first task, and the marks (SHARED_STATE "cache") and django-tasks-db's task
    # table live in the database. Django's warning about them would greet every start.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Accessing the database during app initialization")
        schedule_sweep()


def _install_celery_tasks() -> None:
    """With TASK_BACKEND "celery": register the entry points as Celery tasks, and warm
    each worker process as it starts (Celery's prefork children, ``worker_process_init``).
    Without Celery the system check reports it."""
    from .conf import get_setting

    if get_setting("TASK_BACKEND") != "celery":
        return
    try:
        from celery.signals import worker_process_init

        from .jobs import celery_tasks  # noqa: F401  (registers the tasks)
    except ImportError:
        return
    worker_process_init.connect(_warm_celery_worker, dispatch_uid="django_ai_fields.warm")


def _warm_celery_worker(**kwargs: object) -> None:
    _start_worker()


def register_checks() -> None:
    """Every system check of the app, registered here and nowhere else. Django copies
    the registry before it runs the checks, so one registered on import (say, by a
    field's check() during the model checks) would miss that run, and one in a module
    nothing imports would never run."""
    from .declare.checks import check_installation
    from .declare.input_checks import check_provider_apis
    from .deployment_checks import check_deployment
    from .tenants.credential_audit import check_tenant_base_urls

    checks.register(check_installation, checks.Tags.compatibility)
    checks.register(check_deployment, checks.Tags.compatibility)
    checks.register(check_provider_apis, checks.Tags.compatibility)
    checks.register(check_tenant_base_urls, checks.Tags.database)


def _is_worker_process() -> bool:
    """``manage.py rqworker``: import the SDKs once, before RQ forks a work horse
    per job, instead of in every work horse (about 1 s for anthropic); likewise
    django-tasks-db's ``manage.py db_worker``. (Celery: ``worker_process_init``.)"""
    return len(sys.argv) > 1 and sys.argv[1] in ("rqworker", "rqworker-pool", "db_worker")


def _preload_providers() -> None:
    """Import and warm every provider the project uses (the default and each
    field's) with the settings' credentials, so that each forked work horse
    inherits the SDK client instead of building it per job (Provider.warm())."""
    from .conf import get_setting, provider_settings
    from .fields import ai_fields_of
    from .providers import provider_class

    names = {get_setting("DEFAULT_PROVIDER")}
    for model in apps.get_models():
        names |= {field.ai.provider for field in ai_fields_of(model) if field.ai.provider}
    for name in names:
        try:
            cls = provider_class(name)
        except (ImportError, ValueError):
            continue  # the system checks report it
        try:
            cls(provider_settings(name)).warm()
        except Exception:  # warming only saves time: a worker must start without it
            logger.warning("Could not warm provider %r", name, exc_info=True)


def _install_late_model(sender: type, **kwargs: object) -> None:
    """Models created after start-up (tests, dynamic models) get tracking too."""
    if apps.ready:
        from .intake.tracking import install

        install(sender)
