"""Run the RPU feed supervision for one day (default: yesterday), as the morning task does."""

from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from enrs.rpu.selectors import yesterday
from enrs.rpu.services import feed_check_run


class Command(BaseCommand):
    help = "Contrôle les envois RPU d'un jour (par défaut la veille) et notifie les établissements."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--jour", help="Jour contrôlé, AAAA-MM-JJ (par défaut : hier).")

    def handle(self, *args: Any, **options: Any) -> None:
        day = yesterday()
        if options["jour"]:
            try:
                day = date.fromisoformat(options["jour"])
            except ValueError:
                raise CommandError("--jour : date attendue au format AAAA-MM-JJ.") from None
        checks = feed_check_run(day=day)
        for check in checks:
            self.stdout.write(
                f"{check.emergency_department.finess} {check.state} {'; '.join(check.problems)}"
            )
        self.stdout.write(
            self.style.SUCCESS(f"{len(checks)} structure(s) contrôlée(s) pour le {day:%d/%m/%Y}.")
        )
