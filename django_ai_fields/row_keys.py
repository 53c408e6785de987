"""How a job names its row: ``AIJob.object_id``, encoded and decoded here only.

- A single-column primary key is stored as ``str(pk)`` (``"42"``, a UUID with its
  hyphens, a text key as is).
- A composite primary key (Django 5.2's ``CompositePrimaryKey``) is stored as a JSON
  array of its parts' texts, in the key's order, compact and not ASCII-escaped:
  ``CompositePrimaryKey("course", "student")`` with ``("a,b", 7)`` is ``["a,b","7"]``.
  Commas, quotes and slashes in a part survive (JSON escapes ``"`` and ``\\``).

Supported parts (``unsupported_parts``, refused by a system check otherwise):
integers, text (``CharField``, ``TextField`` and their subclasses) and foreign keys to
those, the types whose SQL text equals Python's ``str()``, so the encoding can also be
computed in SQL (``in_sql``) for the queries that match jobs to rows (staleness,
retention). An encoded key longer than ``MAX_LENGTH`` refuses the save (``KeyTooLong``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connections, models
from django.db.models import Value
from django.db.models.functions import Cast, Concat, Replace, Substr

__all__ = [
    "MAX_LENGTH",
    "KeyTooLong",
    "decode",
    "in_sql",
    "is_composite",
    "key_of",
    "key_of_pk",
    "pk_filter",
    "pks_filter",
    "to_pk_sql",
    "unsupported_parts",
]

MAX_LENGTH = 255  # AIJob.object_id's max_length

SUPPORTED_PARTS: tuple[type[models.Field[Any, Any]], ...] = (
    models.IntegerField,  # and its small/big/positive/auto variants
    models.CharField,
    models.TextField,
)


class KeyTooLong(ValueError):
    """A composite key whose encoding does not fit ``AIJob.object_id``."""


def is_composite(model: type[models.Model]) -> bool:
    return isinstance(model._meta.pk, models.CompositePrimaryKey)


def parts(model: type[models.Model]) -> Sequence[models.Field[Any, Any]]:
    key = model._meta.pk
    if not isinstance(key, models.CompositePrimaryKey):
        raise ValueError(f"{model._meta.label} has no composite primary key")
    return [field for field in key.fields if isinstance(field, models.Field)]


def key_of(instance: models.Model) -> str:
    """The ``object_id`` naming this row."""
    return key_of_pk(type(instance), instance.pk)


def key_of_pk(model: type[models.Model], pk: Any) -> str:
    """The ``object_id`` naming the row of ``model`` with primary key ``pk`` (a tuple
    for a composite key)."""
    if not is_composite(model):
        return str(pk)
    text = json.dumps([str(value) for value in pk], ensure_ascii=False, separators=(",", ":"))
    if len(text) > MAX_LENGTH:
        raise KeyTooLong(
            f"{model._meta.label}: the primary key {pk!r} encodes to {len(text)} characters; "
            f"AIJob.object_id holds {MAX_LENGTH}."
        )
    return text


def decode(model: type[models.Model], object_id: str) -> Any:
    """The primary key value an ``object_id`` names (a tuple for a composite key),
    ready for ``filter(pk=...)``. Raises ``ValueError`` for one that names no row."""
    if not is_composite(model):
        return object_id
    texts = json.loads(object_id)
    fields = parts(model)
    if not isinstance(texts, list) or len(texts) != len(fields):
        raise ValueError(f"{object_id!r} is no key of {model._meta.label}")
    return tuple(field.to_python(text) for field, text in zip(fields, texts, strict=True))


def pk_filter(model: type[models.Model], object_id: str) -> models.Q:
    """The filter loading the row an ``object_id`` names."""
    return models.Q(pk=decode(model, object_id))


def pks_filter(model: type[models.Model], object_ids: Iterable[str]) -> models.Q:
    """The filter loading the rows these ``object_id``s name (ids naming no row of
    ``model``, e.g. after its key changed shape, are left out)."""
    pks = []
    for object_id in object_ids:
        try:
            pks.append(decode(model, object_id))
        except ValueError:
            continue
    if not is_composite(model):
        return models.Q(pk__in=sorted(pks))
    return models.Q(pk__in=pks) if pks else models.Q(pk__in=[])


def unsupported_parts(model: type[models.Model]) -> list[models.Field[Any, Any]]:
    """The parts of a composite key that ``object_id`` cannot name (none for others)."""
    if not is_composite(model):
        return []
    return [field for field in parts(model) if not isinstance(part_target(field), SUPPORTED_PARTS)]


def part_target(field: models.Field[Any, Any]) -> models.Field[Any, Any]:
    """The column a part holds: a foreign key's target field."""
    while isinstance(field, models.ForeignKey):
        field = field.target_field
    return field


def in_sql(pk: Any, model: type[models.Model], db: str) -> Any:
    """``key_of`` computed in SQL from the row's primary key (``pk``: ``OuterRef("pk")``
    or ``F("pk")``), so the jobs' ``object_id`` index can be used."""
    if is_composite(model):
        return composite_in_sql(pk, model)
    text = Cast(pk, output_field=models.CharField())
    if not hex_uuid_pk(model, db):
        return text
    pieces: list[Any] = []
    for start, length in UUID_GROUPS:
        pieces += [Value("-")] if pieces else []
        pieces.append(Substr(text, start, length))
    return Concat(*pieces, output_field=models.CharField())


def composite_in_sql(pk: Any, model: type[models.Model]) -> Any:
    """The JSON array of a composite key's parts, built in SQL: each part cast to
    text, its ``\\`` and ``"`` escaped (a part with control characters never matches)."""
    outer = type(pk)  # OuterRef or F: each part referenced the same way
    pieces: list[Any] = [Value('["')]
    for index, field in enumerate(parts(model)):
        if index:
            pieces.append(Value('","'))
        text = Cast(outer(field.attname), output_field=models.CharField())
        escaped = Replace(Replace(text, Value("\\"), Value("\\\\")), Value('"'), Value('\\"'))
        pieces.append(escaped)
    pieces.append(Value('"]'))
    return Concat(*pieces, output_field=models.CharField())


def to_pk_sql(object_id: Any, model: type[models.Model], db: str) -> Any:
    """An ``object_id`` as a single-column primary key holds it (the reverse of
    ``in_sql``), so the rows' primary key index is used. Not for composite keys:
    match ``in_sql`` of the rows against the ``object_id`` instead."""
    if is_composite(model):
        raise ValueError(f"{model._meta.label} has a composite primary key")
    if hex_uuid_pk(model, db):
        return Replace(object_id, Value("-"), Value(""))
    return Cast(object_id, output_field=model._meta.pk)


def hex_uuid_pk(model: type[models.Model], db: str) -> bool:
    """A UUID primary key stored as 32 hex digits (no native uuid type)."""
    native = connections[db].features.has_native_uuid_field
    return isinstance(model._meta.pk, models.UUIDField) and not native


# Where the hyphens of str(uuid) go: groups of 8-4-4-4-12 hex digits.
UUID_GROUPS = ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))
