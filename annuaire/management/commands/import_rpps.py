"""``manage.py import_rpps FILE``: import the RPPS open extraction (PS_LibreAcces_Personne_activite).

The work is done by ``annuaire.services.imports``; this command shows a progress bar, prints the report and
writes the rejections to a CSV file on request. It also holds :class:`ImportCommand`, shared with
``import_finess``.
"""

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn

from annuaire.models import ImportKind, ImportRejection, ImportRun
from annuaire.services import imports
from enrs.accounts.models import User

# A cell starting with one of these is a formula for Excel / LibreOffice (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _number(value: float) -> str:
    return f"{value:,.0f}".replace(",", " ")


def _megabytes(value: int) -> str:
    return f"{value / 1_000_000:,.1f}".replace(",", " ").replace(".", ",") + " Mo"


def _cell(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def write_rejections_csv(run: ImportRun, path: Path) -> int:
    """Write the run's rejections (line, reason, content) as a CSV for a spreadsheet; return their number."""
    written = 0
    with path.open("w", encoding="utf-8-sig", newline="") as stream:
        writer = csv.writer(stream, delimiter=";")
        writer.writerow(["ligne", "motif", "contenu"])
        rows = (
            ImportRejection.objects.filter(run=run)
            .order_by("line_number")
            .values_list("line_number", "reason", "raw")
            .iterator(chunk_size=5_000)
        )
        for line_number, reason, raw in rows:
            writer.writerow([line_number, _cell(reason), _cell(raw)])
            written += 1
    return written


class ImportCommand(BaseCommand):
    kind: ImportKind
    entities: str  # what the created/updated … counts count, in French
    service: Callable[..., ImportRun]

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="le fichier de l'extraction, tel que téléchargé")
        parser.add_argument(
            "--rejections-csv",
            metavar="CHEMIN",
            help="écrire les lignes rejetées (numéro, motif, contenu) dans ce fichier CSV",
        )
        parser.add_argument(
            "--actor",
            metavar="IDENTIFIANT",
            help="compte ENRS auquel attribuer l'import dans le journal d'audit",
        )
        parser.add_argument(
            "--allow-mass-deactivation",
            action="store_true",
            help="accepter un fichier qui désactive plus de 5 %% de ce que les imports précédents ont "
            "apporté",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        actor = None
        if options["actor"]:
            actor = User.objects.filter(username=options["actor"]).first()
            if actor is None:
                raise CommandError(f"Utilisateur inconnu : {options['actor']!r}.")
        console = Console(stderr=True)
        columns = (
            TextColumn("{task.description:<28}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
        )
        show = options["verbosity"] >= 1 and console.is_terminal
        with Progress(*columns, console=console, disable=not show) as bar:
            tasks: dict[str, TaskID] = {}

            def progress(phase: str, done: int, total: int | None) -> None:
                if phase == imports.PHASE_APPLY and total:
                    detail = f"étape {min(done + 1, total)}/{total}"
                else:
                    detail = f"{_megabytes(done)} / {_megabytes(total or 0)}"
                if phase not in tasks:
                    tasks[phase] = bar.add_task(phase, total=total, detail=detail)
                bar.update(tasks[phase], completed=done, detail=detail)

            try:
                run = self.service(
                    path=Path(options["file"]),
                    actor=actor,
                    progress=progress,
                    allow_mass_deactivation=options["allow_mass_deactivation"],
                )
            except imports.ImportFailed as failure:
                raise CommandError(failure.message) from failure
            for phase, task in tasks.items():
                if phase == imports.PHASE_APPLY:
                    bar.update(task, completed=bar.tasks[task].total, detail="terminé")
        self.write_report(run)
        if options["rejections_csv"]:
            path = Path(options["rejections_csv"])
            count = write_rejections_csv(run, path)
            self.stdout.write(f"{count} ligne(s) rejetée(s) écrite(s) dans {path}.")

    def write_report(self, run: ImportRun) -> None:
        summary = imports.import_summary(run)
        duration = float(summary.get("duration_s", 0.0))
        rate = run.rows_read / duration if duration else 0.0
        self.stdout.write(
            f"Import {run.get_kind_display().split(' ')[0]} n° {run.pk} terminé — {run.file_name} "
            f"(encodage {run.encoding}) :"
        )
        lines = [
            ("lignes lues", run.rows_read),
            ("lignes rejetées", run.rows_rejected),
            (f"{self.entities} :", None),
            ("  créés", run.rows_created),
            ("  mis à jour", run.rows_updated),
            ("  inchangés", run.rows_unchanged),
            ("  désactivés", run.rows_deactivated),
            *self.extra_lines(summary),
        ]
        for label, value in lines:
            self.stdout.write(f"  {label}" if value is None else f"  {label:<26}{_number(value):>12}")
        self.stdout.write(f"  {'durée':<26}{f'{duration:.1f} s'.replace('.', ','):>12}")
        self.stdout.write(f"  {'débit':<26}{_number(rate):>12} lignes/s")
        if run.rows_rejected:
            self.stdout.write(
                self.style.WARNING(
                    f"{run.rows_rejected} ligne(s) rejetée(s) : voir --rejections-csv ou la page des imports."
                )
            )

    def extra_lines(self, summary: dict[str, Any]) -> list[tuple[str, int | None]]:
        return []


class Command(ImportCommand):
    help = (
        "Importe l'extraction RPPS « PS_LibreAcces_Personne_activite » (séparateur |, UTF-8 ou "
        "Windows-1252) : crée, met à jour et désactive les professionnels et leurs exercices, crée les "
        "structures inconnues, rejette les lignes invalides (avec leur numéro et le motif). Relancer le même "
        "fichier ne change rien."
    )
    kind = ImportKind.RPPS
    entities = "professionnels"
    service = staticmethod(imports.import_rpps_file)

    def extra_lines(self, summary: dict[str, Any]) -> list[tuple[str, int | None]]:
        return [
            ("structures créées", summary.get("structures_created", 0)),
            ("exercices ajoutés", summary.get("exercices_added", 0)),
            ("exercices modifiés", summary.get("exercices_updated", 0)),
            ("exercices retirés", summary.get("exercices_removed", 0)),
        ]
