
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('django_ai_fields', '0004_redaction'),
    ]

    operations = [
        migrations.AddField(
            model_name='aiusage',
            name='cache_write_tokens',
            field=models.PositiveIntegerField(default=0, verbose_name='cache write tokens'),
        ),
        migrations.AddField(
            model_name='aiusage',
            name='gateway_cost_usd',
            field=models.DecimalField(blank=True, decimal_places=10, max_digits=18, null=True, verbose_name='gateway cost (USD)'),
        ),
        migrations.AddField(
            model_name='aiusage',
            name='priced_as',
            field=models.CharField(blank=True, default='', max_length=100, verbose_name='priced as'),
        ),
        migrations.AddField(
            model_name='aiusage',
            name='reasoning_tokens',
            field=models.PositiveIntegerField(default=0, verbose_name='reasoning tokens'),
        ),
        migrations.AddField(
            model_name='quotausage',
            name='alerted_permille',
            field=models.PositiveIntegerField(default=0, verbose_name='alerted at (per mille)'),
        ),
        migrations.AlterField(
            model_name='aiusage',
            name='cost_usd',
            field=models.DecimalField(blank=True, decimal_places=6, default=0, max_digits=14, null=True, verbose_name='cost (USD)'),
        ),
    ]
