from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from enrs.audit.services import audit_chain_verify


class Command(BaseCommand):
    help = (
        "Vérifie la chaîne d'empreintes du journal d'audit, dans l'ordre des identifiants, et signale "
        "le premier événement dont le contenu a été modifié ou dont le lien avec le précédent est rompu."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--chunk-size",
            type=int,
            default=5000,
            help="Nombre d'événements lus à la fois (mémoire constante, quelle que soit la taille).",
        )

    def handle(self, *args: Any, chunk_size: int, **options: Any) -> None:
        if chunk_size < 1:
            raise CommandError("--chunk-size doit être un entier positif.")
        result = audit_chain_verify(chunk_size=chunk_size)
        if not result.ok:
            raise CommandError(result.message)
        self.stdout.write(self.style.SUCCESS(result.message))
        if result.last_id is not None:
            # Keep these two values outside the database (e.g. nightly): deleting the newest events
            # leaves no broken link, but changes the last id and hash.
            self.stdout.write(f"Dernier événement : n° {result.last_id}, empreinte {result.last_hash}")
