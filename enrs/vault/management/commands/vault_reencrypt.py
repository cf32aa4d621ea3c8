"""Re-encrypt every blob that is not under the active key (after adding a new key to ENRS_VAULT_KEYS and
making it ENRS_VAULT_ACTIVE_KEY). Safe to interrupt and run again; old keys can be removed afterwards."""

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from enrs.vault.models import Blob
from enrs.vault.services import blob_reencrypt, vault_keys


class Command(BaseCommand):
    help = "Rechiffre sous la clé active tous les contenus chiffrés avec une autre clé."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--batch", type=int, default=200, help="contenus par transaction")

    def handle(self, *args: Any, batch: int, **options: Any) -> None:
        _, active = vault_keys()
        total = Blob.objects.exclude(key_id=active).count()
        done = 0
        while True:
            with transaction.atomic():
                blobs = list(Blob.objects.select_for_update(skip_locked=True).exclude(key_id=active)[:batch])
                if not blobs:
                    break
                for blob in blobs:
                    done += blob_reencrypt(blob)
            self.stdout.write(f"{done}/{total} contenus rechiffrés sous la clé « {active} »")
        self.stdout.write(self.style.SUCCESS(f"Terminé : {done} contenu(s) rechiffré(s)."))
