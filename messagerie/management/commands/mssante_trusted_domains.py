"""``manage.py mssante_trusted_domains load|export``: the trust-space allow-list as a text file.

File format: one domain per line, optionally followed by the operator's name; ``#`` starts a comment.
A domain starting with a dot (``.mssante.fr``) covers all its sub-domains.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from messagerie.services.incoming import trusted_domains_export, trusted_domains_load


class Command(BaseCommand):
    help = (
        "Charge ou exporte la liste des domaines de l'espace de confiance MSSanté (un domaine par ligne, "
        "nom de l'opérateur facultatif, commentaires après #)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        load = sub.add_parser("load", help="ajoute / réactive les domaines du fichier")
        load.add_argument("file", help="fichier texte (UTF-8), ou - pour l'entrée standard")
        load.add_argument(
            "--replace",
            action="store_true",
            help="désactive aussi les domaines actifs absents du fichier",
        )
        export = sub.add_parser("export", help="écrit les domaines actifs")
        export.add_argument("file", nargs="?", default="-", help="fichier de sortie, ou - (défaut)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "load":
            self._load(options["file"], replace=options["replace"])
        else:
            self._export(options["file"])

    def _load(self, name: str, *, replace: bool) -> None:
        try:
            text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"Lecture impossible de {name} : {exc}") from exc
        try:
            counts = trusted_domains_load(text=text, replace=replace)
        except ValidationError as exc:
            raise CommandError("\n".join(exc.messages)) from exc
        self.stdout.write(
            f"Domaines ajoutés : {counts['added']}, réactivés : {counts['reactivated']}, "
            f"inchangés : {counts['unchanged']}, désactivés : {counts['deactivated']}."
        )

    def _export(self, name: str) -> None:
        text = trusted_domains_export()
        if name == "-":
            self.stdout.write(text, ending="")
            return
        try:
            Path(name).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"Écriture impossible de {name} : {exc}") from exc
        self.stdout.write(f"Liste écrite dans {name}.")
