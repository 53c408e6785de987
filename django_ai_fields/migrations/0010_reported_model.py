"""AIUsage.reported_model: the model name a provider's answer claims, beside
AIUsage.model (the model asked for). Rows written before keep an empty value:
their ``model`` held the answer's claim, when there was one."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("django_ai_fields", "0009_usage_rollup")]

    operations = [
        migrations.AddField(
            model_name="aiusage",
            name="reported_model",
            field=models.CharField(
                blank=True, default="", max_length=100, verbose_name="model (as reported)"
            ),
        ),
    ]
