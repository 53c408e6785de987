"""Handing open jobs to the task queue: the only way work reaches it.

Three shapes, each one call into the backend (backend.py) and one transition
(transitions.py); if the queue is unreachable the jobs stay (or go back to)
``pending`` and the sweep hands them over later, so nothing is lost:

- **a drain** (``to_drain``), the live path: a burst of saves makes one drain task,
  not one task per job. The jobs wait ``queued``, their ``rq_job_id`` naming the
  drain waiting in the queue (a ``DRAIN_PREFIX`` id), for whichever drain comes
  first. A mark names the waiting drain; the drain releases it as it starts, before
  it first looks for jobs, so the next commit requests the next drain meanwhile.
  A running drain with free slots and nothing to take may *listen* instead
  (``listen``, RQ only, ``DRAIN_LINGER``): it holds the mark itself, and a commit that
  hands it jobs wakes it (``backend.wake``) rather than requesting a new drain;
- **chunks** (``to_chunks``), backfills: tasks of CHUNK_SIZE jobs each;
- **a delayed run** (``later``), a retry waiting out its backoff: a task of its own.

Each hand-over happens inside its jobs' context (context.py: their database, their
schema), which the task carries to the worker. Drains are per context: a drain takes
only jobs handed over in its own (``drain_prefix``), and each context has its own
waiting-drain mark.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from ..conf import get_setting
from ..queues import RUN_CHUNK, RUN_DRAIN, RUN_JOB
from . import backend, context, transitions
from .context import Context

logger = logging.getLogger("django_ai_fields")

# Task ids of drains start with this: a job queued with such an id waits for
# whichever drain comes first. (A job put back for a delayed run has its own task,
# or none yet: the transition clears the id, so no drain takes it early.) Drains of
# another context than the default one: DRAIN_PREFIX_IN + the context's key + "-".
DRAIN_PREFIX = "ai-fields-drain-"
DRAIN_PREFIX_IN = "ai-fields-drain_"
# Names the drain that is queued and not yet started, or a running drain that
# listens (at most one per context).
WAITING_DRAIN_KEY = "django_ai_fields:drain:waiting"
# Seconds the mark lives: a drain still waiting then (every worker busy) gets a
# companion on the next commit; a drain deleted from the queue (``rq empty``, a
# flushed Redis) holds back new drains no longer than this.
WAITING_MARK_SECONDS = 5
QUEUE_DOWN = "the task queue is unreachable"
# A listening drain's mark: its id and this suffix. It lives LISTEN_MARK_SECONDS and
# the drain renews it while it listens, so a drain that died stops holding back new
# drains within that time (the jobs handed to it meanwhile are taken by the next
# drain, which the next commit or the sweep requests).
LISTENING = "+listening"
LISTEN_MARK_SECONDS = 2
# The list a listening drain waits on (BLPOP) for the commits' wake-ups.
WAKE_KEY = "django_ai_fields:drain:wake:{drain_id}"


def to_drain(job_ids: Sequence[int], job_context: Context | None = None) -> int:
    """Queue these open jobs (of ``job_context``; by default each in the one it
    recorded) for a drain and make sure one is coming. Returns how many were handed
    over (0: the queue is down, they stay pending).

    If the waiting drain's mark is gone once the jobs are marked, that drain has
    started (or stopped listening) and may have looked for jobs already, so another
    is requested; if it still names a listening drain, that drain is woken."""
    if not job_ids:
        return 0
    if job_context is None:
        return sum(to_drain(ids, own) for own, ids in context.split(context.current(), job_ids))
    with context.restore(job_context) as here:
        try:
            if backend.marks_shared():
                drain_id = waiting_drain(here) or request_drain(here)
                transitions.handed_over(job_ids, drain_id)
                _make_sure_taken(here, drain_id)
            else:
                _to_own_drain(here, job_ids)
        except Exception as exc:  # Redis down, misconfigured queue...: never lose the jobs
            _stay_pending(job_ids, exc)
            return 0
    return len(job_ids)


def _to_own_drain(here: Context, job_ids: Sequence[int]) -> None:
    """With marks only this process sees, a drain that another process started cannot
    take its mark back, and the next jobs would wait for it: each hand-over gets a
    drain of its own instead (more drains than needed; an idle one ends at once)."""
    drain_id = f"{drain_prefix(here)}{uuid.uuid4().hex}"
    transitions.handed_over(job_ids, drain_id)
    _send_drain(here, drain_id)


def _make_sure_taken(here: Context, drain_id: str) -> None:
    """After marking jobs for ``drain_id``: wake it if it listens, or request another
    drain if the mark names it no longer."""
    mark = backend.read_mark(waiting_mark(here))
    if mark == drain_id + LISTENING:
        backend.wake(WAKE_KEY.format(drain_id=drain_id))
    elif mark != drain_id:
        request_drain(here)


def drain_prefix(job_context: Context) -> str:
    """How the task ids of the drains of ``job_context`` start."""
    name = context.key(job_context)
    return f"{DRAIN_PREFIX_IN}{name}-" if name else DRAIN_PREFIX


def waiting_mark(job_context: Context) -> str:
    name = context.key(job_context)
    return f"{WAITING_DRAIN_KEY}:{name}" if name else WAITING_DRAIN_KEY


def waiting_drain(job_context: Context | None = None) -> str | None:
    """The id of the drain of this context that the next jobs are for, if any: one
    waiting in the queue (not started yet), or a running one listening for jobs."""
    mark = backend.read_mark(waiting_mark(job_context or context.current()))
    return mark.removesuffix(LISTENING) if mark else None


def request_drain(job_context: Context | None = None) -> str:
    """Enqueue a drain of this context unless one is waiting already; returns the
    waiting one's id (raises when the queue is unreachable)."""
    here = job_context or context.current()
    mark = waiting_mark(here)
    drain_id = f"{drain_prefix(here)}{uuid.uuid4().hex}"
    if not backend.set_mark(mark, drain_id, WAITING_MARK_SECONDS):
        return waiting_drain(here) or request_drain(here)
    try:
        _send_drain(here, drain_id)
    except Exception:
        backend.release_mark(mark, drain_id)
        raise
    return drain_id


def _send_drain(here: Context, drain_id: str) -> None:
    backend.send(
        RUN_DRAIN,
        context=here,
        task_id=drain_id,
        timeout=drain_timeout(),
        result_ttl=600,
        at_front=True,  # ahead of backfill chunks: live saves first
    )


def drain_timeout() -> int:
    """The task timeout of a drain: it stops taking jobs after DRAIN_SECONDS, and
    each job it has started ends within JOB_TIMEOUT."""
    return int(get_setting("DRAIN_SECONDS")) + 2 * int(get_setting("JOB_TIMEOUT"))


def drain_started(listen: bool = False) -> bool:
    """Called by a drain as it starts: from now on a commit requests the next one,
    or, with ``listen``, wakes this one (the mark that named it waiting now names it
    listening: no commit requests a drain in between). True when it listens."""
    mark = waiting_mark(context.current())
    try:
        own = backend.current_task_id()
        if listen and own and backend.swap_mark(mark, own, own + LISTENING, LISTEN_MARK_SECONDS):
            return True
        backend.release_mark(mark)
    except Exception as exc:
        logger.debug("Could not release the waiting-drain mark: %s", exc)
    return False


def forget_lost_drain(job_context: Context | None = None) -> None:
    """The sweep's part: drop the mark when its drain is no longer waiting in the
    queue (a worker died between taking it and starting it), so the next commit
    requests a new drain instead of counting on that one until the mark expires."""
    mark = waiting_mark(job_context or context.current())
    drain_id = backend.read_mark(mark)
    if drain_id is None or drain_id.endswith(LISTENING):
        return  # a listening drain renews its short-lived mark while it lives
    if not backend.waiting_tasks([drain_id]):
        backend.release_mark(mark, drain_id)


# -- a running drain listening for new jobs (jobs/drains.py) -----------------------


def listen(drain_id: str) -> bool:
    """The running drain ``drain_id`` takes the mark, so that commits hand their jobs
    to it and wake it; False when another drain holds it (that one takes them)."""
    return backend.set_mark(
        waiting_mark(context.current()), drain_id + LISTENING, LISTEN_MARK_SECONDS
    )


def keep_listening(drain_id: str) -> bool:
    """Renew the listening drain's mark; False when it no longer holds it."""
    return backend.renew_mark(
        waiting_mark(context.current()), drain_id + LISTENING, LISTEN_MARK_SECONDS
    )


def stop_listening(drain_id: str) -> None:
    """Release the mark: from now on a commit requests a new drain. The drain must
    look for jobs once more afterwards (a commit may have marked some for it)."""
    backend.release_mark(waiting_mark(context.current()), drain_id + LISTENING)


def wait_for_jobs(drain_id: str, seconds: float) -> bool:
    """Block up to ``seconds`` for a commit's wake-up; True when one came."""
    return backend.wait_for_wake(WAKE_KEY.format(drain_id=drain_id), seconds)


def to_chunks(job_ids: Sequence[int], job_context: Context | None = None) -> int:
    """Enqueue jobs (of ``job_context``; by default each in the one it recorded) as
    chunk tasks of CHUNK_SIZE (their provider calls run concurrently). Returns how
    many reached the queue; after the first failure the rest stay pending for the
    sweep."""
    if job_context is None:
        return sum(to_chunks(ids, own) for own, ids in context.split(context.current(), job_ids))
    size = max(1, int(get_setting("CHUNK_SIZE")))
    with context.restore(job_context) as here:
        for start in range(0, len(job_ids), size):
            chunk = list(job_ids[start : start + size])
            try:
                task_id = backend.send(
                    RUN_CHUNK, chunk, context=here, timeout=chunk_timeout(len(chunk))
                )
            except Exception as exc:
                _stay_pending(job_ids[start:], exc)
                return start
            transitions.handed_over(chunk, task_id)
    return len(job_ids)


def chunk_timeout(size: int) -> int:
    """The task timeout of a chunk: JOB_TIMEOUT per round of CONCURRENCY jobs, plus one."""
    rounds = -(-size // max(1, int(get_setting("CONCURRENCY"))))
    return int(get_setting("JOB_TIMEOUT")) * (rounds + 1)


def later(job_id: int, delay: float) -> bool:
    """Run one job (of the context here) in ``delay`` seconds, as a task of its own;
    False (the job stays pending) when the queue is unreachable."""
    here = context.current()
    try:
        task_id = backend.send(
            RUN_JOB, job_id, context=here, delay=delay, timeout=int(get_setting("JOB_TIMEOUT"))
        )
    except Exception as exc:
        _stay_pending([job_id], exc)
        return False
    transitions.handed_over([job_id], task_id)
    return True


def now_or_later(job_id: int, delay: float = 0) -> bool:
    """One job to the queue: to a drain now, or as its own task after ``delay``."""
    return later(job_id, delay) if delay > 0 else to_drain([job_id]) == 1


def _stay_pending(job_ids: Sequence[int], exc: Exception) -> None:
    transitions.not_handed_over(job_ids, f"{QUEUE_DOWN} ({exc})")
