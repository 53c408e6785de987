from decimal import Decimal

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("django_ai_fields", "0005_money")]

    operations = [
        migrations.AddField(
            model_name="aiusage",
            name="tool_calls",
            field=models.JSONField(blank=True, default=dict, verbose_name="hosted tool uses"),
        ),
        migrations.AddField(
            model_name="aiusage",
            name="tool_cost_usd",
            field=models.DecimalField(
                decimal_places=6, default=Decimal("0"), max_digits=14, verbose_name="tool fees (USD)"
            ),
        ),
    ]
