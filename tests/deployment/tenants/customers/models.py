"""The tenant model of the django-tenants project (in SHARED_APPS: public)."""

from django.db import models
from django_tenants.models import DomainMixin, TenantMixin


class Client(TenantMixin):
    name = models.CharField(max_length=100)
    auto_create_schema = True  # saving a tenant creates and migrates its schema


class Domain(DomainMixin):
    pass
