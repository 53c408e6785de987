"""``ai_status``: queue, workers, stuck jobs and provider reachability; exits
non-zero when unhealthy."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from ...calling import breaker
from ...conf import get_setting
from ...declare import chains
from ...dispatch import context
from ...fields import ai_fields_of
from ...jobs import stuck as stuck_jobs
from ...models import FINISHED_STATUSES, AIJob
from ...money.pricing import price_data
from ...observability import health
from ...tenants.credential_audit import unreadable_credentials
from ...values import states

STUCK_LISTED = 20
# Finished jobs are counted over this window: a count of every job ever run would
# grow with the table (open jobs are always counted in full).
FINISHED_WINDOW = timedelta(hours=24)


def collect(check_providers: bool) -> dict[str, Any]:
    """Everything ai_status reports, with the reasons it is unhealthy."""
    queue = health.queue_health()
    counts: dict[str, int] = {}
    finished_since = timezone.now() - FINISHED_WINDOW
    stuck_count, stuck_listed = 0, list[dict[str, Any]]()
    for visit in context.visits():  # every job database and schema (docs/deployment.md)
        with context.restore(visit):
            stuck_jobs.report_here(visit, queue, timezone.now())  # logged once each
            for status, count in health.status_counts(
                AIJob.objects.all(), finished_since=finished_since
            ).items():
                counts[status] = counts.get(status, 0) + count
            stuck = health.stuck_jobs(AIJob.objects.select_related("content_type"))
            stuck_count += stuck.count()
            room = STUCK_LISTED - len(stuck_listed)
            listed = list(stuck[:room]) if room > 0 else []
            stuck_listed += [describe(job, stuck_reason(job, queue, visit)) for job in listed]
    report: dict[str, Any] = {
        "queue": queue,
        "jobs": counts,
        "finished_since": finished_since.isoformat(timespec="seconds"),
        "stuck_jobs": {"count": stuck_count, "jobs": stuck_listed},
        "providers": health.provider_health() if check_providers else [],
        "circuits": breaker.states(),
        # Reported, not counted as unhealthy: only that tenant's jobs fail (auth).
        "unreadable_credentials": unreadable_credentials(),
        "chains": field_chains(),
        # Reported, not counted as unhealthy: ai_regenerate --stale brings them up to date.
        "stale": stale_counts(),
        "prices": price_data(),
    }
    problems = health.queue_problems(queue)
    if report["stuck_jobs"]["count"]:
        problems.append(f"{report['stuck_jobs']['count']} stuck job(s)")
    report["healthy"] = not problems
    report["problems"] = problems
    return report


def field_chains() -> dict[str, list[str]]:
    """Per model, its chained AI fields: one change of the first regenerates the rest."""
    found = {}
    for model in apps.get_models():
        if ai_fields_of(model):
            lines = chains.chains(model)
            if lines:
                found[model._meta.label] = lines
    return found


def stale_counts() -> dict[str, int]:
    """Per ``app.Model.field``, how many values were written under another definition
    of the field (docs/values.md); one query per AI field, fields with none left out."""
    counts = {}
    for model in apps.get_models():
        for field in ai_fields_of(model):
            if field.model is not model:
                continue  # an inherited field: counted on the model declaring it
            stale = states.rows_in_state(model._default_manager.all(), field, states.STALE)
            count = stale.count()
            if count:
                counts[f"{model._meta.label}.{field.name}"] = count
    return counts


def stuck_reason(job: AIJob, queue: dict[str, Any], visit: context.Context) -> str:
    if job.status == "running":
        return "its worker was lost (running past JOB_TIMEOUT); the sweep requeues it"
    return str(stuck_jobs.reason(job, queue, visit))


def describe(job: AIJob, reason: str = "") -> dict[str, Any]:
    since = job.started_at if job.status == "running" else job.updated_at
    target = f"{job.content_type.app_label}.{job.content_type.model}" if job.content_type else ""
    return {
        "id": job.pk,
        "status": job.status,
        "since": since.isoformat() if since else None,
        "target": f"{target} #{job.object_id} {job.field_name}".strip(),
        **({"schema": job.schema} if job.schema else {}),
        "reason": reason,
    }


class Command(BaseCommand):
    help = (
        "Show the AI queue, its workers, job counts, stuck jobs and provider reachability. "
        "Exits non-zero when unhealthy (task queue unreachable, no worker, stuck jobs), so it "
        "can serve as a probe. Unreachable providers are reported but not counted."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
        parser.add_argument(
            "--no-providers", action="store_true", help="Skip the provider reachability checks."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = collect(check_providers=not options["no_providers"])
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2, default=str))
        else:
            for line in render(report):
                self.stdout.write(line)
        if not report["healthy"]:
            raise CommandError("Unhealthy: " + "; ".join(report["problems"]) + ".")


def render(report: dict[str, Any]) -> list[str]:
    lines = render_queue(report["queue"])
    jobs = report["jobs"]
    open_counts = ", ".join(f"{s} {n}" for s, n in jobs.items() if s not in FINISHED_STATUSES)
    finished = ", ".join(f"{s} {n}" for s, n in jobs.items() if s in FINISHED_STATUSES)
    lines.append(f"Jobs: {open_counts}; finished in the last 24 h: {finished}")
    stuck = report["stuck_jobs"]
    lines.append(f"Stuck jobs: {stuck['count']}")
    lines += [
        f"  #{j['id']} {j['status']} since {j['since']}: {j['target']}: {j['reason']}"
        for j in stuck["jobs"]
    ]
    if report["providers"]:
        lines.append("Providers:")
        for p in report["providers"]:
            state = {True: "ok", False: "UNREACHABLE", None: "not checked"}[p["ok"]]
            lines.append(f"  {p['name']}: {state} ({p['detail']})")
    lines += render_circuits(report["circuits"])
    lines += render_unreadable(report["unreadable_credentials"])
    if report["chains"]:
        lines.append("AI field chains (one change makes a call per field):")
        lines += [
            f"  {label}: {chain}" for label, found in report["chains"].items() for chain in found
        ]
    stale = report["stale"]
    hint = " (ai_regenerate app.Model --stale)" if stale else ""
    lines.append(f"Stale AI values: {sum(stale.values())}{hint}")
    lines += [f"  {label}: {count} stale" for label, count in stale.items()]
    prices = report["prices"]
    overrides = len(get_setting("PRICING") or {})
    lines.append(
        f"Prices: {prices['source']} {prices['version']} (latest price change {prices['as_of']})"
        + (f", {overrides} AI_FIELDS['PRICING'] override(s)" if overrides else "")
    )
    lines.append("Healthy." if report["healthy"] else "UNHEALTHY: " + "; ".join(report["problems"]))
    return lines


def render_queue(queue: dict[str, Any]) -> list[str]:
    """The task backend's view: wake-ups waiting, workers, the oldest waiting job."""
    head = f"Queue {queue['name']}" + ("" if queue["backend"] == "rq" else f" ({queue['backend']})")
    if not queue["ok"]:
        return [f"{head}: {health.UNREACHABLE[queue['backend']]} unreachable: {queue['error']}"]
    if "depth" in queue:  # RQ
        lines = [
            f"{head}: {queue['depth']} waiting, {queue['scheduled']} scheduled, "
            f"{queue['started']} started, {queue['failed']} in RQ's failed registry"
        ]
    else:
        waiting = "?" if queue["waiting"] is None else queue["waiting"]
        lines = [f"{head}: {waiting} wake-up(s) waiting"]
    workers = queue["workers"]
    if workers is None:
        seen = queue.get("workers_seen_last_hour")
        lines.append("Workers: not reported by this backend")
        if seen is not None:
            lines.append(f"  {len(seen)} took a task in the last hour")
    else:
        lines.append(f"Workers: {len(workers)}")
        lines += [
            f"  {w['name']} ({w['state']})"
            + (f" on {', '.join(w['queues'])}" if w.get("queues") else "")
            for w in workers
        ]
    oldest = queue.get("oldest_waiting_job")
    if oldest:
        lines.append(f"Oldest waiting job: #{oldest['id']}, {oldest['seconds']:.0f} s")
    lines.append(f"Shared state: {queue['shared_state']}")
    return lines


def render_unreadable(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    lines = [f"Credentials whose API key cannot be decrypted: {len(rows)}"]
    lines += [f"  #{r['id']} tenant {r['tenant']!r} {r['provider']}: {r['cause']}" for r in rows]
    return lines


def render_circuits(report: dict[str, Any]) -> list[str]:
    """Circuits that opened at least once; open ones are informative, not unhealthy
    (their jobs wait and retry)."""
    if not report["ok"] or not report["circuits"]:
        return []
    lines = ["Circuits:"]
    for c in report["circuits"]:
        detail = f"{c['recent_failures']} recent failure(s), opened {c['times_opened']} time(s)"
        if c["retry_in"] is not None:
            detail += f", probe in {c['retry_in']:.0f} s"
        lines.append(f"  {c['provider']}/{c['model']}: {c['state']} ({detail})")
    return lines
