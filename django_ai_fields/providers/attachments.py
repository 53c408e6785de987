"""Files sent with a prompt (images, PDFs) and their spelling in each provider's API.

Every file goes inline, base64-encoded: a storage URL would have to be public
(or pre-signed) for the provider to fetch it, and would leave the file readable
by anyone holding the URL. Loading a model's file with its limits is
django_ai_fields.declare.file_inputs' work; this module only formats what it loaded.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

PDF = "application/pdf"


class Attachment:
    """One file's bytes and detected content type. Not a dataclass on purpose: the
    result-cache key (``asdict(request)``) shows it as ``str()``, its digest, not its bytes."""

    __slots__ = ("content_type", "data", "digest", "name")

    def __init__(self, name: str, content_type: str, data: bytes):
        self.name = name
        self.content_type = content_type
        self.data = data
        self.digest = hashlib.sha256(data).hexdigest()

    def __str__(self) -> str:
        return f"{self.name}:{self.content_type}:{self.digest}"

    __repr__ = __str__

    @property
    def is_image(self) -> bool:
        return self.content_type.startswith("image/")

    def base64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    def data_url(self) -> str:
        return f"data:{self.content_type};base64,{self.base64()}"

    @property
    def filename(self) -> str:
        return self.name.rsplit("/", 1)[-1] or "file"


def chat_content(prompt: str, attachments: list[Attachment]) -> str | list[dict[str, Any]]:
    """An OpenAI Chat Completions user message's content."""
    if not attachments:
        return prompt
    parts: list[dict[str, Any]] = [{"type": "text", "text": prompt}]
    for item in attachments:
        if item.is_image:
            parts.append({"type": "image_url", "image_url": {"url": item.data_url()}})
        else:
            file = {"filename": item.filename, "file_data": item.data_url()}
            parts.append({"type": "file", "file": file})
    return parts


def responses_content(prompt: str, attachments: list[Attachment]) -> str | list[dict[str, Any]]:
    """An OpenAI Responses API user message's content."""
    if not attachments:
        return prompt
    parts: list[dict[str, Any]] = [{"type": "input_text", "text": prompt}]
    for item in attachments:
        if item.is_image:
            parts.append({"type": "input_image", "image_url": item.data_url(), "detail": "auto"})
        else:
            parts.append(
                {"type": "input_file", "filename": item.filename, "file_data": item.data_url()}
            )
    return parts


def anthropic_content(prompt: str, attachments: list[Attachment]) -> str | list[dict[str, Any]]:
    """An Anthropic Messages user message's content: files first, as Anthropic advises."""
    if not attachments:
        return prompt
    blocks: list[dict[str, Any]] = []
    for item in attachments:
        source = {"type": "base64", "media_type": item.content_type, "data": item.base64()}
        blocks.append({"type": "image" if item.is_image else "document", "source": source})
    blocks.append({"type": "text", "text": prompt})
    return blocks
