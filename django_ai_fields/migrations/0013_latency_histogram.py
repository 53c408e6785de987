"""A histogram of call durations in the daily roll-up (AIUsageDaily), and the longest
duration per row: ``analytics/performance/`` reads its percentiles there instead of
sorting the window's calls.

The new columns start at 0 and are filled from the log's rows that the roll-up
already counts (``rolled_up``), with one GROUP BY; rows not rolled up yet are counted
by the catch-up as before. Calls whose log rows ``ai_cleanup`` deleted earlier stay
out of the histogram (their durations are gone): percentiles are over the durations
known. On PostgreSQL and SQLite this runs in one transaction."""

from django.conf import settings
from django.db import migrations, models
from django.db.models import Count, Max, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

KEY = ("tenant", "provider", "model", "success", "cache_hit", "error_code")
# A frozen copy of models.LATENCY_BOUNDS.
BOUNDS = (0, *sorted({round(16 * 2 ** (step / 4)) for step in range(65)}))
COLUMNS = [f"ms_{bound}" for bound in BOUNDS]
BATCH = 500


def bucket_counts():
    uppers = [*BOUNDS[1:], None]
    counts = {}
    for column, lower, upper in zip(COLUMNS, BOUNDS, uppers):
        inside = Q(duration_ms__gte=lower)
        if upper is not None:
            inside &= Q(duration_ms__lt=upper)
        counts[column] = Count("pk", filter=inside)
    return counts


def fill_histogram(apps, schema_editor):
    usage = apps.get_model("django_ai_fields", "AIUsage")
    daily = apps.get_model("django_ai_fields", "AIUsageDaily")
    db = schema_editor.connection.alias
    zone = timezone.get_default_timezone() if settings.USE_TZ else None
    rows = {tuple(getattr(row, name) for name in ("day", *KEY)): row for row in daily.objects.using(db)}
    groups = (
        usage.objects.using(db)
        .filter(rolled_up=True)
        .order_by()
        .annotate(day=TruncDate("created_at", tzinfo=zone))
        .values("day", *KEY)
        .annotate(duration_max_ms=Max("duration_ms"), **bucket_counts())
    )
    changed = []
    for group in groups.iterator(chunk_size=BATCH):
        row = rows.get(tuple(group[name] for name in ("day", *KEY)))
        if row is None:  # calls counted nowhere: not this migration's business
            continue
        for column in ("duration_max_ms", *COLUMNS):
            setattr(row, column, group[column] or 0)
        changed.append(row)
        if len(changed) >= BATCH:
            daily.objects.using(db).bulk_update(changed, ["duration_max_ms", *COLUMNS])
            changed = []
    daily.objects.using(db).bulk_update(changed, ["duration_max_ms", *COLUMNS])


def new_fields():
    yield migrations.AddField(
        model_name="aiusagedaily",
        name="duration_max_ms",
        field=models.BigIntegerField(db_default=0, default=0, verbose_name="longest duration (ms)"),
    )
    for bound, column in zip(BOUNDS, COLUMNS):
        yield migrations.AddField(
            model_name="aiusagedaily",
            name=column,
            field=models.BigIntegerField(
                db_default=0, default=0, verbose_name=f"calls from {bound} ms"
            ),
        )


class Migration(migrations.Migration):
    dependencies = [("django_ai_fields", "0012_shapes_and_stuck_jobs")]

    operations = [
        *new_fields(),
        migrations.RunPython(fill_histogram, migrations.RunPython.noop, elidable=True),
    ]
