"""``ai_regenerate app.Model``: backfill AI fields (``--dry-run`` estimates the
cost, ``--batch`` uses the providers' batch APIs). ``--only-empty``, ``--stale`` and
``--failed`` pick which values (any of them, each field on its own), ``--filter``
which rows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, FieldError, ValidationError
from django.core.management.base import BaseCommand, CommandError, OutputWrapper
from django.db import models
from django.db.models import BooleanField, Count, ExpressionWrapper, Q

from ...api import regenerate_many
from ...conf import get_setting
from ...fields import AIFieldMixin, ai_fields_of, with_m2m_triggers
from ...jobs import batches as provider_batches
from ...jobs.estimates import estimate_pairs
from ...models import AIJob, Status
from ...values import states

# The options that pick values, and the value state each picks (values/states.py).
SELECTORS = {"only_empty": states.EMPTY, "stale": states.STALE, "failed": states.FAILED}


class Progress:
    """A \\r progress bar on a terminal, one plain line per page otherwise."""

    WIDTH = 30

    def __init__(self, out: OutputWrapper, total: int):
        self.out, self.total, self.done = out, total, 0
        self.tty = out.isatty()

    def advance(self, rows: int) -> None:
        self.done += rows
        if self.tty:
            filled = self.WIDTH * self.done // max(self.total, 1)
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            self.out.write(f"\r[{bar}] {self.done}/{self.total} rows", ending="")
            self.out.flush()
        else:
            self.out.write(f"{self.done}/{self.total} rows")

    def close(self) -> None:
        if self.tty and self.done:
            self.out.write("")


class Command(BaseCommand):
    help = (
        "Request fresh AI values for the rows of a model (a backfill). Jobs go to the "
        "queue in chunk jobs whose provider calls run concurrently; --sync runs them "
        "in this process instead."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("model", help="The model, as app_label.ModelName.")
        parser.add_argument(
            "--field",
            action="append",
            dest="fields",
            default=[],
            help="An AI field to regenerate (repeatable; default: every AI field).",
        )
        parser.add_argument(
            "--filter",
            action="append",
            dest="filters",
            default=[],
            metavar="LOOKUP=VALUE",
            help="Only rows matching this queryset lookup, e.g. company=Acme or score__gte=5 "
            "(repeatable; __in takes a comma-separated list).",
        )
        parser.add_argument(
            "--only-empty", action="store_true", help="Only fields that have no value yet."
        )
        parser.add_argument(
            "--stale",
            action="store_true",
            help="Only values written under another definition of their field (its prompt, "
            "model... changed since; hand edits never are). Combines with --only-empty and "
            "--failed: a value any of them picks is regenerated.",
        )
        parser.add_argument(
            "--failed", action="store_true", help="Only fields whose latest job failed."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be requested; change nothing."
        )
        parser.add_argument(
            "--sync",
            action="store_true",
            help="Run each job in this process now (workers skip the queued copy).",
        )
        parser.add_argument("--batch-size", type=int, default=500, help="Rows per transaction.")
        parser.add_argument(
            "--batch",
            action="store_true",
            help="Send the requests through the provider's batch API (OpenAI, Anthropic): "
            "half the price, answers within 24 hours (docs/batches.md).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        model = resolve_model(options["model"])
        fields = resolve_fields(model, options["fields"])
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        if options["batch"]:
            check_batchable(model, fields, options)
            self.sent = provider_batches.SubmitReport()
        self.picked = [state for option, state in SELECTORS.items() if options[option]]
        rows = matching_rows(model, options["filters"], fields, self.picked)
        total = count_rows(rows)
        label = model._meta.label
        if options["dry_run"]:
            jobs = count_jobs(rows, fields, self.picked)
            self.stdout.write(
                f"Dry run: would request {jobs} AI job(s) for {total} row(s) of {label}."
            )
            self.write_estimate(rows, fields, options)
            return
        progress = Progress(self.stdout, total)
        outcome: Counter[str] = Counter()
        for page in pages(rows, options["batch_size"]):
            job_ids = self.request_page(page, fields, options)
            outcome.update(final_statuses(job_ids))
            progress.advance(len(page))
        progress.close()
        self.summarise(label, progress.done, outcome, sync=options["sync"])
        if options["batch"]:
            self.summarise_batches()

    def write_estimate(
        self, rows: models.QuerySet[Any], fields: list[AIFieldMixin], options: dict[str, Any]
    ) -> None:
        """The cost preview: worst case, expected cost, and quota refusals."""
        pairs = (
            (obj, field) for obj in rows.iterator() for field in fields if is_picked(obj, field)
        )
        for line in estimate_pairs(pairs).lines():
            self.stdout.write(line)

    def request_page(
        self, page: list[models.Model], fields: list[AIFieldMixin], options: dict[str, Any]
    ) -> list[int]:
        pairs = [(obj, field) for obj in page for field in fields if is_picked(obj, field)]
        if options["batch"]:
            job_ids, report = provider_batches.request(pairs, triggered_by="command")
            self.sent.merge(report)
            return job_ids
        jobs = regenerate_many(pairs, sync=options["sync"], triggered_by="command")
        return [job.pk for job in jobs]

    def summarise_batches(self) -> None:
        sent = self.sent
        interval = get_setting("BATCH_POLL_INTERVAL")
        self.stdout.write(
            f"Sent {sent.submitted} AI job(s) in {len(sent.batches)} provider batch(es)"
            + (f": {', '.join(sent.batches)}" if sent.batches else "")
            + (f"; the workers look for their results every {interval} s." if sent.batches else ".")
        )
        if sent.others:
            others = ", ".join(f"{n} {what}" for what, n in sorted(sent.others.items()))
            self.stdout.write(f"Not sent: {others}.")
        if sent.errors:
            raise CommandError(
                "The provider refused a batch (its jobs failed; run this again): "
                + "; ".join(sent.errors)
            )

    def summarise(self, label: str, rows: int, outcome: Counter[str], *, sync: bool) -> None:
        jobs = sum(outcome.values())
        details = ", ".join(f"{n} {status}" for status, n in sorted(outcome.items()))
        self.stdout.write(
            f"Requested {jobs} AI job(s) for {rows} row(s) of {label}"
            + (f": {details}." if details else ".")
        )
        if sync and outcome[Status.FAILED]:
            raise CommandError(f"{outcome[Status.FAILED]} job(s) failed; see the AI jobs admin.")
        if not sync and outcome[Status.PENDING]:
            raise CommandError(
                f"{outcome[Status.PENDING]} job(s) stay pending: the queue (Redis) was "
                "unreachable. They are saved; run ai_requeue when Redis is back."
            )


def check_batchable(
    model: type[models.Model], fields: list[AIFieldMixin], options: dict[str, Any]
) -> None:
    if options["sync"]:
        raise CommandError("--batch and --sync cannot be combined: a batch answers later.")
    for field in fields:
        provider = field.ai.provider or get_setting("DEFAULT_PROVIDER")
        if not provider_batches.supports_batch(provider):
            raise CommandError(
                f"{model._meta.label}.{field.name} uses provider {provider!r}, which has no "
                "batch API (openai and anthropic have one). Run without --batch."
            )


def resolve_model(label: str) -> type[models.Model]:
    try:
        model = apps.get_model(label)
    except (LookupError, ValueError):
        raise CommandError(f"Unknown model {label!r}; use app_label.ModelName.") from None
    if not ai_fields_of(model):
        raise CommandError(f"{model._meta.label} has no AI fields.")
    return model


def resolve_fields(model: type[models.Model], names: list[str]) -> list[AIFieldMixin]:
    fields = ai_fields_of(model)
    if not names:
        return fields
    by_name = {field.name: field for field in fields}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise CommandError(
            f"{model._meta.label} has no AI field {', '.join(unknown)}; "
            f"its AI fields are: {', '.join(by_name)}."
        )
    return [by_name[name] for name in dict.fromkeys(names)]


def parse_filter(text: str) -> dict[str, Any]:
    lookup, sep, value = text.partition("=")
    if not sep or not lookup:
        raise CommandError(f"--filter {text!r}: use LOOKUP=VALUE, e.g. company=Acme.")
    parsed: Any = value
    if lookup.endswith("__isnull"):
        parsed = value.lower() in ("1", "true", "yes")
    elif lookup.endswith("__in"):
        parsed = value.split(",")
    return {lookup: parsed}


def matching_rows(
    model: type[models.Model], filters: list[str], fields: list[AIFieldMixin], picked: list[str]
) -> models.QuerySet[Any]:
    """The rows of ``--filter``; with value selectors, those where at least one field's
    value is picked, each row annotated with which ones (one query per page)."""
    rows = model._default_manager.all()
    for text in filters:
        try:
            rows = rows.filter(**parse_filter(text))
        except (FieldError, FieldDoesNotExist, ValueError, ValidationError) as exc:
            raise CommandError(f"Invalid --filter {text!r}: {exc}") from None
    if picked:
        wanted = {field: picked_q(field, picked, rows.db) for field in fields}
        rows = rows.annotate(
            **{
                pick_name(field): ExpressionWrapper(q, output_field=BooleanField())
                for field, q in wanted.items()
            }
        ).filter(any_of(wanted.values()))
    return with_m2m_triggers(rows, fields).order_by("pk")


def picked_q(field: AIFieldMixin, picked: list[str], db: str) -> Q:
    """A value of ``field`` any selector picks."""
    return any_of(states.condition(state, field, db) for state in picked)


def any_of(conditions: Any) -> Q:
    combined = Q(pk__in=[])
    for q in conditions:
        combined |= q
    return combined


def pick_name(field: AIFieldMixin) -> str:
    return f"_ai_pick_{field.name}"


def is_picked(obj: models.Model, field: AIFieldMixin) -> bool:
    """Whether the selectors picked this row's value of ``field`` (all without any)."""
    return bool(getattr(obj, pick_name(field), True))


def count_rows(rows: models.QuerySet[Any]) -> int:
    try:
        return rows.count()
    except (FieldError, FieldDoesNotExist, ValueError, ValidationError) as exc:
        raise CommandError(f"Invalid --filter: {exc}") from None


def count_jobs(rows: models.QuerySet[Any], fields: list[AIFieldMixin], picked: list[str]) -> int:
    if not picked:
        return rows.count() * len(fields)
    counts = rows.aggregate(
        **{field.name: Count("pk", filter=picked_q(field, picked, rows.db)) for field in fields}
    )
    return sum(counts.values())


def pages(rows: models.QuerySet[Any], size: int) -> Iterator[list[models.Model]]:
    """Pages of ``size`` rows (``--batch-size``), by keyset pagination on pk: stable
    while rows change under us."""
    last = None
    while True:
        rest = rows if last is None else rows.filter(pk__gt=last)
        page = list(rest[:size])
        if not page:
            return
        yield page
        last = page[-1].pk


def final_statuses(job_ids: list[int]) -> Counter[str]:
    statuses = AIJob.objects.filter(pk__in=job_ids).values_list("status", flat=True)
    return Counter(statuses)
