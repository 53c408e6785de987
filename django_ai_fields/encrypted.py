"""``EncryptedTextField``: a text column that holds a Fernet token, read as plaintext.

Python code (``save()``, ``objects.create()``, ``bulk_create()``,
``update_or_create()``, ``QuerySet.update(field=...)``, forms, the admin,
django-import-export, ``loaddata``) reads and writes plaintext; every one of
those paths goes through ``get_prep_value``, which encrypts with the newest key
of ``AI_FIELDS["ENCRYPTION_KEY"]`` (see crypto.py; a list of keys rotates).

A value that already is a token for one of the configured keys is stored as it
is, so fixtures written by ``dumpdata`` (which holds tokens) load unchanged and
old code assigning ``crypto.encrypt(...)`` does not encrypt twice.

A stored value that cannot be decrypted does not break loading the row: it
reads as an ``UnreadableSecret`` that names the likely cause and is written
back untouched. Code that needs the key (provider credentials) refuses it with
a message naming the row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models
from django.utils.translation import gettext_lazy as _

from . import crypto

PLAINTEXT_CAUSE = _(
    "the stored value is not an encrypted token: plaintext was written around the "
    "field (raw SQL, a database copy, code older than the encrypted field); save the "
    "key again or run manage.py ai_rotate_keys"
)
MISSING_KEY_CAUSE = _(
    "the stored token was encrypted with a key that is not in "
    "AI_FIELDS['ENCRYPTION_KEY'] (rotated without keeping the old key, or SECRET_KEY "
    "changed while no ENCRYPTION_KEY was set); put the old key back at the end of the list"
)


class UnreadableSecret:
    """A stored value the configured keys cannot decrypt. Truthy (something is
    stored), never equal to a plaintext, and never shows the stored value."""

    def __init__(self, stored: str) -> None:
        self.stored = stored

    @property
    def cause(self) -> str:
        return str(MISSING_KEY_CAUSE if crypto.looks_like_token(self.stored) else PLAINTEXT_CAUSE)

    @property
    def holds_plaintext(self) -> bool:
        return not crypto.looks_like_token(self.stored)

    def __bool__(self) -> bool:
        return True

    def __str__(self) -> str:
        return "<unreadable secret>"

    __repr__ = __str__


if TYPE_CHECKING:
    from django.db.models.expressions import Combinable

    # What django-stubs types the model attribute as: a row read back may hold an
    # UnreadableSecret (from_db_value), which is also written back as it is.
    _TextField = models.TextField[str | UnreadableSecret | Combinable, str | UnreadableSecret]
else:
    _TextField = models.TextField  # not subscriptable at runtime


class EncryptedTextField(_TextField):
    """Plaintext in Python, a Fernet token in the database ("" stays "")."""
    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if not value:
            return value
        plaintext = crypto.try_decrypt(value)
        return UnreadableSecret(value) if plaintext is None else plaintext

    def get_prep_value(self, value: Any) -> Any:
        if isinstance(value, UnreadableSecret):
            return value.stored  # written back as it was: never encrypted twice
        value = super().get_prep_value(value)
        if not value or crypto.try_decrypt(value) is not None:
            return value  # empty, or already a token for one of our keys
        return crypto.encrypt(value)

    def value_to_string(self, obj: models.Model) -> str:
        """Serialised (dumpdata) as the stored token, never as plaintext."""
        return str(self.get_prep_value(self.value_from_object(obj)) or "")
