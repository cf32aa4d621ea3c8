"""Run the usage rollup now (incremental), or rebuild it from the raw events (``--rebuild [--since]``)."""

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from enrs.usage import rollups


class Command(BaseCommand):
    help = "Met à jour les agrégats d'usage (ou les reconstruit entièrement avec --rebuild)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rebuild", action="store_true", help="Tout recalculer depuis les événements.")
        parser.add_argument("--since", help="Avec --rebuild : recalculer à partir de ce jour (AAAA-MM-JJ).")

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError(
                "Les agrégats d'usage demandent PostgreSQL (DATABASE_URL) : la démonstration embarquée sur "
                "SQLite affiche des tableaux de bord vides."
            )
        since = None
        if options["since"]:
            if not options["rebuild"]:
                raise CommandError("--since ne s'utilise qu'avec --rebuild.")
            try:
                since = dt.date.fromisoformat(options["since"])
            except ValueError:
                raise CommandError("Date --since invalide (attendu AAAA-MM-JJ).") from None
        if options["rebuild"]:
            result = rollups.rollup_rebuild(
                since=since, progress=lambda month: self.stdout.write(f"  {month:%Y-%m} recalculé")
            )
        else:
            result = rollups.rollup_run()
        if result.skipped:
            self.stdout.write("Un autre calcul est en cours : rien à faire.")
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"{result.days} jour(s) et {result.months} mois recalculés "
                f"(dernier événement : {result.last_event_id})."
            )
        )
