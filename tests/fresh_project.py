"""A minimal Django project written to a temporary directory, run as its own
``manage.py`` process: the way a user meets the system checks.

The test process has long imported every module of the app, so a check that
only registers itself on import looks fine there; a fresh process shows what
``manage.py check`` really reports.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANAGE_PY = """\
import sys

from django.core.management import execute_from_command_line

execute_from_command_line(sys.argv)
"""

# A model with an AI field: the app's checks then also run from the field's check(),
# during the model checks (too late to register a check for the same run).
SHOP_MODELS = """\
from django.db import models

from django_ai_fields.fields import AIGeneratedField


class Product(models.Model):
    title = models.CharField(max_length=100)
    tagline = AIGeneratedField(prompt="A tagline for {title}", max_length=200, blank=True)
"""

BASE_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_rq",
    "django_ai_fields",
]


@dataclass
class FreshProject:
    """``AI_FIELDS`` and the apps of a new project in ``directory``."""

    directory: Path
    ai_fields: dict[str, Any] = field(default_factory=dict)
    installed_apps: list[str] = field(default_factory=lambda: list(BASE_APPS))
    with_ai_field: bool = False
    # More settings (they override the ones above), and more files: {path: text}.
    extra_settings: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    # Python lines appended to the settings module (say, TASKS or a Celery app).
    settings_code: str = ""

    def write(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "manage.py").write_text(MANAGE_PY)
        apps = [*self.installed_apps, *(["shop"] if self.with_ai_field else [])]
        settings = {
            "SECRET_KEY": "fresh-project",
            "USE_TZ": True,
            "DEFAULT_AUTO_FIELD": "django.db.models.BigAutoField",
            "INSTALLED_APPS": apps,
            "DATABASES": {
                "default": {
                    "ENGINE": "django.db.backends.sqlite3",
                    "NAME": str(self.directory / "db.sqlite3"),
                }
            },
            "RQ_QUEUES": {"default": {"URL": "redis://127.0.0.1:1/0"}},  # never connected
            "RQ": {"WORKER_CLASS": "django_ai_fields.rq_worker.Worker"},  # as the quick start
            "AI_FIELDS": self.ai_fields,
            **self.extra_settings,
        }
        lines = [f"{name} = {value!r}\n" for name, value in settings.items()]
        settings_module = "".join(lines) + self.settings_code
        (self.directory / "fresh_settings.py").write_text(settings_module)
        for path, text in self.files.items():
            (self.directory / path).write_text(text)
        if self.with_ai_field:
            shop = self.directory / "shop"
            shop.mkdir(exist_ok=True)
            (shop / "__init__.py").write_text("")
            (shop / "models.py").write_text(SHOP_MODELS)

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``python manage.py <args>`` with the worktree's interpreter."""
        self.write()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AI_FIELDS_", "DJANGO_"))}
        env.update(
            DJANGO_SETTINGS_MODULE="fresh_settings",
            PYTHONPATH=str(self.directory),
        )
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=self.directory,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def check(self, *args: str) -> str:
        """The whole output of ``manage.py check`` (both streams)."""
        result = self.manage("check", *args)
        return result.stdout + result.stderr
