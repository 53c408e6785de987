"""What AI fields cost the user's own code: loading rows and saving them.

Ratios compare this process's CPU time: our overhead is CPU work, and on a
shared machine CPU time is far steadier than wall time. Disk and server time
(identical for both models) only add to both sides, so the wall-time ratio is
lower still; wall times are recorded too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import models, transaction

from django_ai_fields.models import OPEN_STATUSES, AIJob, Status
from tests.testapp.models import Lead, PlainLead

from . import data
from .harness import (
    Config,
    Figure,
    QueryLog,
    Timing,
    goal_met,
    interleaved,
    medians,
    sample_table,
    timed,
)
from .workers import get_queue

CPU_NOTE = "Ratio of CPU time (steady on a shared machine); wall times in the absolute figures."


def load(cfg: Config) -> Figure:
    """Load every row of a 20,000-row table: Lead (three AI fields) vs PlainLead."""
    data.reset()
    data.fill(Lead, cfg.load_rows)
    data.fill(PlainLead, cfg.load_rows)

    def case(model: type[models.Model]) -> Callable[[], Timing]:
        return lambda: timed(lambda: list(model.objects.all()))

    case(Lead)(), case(PlainLead)()  # warm-up
    samples = interleaved(cfg.reps, {"plain": case(PlainLead), "ai": case(Lead)})
    ai, plain = (medians(samples)[name] for name in ("ai", "plain"))
    ratio = ai.cpu / plain.cpu
    return Figure(
        key="load",
        title=f"load {cfg.load_rows:,} rows",
        ratio=ratio,
        ratio_label="AI model / plain model (CPU time)",
        goal="<= 1.20",
        met=goal_met(ratio, "<= 1.20"),
        absolute={
            "rows": cfg.load_rows,
            "ai_cpu_s": round(ai.cpu, 4),
            "plain_cpu_s": round(plain.cpu, 4),
            "ai_wall_s": round(ai.wall, 4),
            "plain_wall_s": round(plain.wall, 4),
            "wall_ratio": round(ai.wall / plain.wall, 3),
            "ai_us_per_row": round(ai.cpu / cfg.load_rows * 1e6, 2),
            "plain_us_per_row": round(plain.cpu / cfg.load_rows * 1e6, 2),
            "samples": sample_table(samples),
        },
        notes=[CPU_NOTE],
    )


def save_unchanged(cfg: Config) -> Figure:
    """Save rows whose trigger fields did not change: no job, no extra query."""
    ai_objs, plain_objs = _loaded_pair(cfg.saves)
    jobs_before = AIJob.objects.count()
    ai_queries, plain_queries = _queries(lambda: _save_all(ai_objs), lambda: _save_all(plain_objs))
    samples = interleaved(
        cfg.reps,
        {
            "plain": lambda: timed(lambda: _save_all(plain_objs)),
            "ai": lambda: timed(lambda: _save_all(ai_objs)),
        },
    )
    jobs_created = AIJob.objects.count() - jobs_before
    assert jobs_created == 0, f"{jobs_created} job(s) created by saves that changed no trigger"
    ai, plain = (medians(samples)[name] for name in ("ai", "plain"))
    ratio = ai.cpu / plain.cpu
    return Figure(
        key="save_unchanged",
        title=f"{cfg.saves:,} saves, no trigger change",
        ratio=ratio,
        ratio_label="AI model / plain model (CPU time)",
        goal="<= 1.15",
        met=bool(goal_met(ratio, "<= 1.15")) and jobs_created == 0,
        absolute={
            "saves": cfg.saves,
            "jobs_created": jobs_created,
            "ai_cpu_s": round(ai.cpu, 4),
            "plain_cpu_s": round(plain.cpu, 4),
            "ai_wall_s": round(ai.wall, 4),
            "plain_wall_s": round(plain.wall, 4),
            "wall_ratio": round(ai.wall / plain.wall, 3),
            "ai_queries_per_save": ai_queries / cfg.saves,
            "plain_queries_per_save": plain_queries / cfg.saves,
            "samples": sample_table(samples),
        },
        notes=[
            CPU_NOTE,
            "Each repetition saves every row in one transaction (one commit), so disk "
            "syncs do not hide the cost.",
        ],
    )


def save_changed(cfg: Config) -> Figure:
    """Save rows whose trigger fields changed: the cost of requesting the jobs."""
    saves = cfg.changed_saves
    ai_objs, plain_objs = _loaded_pair(saves)
    revision = iter(range(1, 1_000_000))

    def edit_and_save(objs: list[Any], close_jobs: bool) -> Callable[[], Timing]:
        def prepare_and_time() -> Timing:
            _edit(objs, next(revision))
            if close_jobs:
                AIJob.objects.filter(status__in=OPEN_STATUSES).update(status=Status.SUCCEEDED)
                get_queue().empty()
            return timed(lambda: _save_all(objs))

        return prepare_and_time

    jobs_before = AIJob.objects.count()
    _edit(ai_objs, next(revision))
    _edit(plain_objs, next(revision))
    ai_queries, plain_queries = _queries(lambda: _save_all(ai_objs), lambda: _save_all(plain_objs))
    jobs_per_save = (AIJob.objects.count() - jobs_before) / saves
    _edit(ai_objs, next(revision))
    coalesced_queries, _ = _queries(lambda: _save_all(ai_objs), lambda: None)
    samples = interleaved(
        cfg.slow_reps,
        {
            "plain": edit_and_save(plain_objs, close_jobs=False),
            "ai_new_jobs": edit_and_save(ai_objs, close_jobs=True),
            "ai_coalesced": edit_and_save(ai_objs, close_jobs=False),
        },
    )
    times = medians(samples)
    plain, new, coalesced = times["plain"], times["ai_new_jobs"], times["ai_coalesced"]
    per_save = 1000 / saves
    return Figure(
        key="save_changed",
        title=f"{saves:,} saves, trigger changed",
        ratio=new.wall / plain.wall,
        ratio_label="AI model (new jobs) / plain model (wall time, commit included)",
        absolute={
            "saves": saves,
            "jobs_per_save": jobs_per_save,
            "plain_ms_per_save": round(plain.wall * per_save, 3),
            "new_jobs_ms_per_save": round(new.wall * per_save, 3),
            "new_jobs_extra_ms_per_save": round((new.wall - plain.wall) * per_save, 3),
            "new_jobs_extra_cpu_ms_per_save": round((new.cpu - plain.cpu) * per_save, 3),
            "coalesced_ms_per_save": round(coalesced.wall * per_save, 3),
            "coalesced_extra_ms_per_save": round((coalesced.wall - plain.wall) * per_save, 3),
            "plain_queries_per_save": plain_queries / saves,
            "new_jobs_queries_per_save": ai_queries / saves,
            "coalesced_queries_per_save": coalesced_queries / saves,
            "samples": sample_table(samples),
        },
        notes=[
            "New jobs: the row's earlier jobs had finished, so each save inserts one job per "
            "AI field and enqueues it at commit. Coalesced: the jobs are still open and each "
            "save updates them (ten quick saves, one provider call).",
            "Wall time including the commit, where new jobs go to Redis.",
        ],
    )


def _loaded_pair(rows: int) -> tuple[list[Lead], list[PlainLead]]:
    data.reset()
    data.fill(Lead, rows)
    data.fill(PlainLead, rows)
    return list(Lead.objects.order_by("pk")), list(PlainLead.objects.order_by("pk"))


def _save_all(objs: list[Any]) -> None:
    with transaction.atomic():
        for obj in objs:
            obj.save()


def _edit(objs: list[Any], revision: int) -> None:
    for obj in objs:
        obj.notes = f"Wants {obj.pk % 50} seats; revision {revision}."


def _queries(ai: Callable[[], None], plain: Callable[[], None]) -> tuple[int, int]:
    """Statements of one untimed pass of each."""
    with QueryLog() as ai_log:
        ai()
    with QueryLog() as plain_log:
        plain()
    return len(ai_log), len(plain_log)
