"""``manage.py seed_ror_demo``: deterministic ROR offers, locations and capacities (demo)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from annuaire.bulk import Table
from ror import demo


class Command(BaseCommand):
    help = (
        "Charge un ROR de démonstration déterministe (offres opérationnelles, lieux, capacités) pour les "
        "établissements de santé de l'annuaire (chargés par seed_demo) : 3 à 10 offres par établissement, "
        "ou exactement --offers offres réparties entre eux."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--offers", type=int, default=None, help="nombre total d'offres (ex. 50000)")
        parser.add_argument(
            "--seed", type=int, default=demo.DEFAULT_SEED, help="graine : même graine, mêmes données"
        )
        parser.add_argument("--reset", action="store_true", help="vider d'abord les tables du ROR")
        parser.add_argument(
            "--if-empty", action="store_true", help="ne rien faire si le ROR contient des offres"
        )
        parser.add_argument("--writer", choices=["auto", "copy", "orm"], default="auto")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["offers"] is not None and options["offers"] < 0:
            raise CommandError("--offers doit être positif.")
        if options["if_empty"] and not demo.ror_is_empty():
            self.stdout.write("Le ROR contient déjà des offres : rien à charger.")
            return
        if not demo.demo_sites():
            raise CommandError("Aucun établissement de santé dans l'annuaire : lancez d'abord seed_demo.")
        console = Console(stderr=True)  # the bar on stderr, only on a terminal; reports on stdout
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:>9,.0f} lignes"),
            TimeElapsedColumn(),
            console=console,
            disable=not console.is_terminal,
        ) as bar:
            tasks: dict[str, Any] = {}

            def progress(table: Table, rows: int) -> None:
                if table.label not in tasks:
                    tasks[table.label] = bar.add_task(table.label, total=None)
                bar.advance(tasks[table.label], rows)

            try:
                counts = demo.seed_ror_demo(
                    seed=options["seed"],
                    offers=options["offers"],
                    reset=options["reset"],
                    method=options["writer"],
                    progress=progress,
                )
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"ROR de démonstration chargé : {counts['offers']} offres, {counts['locations']} lieux, "
                f"{counts['capacities']} capacités."
            )
        )
