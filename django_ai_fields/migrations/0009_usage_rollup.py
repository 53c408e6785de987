"""The daily usage roll-up (AIUsageDaily), filled from the existing call log.

Existing rows get ``rolled_up`` True through the column's database default while the
roll-up is filled from them with one GROUP BY (no row is rewritten, so a large log
takes one scan); new rows default to False. On PostgreSQL and SQLite this runs in one
transaction, so a row inserted meanwhile waits for it and then counts as new."""

from decimal import Decimal

from django.conf import settings
from django.db import migrations, models
from django.db.models import Count, F, Q, Sum, Value
from django.db.models.functions import Cast, Round, TruncDate
from django.utils import timezone

KEY = ("tenant", "provider", "model", "success", "cache_hit", "error_code")
TOKENS = (
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "duration_ms",
)
BATCH = 1000


def scaled_sum(column, places):
    value = Round(F(column) * Value(Decimal(10) ** places))
    return Sum(Cast(value, models.BigIntegerField()), default=0)


def fill_rollup(apps, schema_editor):
    usage = apps.get_model("django_ai_fields", "AIUsage")
    daily = apps.get_model("django_ai_fields", "AIUsageDaily")
    db = schema_editor.connection.alias
    zone = timezone.get_default_timezone() if settings.USE_TZ else None
    groups = (
        usage.objects.using(db)
        .order_by()
        .annotate(day=TruncDate("created_at", tzinfo=zone))
        .values("day", *KEY)
        .annotate(
            calls=Count("pk"),
            unknown_cost_calls=Count("pk", filter=Q(cost_usd__isnull=True)),
            **{name: Sum(name, default=0) for name in TOKENS},
            cost_micro=scaled_sum("cost_usd", 6),
            tool_cost_micro=scaled_sum("tool_cost_usd", 6),
            gateway_cost_calls=Count("pk", filter=Q(gateway_cost_usd__isnull=False)),
            gateway_cost_units=scaled_sum("gateway_cost_usd", 10),
        )
    )
    rows = []
    for group in groups.iterator(chunk_size=BATCH):
        rows.append(daily(**group))
        if len(rows) >= BATCH:
            daily.objects.using(db).bulk_create(rows)
            rows = []
    daily.objects.using(db).bulk_create(rows)


class Migration(migrations.Migration):
    dependencies = [("django_ai_fields", "0008_job_context")]

    operations = [
        migrations.CreateModel(
            name="AIUsageDaily",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("day", models.DateField(verbose_name="day")),
                ("tenant", models.CharField(blank=True, default="", max_length=100, verbose_name="tenant")),
                ("provider", models.CharField(max_length=64, verbose_name="provider")),
                ("model", models.CharField(max_length=100, verbose_name="model")),
                ("success", models.BooleanField(verbose_name="success")),
                ("cache_hit", models.BooleanField(verbose_name="result cache hit")),
                ("error_code", models.CharField(blank=True, default="", max_length=32, verbose_name="error code")),
                ("calls", models.BigIntegerField(default=0, verbose_name="calls")),
                ("unknown_cost_calls", models.BigIntegerField(default=0, verbose_name="calls of unknown cost")),
                ("input_tokens", models.BigIntegerField(default=0, verbose_name="input tokens")),
                ("output_tokens", models.BigIntegerField(default=0, verbose_name="output tokens")),
                ("cached_tokens", models.BigIntegerField(default=0, verbose_name="cached tokens")),
                ("cache_write_tokens", models.BigIntegerField(default=0, verbose_name="cache write tokens")),
                ("reasoning_tokens", models.BigIntegerField(default=0, verbose_name="reasoning tokens")),
                ("cost_micro", models.BigIntegerField(default=0, verbose_name="cost (micro-USD)")),
                ("tool_cost_micro", models.BigIntegerField(default=0, verbose_name="tool fees (micro-USD)")),
                ("gateway_cost_calls", models.BigIntegerField(default=0, verbose_name="calls with a gateway cost")),
                ("gateway_cost_units", models.BigIntegerField(default=0, verbose_name="gateway cost (1e-10 USD)")),
                ("duration_ms", models.BigIntegerField(default=0, verbose_name="duration (ms, summed)")),
            ],
            options={
                "verbose_name": "AI usage per day",
                "verbose_name_plural": "AI usage per day",
                "ordering": ["-day"],
                "indexes": [models.Index(fields=["tenant", "day"], name="aiusagedaily_tenant_idx")],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("day", "tenant", "provider", "model", "success", "cache_hit", "error_code"),
                        name="aiusagedaily_unique",
                    )
                ],
            },
        ),
        # Every row already logged counts as rolled up, by the column's default...
        migrations.AddField(
            model_name="aiusage",
            name="rolled_up",
            field=models.BooleanField(db_default=True, default=False, editable=False),
        ),
        # ...and is counted here, in SQL aggregates.
        migrations.RunPython(fill_rollup, migrations.RunPython.noop, elidable=True),
        # From now on a row is rolled up when it is counted.
        migrations.AlterField(
            model_name="aiusage",
            name="rolled_up",
            field=models.BooleanField(db_default=False, default=False, editable=False),
        ),
        migrations.AddIndex(
            model_name="aiusage",
            index=models.Index(fields=["rolled_up"], name="aiusage_rolled_up_idx"),
        ),
    ]
