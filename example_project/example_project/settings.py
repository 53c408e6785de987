"""Settings of the example project, read from the environment (django-environ).

Every variable is optional; see ``.env.example``. Out of the box it runs on a
SQLite file, an embedded Redis and the offline provider, with no network.
"""

from __future__ import annotations

from pathlib import Path

import environ

from .embedded_redis import queue_config

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")

SECRET_KEY = env("SECRET_KEY", default="example-project-insecure-key")
DEBUG = env.bool("DEBUG", default=True)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_rq",
    "import_export",
    "django_ai_fields",
    "leads",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
STATIC_URL = "static/"
# Company logos (Lead.logo); served by runserver while DEBUG is on.
MEDIA_URL = "media/"
MEDIA_ROOT = env("MEDIA_ROOT", default=str(BASE_DIR / "media"))

# The leads page needs a login; the admin's login page serves (user admin/admin from
# `manage.py demo_user` or `manage.py demo` while DEBUG is on).
LOGIN_URL = "admin:login"

# RQ: REDIS_URL if set, else an embedded redis-server started on first use.
REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    RQ_QUEUES = {"default": {"URL": REDIS_URL}}
    REDIS_DESCRIPTION = REDIS_URL
else:
    _queue, REDIS_DESCRIPTION = queue_config(BASE_DIR / ".redis")
    RQ_QUEUES = {"default": _queue}
# RQ's forking worker, stopping at once (docs/deployment.md, check W025).
RQ = {"WORKER_CLASS": "django_ai_fields.rq_worker.Worker"}

OPENAI_API_KEY = env("OPENAI_API_KEY", default="")
AI_FIELDS = {
    # Without a key, the deterministic offline provider writes the fields.
    "DEFAULT_PROVIDER": "openai" if OPENAI_API_KEY else "offline",
    "DEFAULT_MODEL": env("AI_FIELDS_MODEL", default="gpt-4o-mini"),
    "PROVIDERS": {
        "openai": {
            "API_KEY": OPENAI_API_KEY,
            "BASE_URL": env("OPENAI_BASE_URL", default=None),
            "TIMEOUT": 30,
        },
    },
    "QUEUE": "default",
    "TENANT_RESOLVER": "leads.tenancy.lead_company",
}
