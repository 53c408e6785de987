"""``manage.py ai_rotate_keys``: re-encrypt every stored tenant API key with the
newest key of ``AI_FIELDS["ENCRYPTION_KEY"]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ...tenants.credential_audit import rotate_keys


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored ProviderCredential API key with the first (newest) key of "
        "AI_FIELDS['ENCRYPTION_KEY']; plaintext written around the field is encrypted too. "
        "Afterwards the old keys may be removed from the list. Exits non-zero when some "
        "row cannot be decrypted with any configured key (it is left untouched)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would change, write nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = rotate_keys(dry_run=options["dry_run"])
        verb = "Would re-encrypt" if options["dry_run"] else "Re-encrypted"
        self.stdout.write(
            f"{verb} {report.rotated} key(s) with the newest key; "
            f"{report.encrypted_plaintext} plaintext key(s) encrypted."
        )
        for row in report.unreadable:
            self.stderr.write(
                f"  credential #{row['id']} (tenant {row['tenant']!r}, {row['provider']}): "
                f"cannot be decrypted: {row['cause']}"
            )
        if report.unreadable:
            raise CommandError(
                f"{len(report.unreadable)} credential(s) could not be decrypted and were left as "
                "they are; keep their old key in ENCRYPTION_KEY, or enter the keys again."
            )
