"""The step log: a short list of what a job did, for progress modals and the admin.

Steps are kept on the job row and rewritten with the phase update that adds
them, so the log costs no extra query.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from ..models import AIJob, Phase, Status

MAX_STEPS = 50

PHASE_MESSAGES = {
    Phase.INIT: "Starting",
    Phase.PREP: "Loading the data and building the prompt",
    Phase.AI_CALL: "Calling the provider",
    Phase.PARSE: "Reading the answer",
    Phase.SAVE: "Saving the result",
    Phase.DONE: "Done",
    Phase.BATCH: "Waiting for the provider's batch",
}


def describe(values: dict[str, Any]) -> str:
    status, error = values.get("status"), values.get("error") or ""
    if values.get("phase") == Phase.BATCH:
        return PHASE_MESSAGES[Phase.BATCH]
    if status == Status.IN_REVIEW:
        return "Waiting for a person's review"
    if status == Status.QUEUED:
        return f"Waiting to try again: {error}" if error else "Waiting to try again"
    if status in (Status.FAILED, Status.CANCELLED, Status.SUPERSEDED):
        return f"{Status(status).label}: {error}" if error else str(Status(status).label)
    if values.get("phase") == Phase.AI_CALL and values.get("model"):
        return f"Calling {values.get('provider')} ({values['model']})"
    return PHASE_MESSAGES.get(values.get("phase", ""), "")


def with_step(job: AIJob, values: dict[str, Any], **extra: Any) -> list[dict[str, Any]]:
    """The job's steps plus one for ``values`` (and a start step for a new attempt)."""
    steps = list(job.steps or [])
    now = timezone.now().isoformat()
    if not steps or steps[-1].get("attempt") != job.attempts:
        steps.append(_step(job, Phase.INIT, f"Attempt {job.attempts} started", now))
    steps.append(_step(job, values.get("phase", job.phase), describe(values), now, **extra))
    return steps[-MAX_STEPS:]


def with_note(job: AIJob, phase: str, message: str, **extra: Any) -> list[dict[str, Any]]:
    """The job's steps plus one that changes no phase (what PREP found, say)."""
    steps = list(job.steps or [])
    steps.append(_step(job, phase, message, timezone.now().isoformat(), **extra))
    return steps[-MAX_STEPS:]


def _step(job: AIJob, phase: str, message: str, at: str, **extra: Any) -> dict[str, Any]:
    return {"phase": phase, "message": message, "at": at, "attempt": job.attempts, **extra}


def with_tool_calls(job: AIJob, steps: list[dict[str, Any]], response: Any) -> list[dict[str, Any]]:
    """``steps`` with one step listing the hosted tool calls the answer made (if any),
    before the last step; each call: tool, status and its query or code (shortened)."""
    calls = list(getattr(response, "tool_calls", None) or [])
    if not calls:
        return steps
    counts: dict[str, int] = {}
    for call in calls:
        counts[call["type"]] = counts.get(call["type"], 0) + 1
    message = "Tool calls: " + ", ".join(f"{tool} ({n})" for tool, n in counts.items())
    step = _step(job, Phase.AI_CALL, message, timezone.now().isoformat(), tool_calls=calls)
    return [*steps[:-1], step, *steps[-1:]][-MAX_STEPS:]
