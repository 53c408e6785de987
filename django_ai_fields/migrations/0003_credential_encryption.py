"""ProviderCredential.api_key becomes an EncryptedTextField; rows holding a
plaintext key (written by ``objects.create(api_key=...)`` before this release)
are encrypted. Tokens for a key that is not configured are left as they are
(``ai_status`` lists them)."""

from django.db import migrations, models

import django_ai_fields.encrypted


def encrypt_plaintext_keys(apps, schema_editor):
    from django_ai_fields import crypto

    table = "django_ai_fields_providercredential"
    connection = schema_editor.connection
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {quote('id')}, {quote('api_key')} FROM {quote(table)}")
        rows = cursor.fetchall()
        for pk, stored in rows:
            if not stored or crypto.looks_like_token(stored):
                continue
            cursor.execute(
                f"UPDATE {quote(table)} SET {quote('api_key')} = %s WHERE {quote('id')} = %s",
                [crypto.encrypt(stored), pk],
            )


class Migration(migrations.Migration):
    dependencies = [
        ("django_ai_fields", "0002_batch"),
    ]

    operations = [
        migrations.AlterField(
            model_name="providercredential",
            name="api_key",
            field=django_ai_fields.encrypted.EncryptedTextField(
                blank=True, default="", verbose_name="API key"
            ),
        ),
        migrations.AddField(
            model_name="providercredential",
            name="base_url_from_tenant",
            field=models.BooleanField(
                default=False, editable=False, verbose_name="base URL given by the tenant"
            ),
        ),
        migrations.RunPython(encrypt_plaintext_keys, migrations.RunPython.noop),
    ]
