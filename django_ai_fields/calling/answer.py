"""Getting a usable answer: moderation, the routed call, parsing, and at most one
extra call when the answer does not fit.

- Invalid JSON or a schema violation: one *repair* call whose prompt adds the
  validation error and the rejected answer; still invalid -> ``invalid_output``.
- A JSON or choice answer cut off at ``max_tokens`` (``finish_reason="length"``)
  that does not parse: one call with twice the ``max_tokens``; still unusable ->
  ``invalid_output``. A cut-off *text* answer is kept as it is.
- Plain text and choices get no repair call (a choice is matched closely in
  outputs.match_choice instead). Empty text is ``invalid_output`` at once.

Every call writes its own AIUsage row and is charged to the job as it is booked
(pipeline.book); the job's tokens and cost add up all of them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from django.utils.translation import gettext as _

from ..conf import get_setting
from ..declare.outputs import InvalidOutput, OutputTooLarge, check_size
from ..declare.prompts import fence
from ..models import AIJob
from ..providers import CompletionResponse
from . import moderation, routing
from .pipeline import Pipeline, Prepared

LENGTH = "length"
# How much of a rejected answer the repair prompt quotes back.
QUOTED_ANSWER_CHARS = 4000


class Unusable(InvalidOutput):
    """The answer stays invalid; carries the last response (kept on the job)."""

    def __init__(self, message: str, response: CompletionResponse):
        super().__init__(message)
        self.response = response


def usable_answer(
    job: AIJob, prepared: Prepared
) -> Pipeline[tuple[Prepared, CompletionResponse, Any]]:
    """Returns (the request that answered, its last response, the parsed value).
    Raises routing.Deferred, QuotaRefused, ProviderError or Unusable."""
    moderation.check(prepared.request.prompt, moderation.INPUT)
    prepared, response = yield from routing.call(job, prepared)
    try:
        return prepared, response, checked_answer(prepared, response)
    except InvalidOutput as problem:
        retry = second_request(prepared, response, problem)
        if retry is None:
            raise Unusable(str(problem), response) from problem
        first_problem = problem
    retried = replace(prepared, request=retry)
    prepared, response = yield from routing.call(job, retried, fallbacks=False)
    try:
        return prepared, response, checked_answer(prepared, response)
    except InvalidOutput as problem:
        message = _("Still invalid after one more call (first: %(first)s): %(second)s") % {
            "first": first_problem,
            "second": problem,
        }
        raise Unusable(message, response) from problem


def checked_answer(prepared: Prepared, response: CompletionResponse) -> Any:
    """Moderate and parse one answer; raises InvalidOutput or ProviderError.
    An answer over MAX_OUTPUT_CHARS is refused before anything reads it."""
    check_size(response.text)
    moderation.check(response.text, moderation.OUTPUT)
    try:
        return prepared.function.parse_response(response.text)
    except InvalidOutput as exc:
        if response.finish_reason == LENGTH:
            limit = prepared.request.max_tokens
            raise type(exc)(
                _("The answer was cut off at max_tokens (%(limit)s): %(error)s")
                % {"limit": limit, "error": exc}
            ) from exc
        raise


def structured(prepared: Prepared) -> bool:
    """JSON or choices: answers a cut-off can break."""
    function = prepared.function
    return bool(function.json_output or function.json_schema or function.choices())


def second_request(prepared: Prepared, response: CompletionResponse, problem: InvalidOutput) -> Any:
    """The one extra request for an unusable answer, or None when none helps."""
    if not get_setting("OUTPUT_REPAIR") or isinstance(problem, OutputTooLarge):
        return None  # asking again for a huge answer only pays for another one
    request = prepared.request
    if response.finish_reason == LENGTH and structured(prepared):
        return replace(request, max_tokens=request.max_tokens * 2)
    function = prepared.function
    if function.json_output or function.json_schema:
        return replace(request, prompt=repair_prompt(request.prompt, response.text, problem))
    return None


def repair_prompt(prompt: str, rejected: str, problem: InvalidOutput) -> str:
    quoted = rejected[:QUOTED_ANSWER_CHARS]
    return "\n\n".join(
        [
            prompt,
            _("Your previous answer was rejected: %(error)s") % {"error": problem},
            _("The rejected answer: %(answer)s") % {"answer": fence(quoted, "rejected_answer")},
            _("Answer again with only a corrected JSON value."),
        ]
    )
