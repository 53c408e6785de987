"""Helpers shared by the admin, API, template tag and command tests."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import Queue

from django_ai_fields.models import AIJob, AIUsage
from django_ai_fields.queues import get_queue
from django_ai_fields.rq_worker import SimpleWorker
from tests.testapp.models import Product

TENANT_FOR_USER = "tests.surfaces.tenant_of"
PRODUCT_TENANT = "tests.testapp.tenancy.product_tenant"


def tenant_of(user: Any) -> str | None:
    """Test mapping: user "acme-ann" belongs to tenant "acme"; "root" to none."""
    prefix, sep, _rest = user.username.partition("-")
    return prefix if sep else None


def make_user(username: str, *perms: str, superuser: bool = False, staff: bool = True) -> User:
    """A user with permissions given as "app_label.codename"."""
    # No password: tests log in with force_login, and hashing one costs ~0.3 s.
    user = User.objects.create(
        username=username, is_staff=staff or superuser, is_superuser=superuser
    )
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return User.objects.get(pk=user.pk)  # fresh: no stale permission cache


def product_job(product: Product, field: str = "tagline") -> AIJob:
    return AIJob.objects.filter(
        content_type=ContentType.objects.get_for_model(Product),
        object_id=str(product.pk),
        field_name=field,
    ).latest("pk")


def set_status(job: AIJob, status: str, **values: Any) -> AIJob:
    AIJob.objects.filter(pk=job.pk).update(status=status, **values)
    job.refresh_from_db()
    return job


def make_usage(days_ago: float = 0, **values: Any) -> AIUsage:
    """An AIUsage row, back-dated (created_at is auto_now_add)."""
    defaults: dict[str, Any] = {"provider": "openai", "model": "gpt-4o-mini"}
    usage = AIUsage.objects.create(**{**defaults, **values})
    created = timezone.now() - datetime.timedelta(days=days_ago)
    AIUsage.objects.filter(pk=usage.pk).update(created_at=created)
    usage.refresh_from_db()
    return usage


def age_job(job: AIJob, **ago: datetime.timedelta) -> None:
    """Back-date a job's timestamps, e.g. age_job(job, started_at=timedelta(hours=1))."""
    now = timezone.now()
    AIJob.objects.filter(pk=job.pk).update(**{name: now - delta for name, delta in ago.items()})


def dead_queue() -> Queue:
    """The AI queue on a Redis nobody runs: a real client getting real connection errors."""
    connection = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    return Queue("default", connection=connection)


@pytest.fixture
def live_worker() -> Iterator[SimpleWorker]:
    """A worker registered in Redis on the AI queue (as ``rqworker`` does at start)."""
    queue = get_queue()
    worker = SimpleWorker([queue], connection=queue.connection, name=f"test-{uuid.uuid4().hex}")
    worker.register_birth()
    yield worker
    worker.register_death()


@pytest.fixture
def shops(settings: Any) -> dict[str, Product]:
    """Two tenants' products (tenant = shop), each with its pending tagline job."""
    settings.AI_FIELDS = {**settings.AI_FIELDS, "TENANT_RESOLVER": PRODUCT_TENANT}
    return {
        "acme": Product.objects.create(shop="acme", title="Anvil", price=10),
        "globex": Product.objects.create(shop="globex", title="Globe", price=20),
    }


@pytest.fixture
def scoped(settings: Any) -> None:
    settings.AI_FIELDS = {**settings.AI_FIELDS, "TENANT_FOR_USER": TENANT_FOR_USER}
