"""Files of a row as inputs of an AI field (``inputs=["photo"]``): loading them within
the limits, and noticing a new upload as a trigger change.

Limits (``AI_FIELDS``): ``INPUT_MAX_BYTES``, ``INPUT_MAX_PIXELS``,
``INPUT_CONTENT_TYPES``. The size is asked of the storage before anything is
read, the file is read in bounded chunks (a file that grew meanwhile stops at the
limit), and the content type is detected from the first bytes, never taken from
the file name a user chose. A file over a limit raises ValueError: the job ends
``bad_request`` with the message.

Change detection: a file input is a trigger field, compared by its name like any
column (no storage access when rows load or save). A save that uploads a new file
counts as a change even when the storage gives it the old name (storages that
overwrite, e.g. S3 with ``AWS_S3_FILE_OVERWRITE``): a file assigned to the field
(a form's upload, a ``ContentFile``) is written by that save, and that is noted
here before the save. ``instance.photo.save(name, content)`` writes the file
before the row's save and leaves only the name: under the same name it is not
noticed (call ``api.regenerate()``).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from django.core.files import File
from django.db import models
from django.db.models.fields.files import FieldFile
from django.db.models.signals import pre_save

from ..conf import get_setting
from ..providers.attachments import PDF, Attachment

CHUNK_BYTES = 64 * 1024
UPLOADED_ATTR = "_ai_fields_uploaded"
# Bytes a provider's tokens for one image are reserved as (quota worst case):
# OpenAI and Anthropic count at most about 1,600 tokens per image.
IMAGE_RESERVE_BYTES = 1_600

# (leading bytes, content type); WebP is checked apart (RIFF....WEBP).
SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", PDF),
)


class InputRefused(ValueError):
    """A file input breaks a limit; the message says which, for the job's error."""


def is_file_field(field: Any) -> bool:
    return isinstance(field, models.FileField)


def load_attachments(instance: models.Model, names: Iterable[str]) -> list[Attachment]:
    """The non-empty files of ``names`` on ``instance``, checked against the limits."""
    attachments = []
    for name in names:
        file = getattr(instance, name)
        if file:
            attachments.append(load(file, name))
    return attachments


def load(file: FieldFile, field_name: str) -> Attachment:
    limit = int(get_setting("INPUT_MAX_BYTES"))
    label = f"The file in {field_name!r} ({file.name})"
    try:
        size = file.size
    except (OSError, ValueError) as exc:
        raise InputRefused(f"{label} cannot be read: {exc}") from exc
    if size > limit:
        raise InputRefused(f"{label} has {size} bytes, more than INPUT_MAX_BYTES ({limit}).")
    data = read_bounded(file, limit, label)
    content_type = sniff(data)
    allowed = list(get_setting("INPUT_CONTENT_TYPES"))
    if content_type not in allowed:
        found = content_type or "an unknown type"
        raise InputRefused(f"{label} is {found}; allowed: {', '.join(allowed)}.")
    if content_type.startswith("image/"):
        check_pixels(data, label)
    return Attachment(file.name or field_name, content_type, data)


def read_bounded(file: FieldFile, limit: int, label: str) -> bytes:
    """At most ``limit`` bytes, read in chunks; more than that is refused."""
    chunks, total = [], 0
    try:
        with file.open("rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                total += len(chunk)
                if total > limit:
                    raise InputRefused(f"{label} is larger than INPUT_MAX_BYTES ({limit}).")
                chunks.append(chunk)
    except OSError as exc:
        raise InputRefused(f"{label} cannot be read: {exc}") from exc
    return b"".join(chunks)


def sniff(data: bytes) -> str:
    """The content type the first bytes show, or "" when none of the known ones."""
    for signature, content_type in SIGNATURES:
        if data.startswith(signature):
            return content_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return ""


def check_pixels(data: bytes, label: str) -> None:
    """Refuse an image over INPUT_MAX_PIXELS; Pillow reads the header only.
    Without Pillow installed the pixel count is not checked."""
    try:
        from PIL import Image
    except ImportError:
        return
    limit = int(get_setting("INPUT_MAX_PIXELS"))
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputRefused(f"{label} is not a readable image: {exc}") from exc
    if width * height > limit:
        raise InputRefused(
            f"{label} has {width}x{height} pixels, more than INPUT_MAX_PIXELS ({limit})."
        )


def reserve_bytes(attachments: Iterable[Attachment]) -> int:
    """What the files add to a call's worst case, in prompt bytes (quotas.worst_case)."""
    return sum(IMAGE_RESERVE_BYTES if a.is_image else len(a.data) for a in attachments)


# -- uploads as trigger changes --------------------------------------------------------


def watch_uploads(model: type[models.Model], attnames: Iterable[str]) -> None:
    """Note, before each save of ``model``, which of these file fields get a new file."""
    files = tuple(
        f.attname for f in model._meta.concrete_fields if is_file_field(f) and f.attname in attnames
    )
    if not files:
        return

    def note_uploads(
        sender: type, instance: models.Model, raw: bool = False, **kwargs: Any
    ) -> None:
        if raw:
            return
        values = instance.__dict__
        new = {a for a in files if _is_new(values.get(a))}
        if new:
            values[UPLOADED_ATTR] = new
        else:
            values.pop(UPLOADED_ATTR, None)

    uid = f"django_ai_fields.uploads:{model._meta.label}"
    pre_save.connect(note_uploads, sender=model, weak=False, dispatch_uid=uid)


def _is_new(value: Any) -> bool:
    """A file Django writes to the storage in this save: one assigned (an upload from
    a form, a ContentFile), not yet committed; a name read from the row is not."""
    if isinstance(value, FieldFile):
        # _committed is Django's own flag (FieldFile.save/pre_save); the stubs omit it.
        return bool(value) and not getattr(value, "_committed", True)
    return isinstance(value, File)


def uploaded(instance: models.Model, candidates: Iterable[str]) -> set[str]:
    """The file fields among ``candidates`` that this save gave a new file (once)."""
    noted = instance.__dict__.pop(UPLOADED_ATTR, None)
    return set(noted).intersection(candidates) if noted else set()
