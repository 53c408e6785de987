"""The daily tally of finished jobs (AIJobDaily), filled from the job table.

Existing jobs get ``tallied`` True through the column's database default (no row is
rewritten), then the open ones (pending, queued, running: found by the status
index) are set back to False, and the finished ones are counted with one GROUP BY;
new jobs default to False and are tallied by the sweep once finished. On PostgreSQL
and SQLite this runs in one transaction."""

from django.conf import settings
from django.db import migrations, models
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone

UNFINISHED = ("pending", "queued", "running")
KEY = ("tenant", "status", "error_code")
BATCH = 1000


def fill_tally(apps, schema_editor):
    job = apps.get_model("django_ai_fields", "AIJob")
    daily = apps.get_model("django_ai_fields", "AIJobDaily")
    db = schema_editor.connection.alias
    job.objects.using(db).filter(status__in=UNFINISHED).update(tallied=False)
    zone = timezone.get_default_timezone() if settings.USE_TZ else None
    groups = (
        job.objects.using(db)
        .exclude(status__in=UNFINISHED)
        .order_by()
        .annotate(day=TruncDate("created_at", tzinfo=zone))
        .values("day", *KEY)
        .annotate(jobs=Count("pk"))
    )
    rows = []
    for group in groups.iterator(chunk_size=BATCH):
        rows.append(daily(**group))
        if len(rows) >= BATCH:
            daily.objects.using(db).bulk_create(rows)
            rows = []
    daily.objects.using(db).bulk_create(rows)


class Migration(migrations.Migration):
    dependencies = [("django_ai_fields", "0013_latency_histogram")]

    operations = [
        migrations.CreateModel(
            name="AIJobDaily",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("day", models.DateField(verbose_name="day")),
                ("tenant", models.CharField(blank=True, default="", max_length=100, verbose_name="tenant")),
                ("status", models.CharField(max_length=16, verbose_name="status")),
                ("error_code", models.CharField(blank=True, default="", max_length=32, verbose_name="error code")),
                ("jobs", models.BigIntegerField(default=0, verbose_name="jobs")),
            ],
            options={
                "verbose_name": "AI jobs per day",
                "verbose_name_plural": "AI jobs per day",
                "ordering": ["-day"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("day", "tenant", "status", "error_code"), name="aijobdaily_unique"
                    )
                ],
            },
        ),
        # Every job already there counts as tallied, by the column's default...
        migrations.AddField(
            model_name="aijob",
            name="tallied",
            field=models.BooleanField(db_default=True, default=False, editable=False),
        ),
        # ...the open ones are not (yet); the finished ones are counted here.
        migrations.RunPython(fill_tally, migrations.RunPython.noop, elidable=True),
        # From now on a job is tallied when it is counted.
        migrations.AlterField(
            model_name="aijob",
            name="tallied",
            field=models.BooleanField(db_default=False, default=False, editable=False),
        ),
        migrations.AddIndex(
            model_name="aijob",
            index=models.Index(fields=["tallied"], name="aijob_tallied_idx"),
        ),
    ]
