"""``manage.py import_ror_offers FILE.csv``: load a ROR offer file (format: ror/IMPORT_FORMAT.md)."""

import csv
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ror.importer import ImportFormatError, import_offers, read_offer_file
from ror.services import user_is_gcs_staff


class Command(BaseCommand):
    help = (
        "Importe un fichier d'offres du ROR (CSV UTF-8, séparateur « ; », une ligne par offre, lieu et "
        "capacité ; colonnes décrites dans ror/IMPORT_FORMAT.md). Idempotent : les offres et les lieux sont "
        "mis à jour sur leur identifiant. Un fichier mal formé n'importe rien ; une ligne refusée figure "
        "dans le rapport avec son numéro et le motif."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="fichier CSV des offres")
        parser.add_argument(
            "--user", required=True, help="identifiant du compte (GCS ou administrateur) qui importe"
        )
        parser.add_argument("--rejects", type=Path, default=None, help="écrire les refus dans ce fichier CSV")
        parser.add_argument("--dry-run", action="store_true", help="tout vérifier sans rien enregistrer")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["user"], is_active=True).first()
        if user is None or not user_is_gcs_staff(user):
            raise CommandError(f"« {options['user']} » n'est pas un compte actif de l'équipe du GCS.")
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"Fichier introuvable : {path}")
        try:
            lines = read_offer_file(path)
        except ImportFormatError as exc:
            raise CommandError(f"Fichier refusé, rien n'a été importé : {exc}") from exc
        console = Console(stderr=True)  # the bar on stderr, only on a terminal; reports on stdout
        with Progress(
            TextColumn("Offres"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=not console.is_terminal,
        ) as bar:
            task = bar.add_task("offres", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, total=total, advance=done)

            report = import_offers(
                lines,
                actor=user,
                filename=str(path),
                dry_run=options["dry_run"],
                progress=advance,
            )
        prefix = "Vérification (rien n'est enregistré) : " if options["dry_run"] else ""
        self.stdout.write(
            f"{prefix}{report.lines} lignes lues ; offres : {report.offers_created} créées, "
            f"{report.offers_updated} modifiées, {report.offers_unchanged} inchangées ; "
            f"{report.locations_created} lieux créés ; {report.capacity_updates} mises à jour de capacités, "
            f"{report.capacity_skipped} déjà à jour ; {report.rejected_lines} lignes refusées."
        )
        if report.rejections:
            self.stdout.write("Lignes refusées :")
            for r in report.rejections:
                self.stdout.write(f"  ligne {r.line} ({r.offer or 'sans identifiant'}) : {r.reason}")
        if options["rejects"] is not None:
            with options["rejects"].open("w", encoding="utf-8", newline="") as out:
                writer = csv.writer(out, delimiter=";")
                writer.writerow(["ligne", "identifiant_offre", "motif"])
                writer.writerows([r.line, r.offer, r.reason] for r in report.rejections)
            self.stdout.write(f"Rapport des refus écrit dans {options['rejects']}.")
