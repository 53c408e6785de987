"""AIUsage.call_state: a call is logged ``sent`` before its request leaves and
``settled`` after its answer; existing rows are settled (the column's database
default, so adding it rewrites no row)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('django_ai_fields', '0014_job_tally'),
    ]

    operations = [
        migrations.AddField(
            model_name='aiusage',
            name='call_state',
            field=models.CharField(choices=[('sent', 'sent, no answer'), ('settled', 'settled')], db_default='settled', default='settled', max_length=8, verbose_name='call state'),
        ),
        migrations.AddIndex(
            model_name='aiusage',
            index=models.Index(condition=models.Q(('call_state', 'sent')), fields=['call_state'], name='aiusage_unsettled_idx'),
        ),
    ]
