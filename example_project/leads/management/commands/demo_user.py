"""``manage.py demo_user``: a superuser to log in with, for local demos only.

Creates (or resets) the user ``admin`` with the password ``admin``. It refuses to
run unless ``DEBUG`` is on: such an account must never exist in production.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

DEMO_USERNAME = "admin"
DEMO_PASSWORD = "admin"


def ensure_demo_user(username: str = DEMO_USERNAME, password: str = DEMO_PASSWORD) -> bool:
    """Create or reset the demo superuser; True if it was created."""
    user_model = get_user_model()
    user, created = user_model._default_manager.get_or_create(
        **{user_model.USERNAME_FIELD: username}
    )
    user.is_staff = user.is_superuser = user.is_active = True
    user.set_password(password)
    user.save()
    return created


class Command(BaseCommand):
    help = "Create (or reset) the superuser admin/admin for the demo. Only with DEBUG on."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default=DEMO_USERNAME)
        parser.add_argument("--password", default=DEMO_PASSWORD)

    def handle(self, *args: Any, username: str, password: str, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("demo_user only runs with DEBUG on; use createsuperuser.")
        created = ensure_demo_user(username, password)
        verb = "Created" if created else "Reset"
        self.stdout.write(f"{verb} the superuser {username!r} with the password {password!r}.")
