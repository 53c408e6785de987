"""The optional moderation hook: check the prompt before the call and the answer after.

``AI_FIELDS["MODERATION"]`` names a callable ``(text, direction) -> str | None``
(``direction`` is ``"input"`` or ``"output"``); a returned reason, or a raised
``ModerationRefused``, refuses the job with ``bad_request``. ``"openai"`` selects
the built-in check against OpenAI's moderation endpoint (free of charge, so it
writes no AIUsage row).
"""

from __future__ import annotations

from collections.abc import Callable

from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

from ..conf import get_setting, provider_settings
from ..models import ErrorCode
from ..providers.base import ProviderError

INPUT, OUTPUT = "input", "output"
OPENAI_MODEL = "omni-moderation-latest"

Check = Callable[[str, str], str | None]


class ModerationRefused(Exception):
    """Raise from a moderation callable to refuse; the message is the reason."""


def hook() -> Check | None:
    path = get_setting("MODERATION")
    if not path:
        return None
    if callable(path):
        return path
    if path == "openai":
        return openai_moderation
    return import_string(path)


def check(text: str, direction: str) -> None:
    """Raise ProviderError(bad_request) when the hook refuses ``text``."""
    moderate = hook()
    if moderate is None or not text:
        return
    try:
        reason = moderate(text, direction)
    except ModerationRefused as exc:
        reason = str(exc) or _("refused")
    if reason:
        message = (
            _("Moderation refused the input: %(reason)s")
            if direction == INPUT
            else _("Moderation refused the answer: %(reason)s")
        )
        raise ProviderError(ErrorCode.BAD_REQUEST, message % {"reason": reason})


def openai_moderation(text: str, direction: str) -> str | None:
    """OpenAI's moderation endpoint, with the ``openai`` provider's key and BASE_URL.
    Returns the flagged categories, or None. Failures are ProviderErrors (retried)."""
    import openai

    from ..providers.base import clients, error_from_sdk

    config = provider_settings("openai")
    settings = (config.get("API_KEY"), config.get("BASE_URL"), float(config.get("TIMEOUT") or 30))
    client = clients.get(
        ("openai-moderation", *settings),
        lambda: openai.OpenAI(
            api_key=settings[0] or "missing",
            base_url=settings[1] or None,
            timeout=settings[2],
            max_retries=0,
        ),
    )
    try:
        result = client.moderations.create(
            model=config.get("MODERATION_MODEL") or OPENAI_MODEL, input=text
        ).results[0]
    except (openai.OpenAIError, ValueError) as exc:
        raise error_from_sdk(openai, exc) from exc
    if not result.flagged:
        return None
    categories = result.categories.model_dump(by_alias=True)
    flagged = sorted(name for name, hit in categories.items() if hit)
    return ", ".join(flagged) or "flagged"
