"""Import OSCOUR files from the command line (same service as the upload page and the drop directory)."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from enrs.rpu.models import FileSource
from enrs.rpu.services import RpuFileRefused, rpu_file_import


class Command(BaseCommand):
    help = "Importe un ou plusieurs fichiers RPU (OSCOUR XML)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="+", type=Path)

    def handle(self, *args: Any, **options: Any) -> None:
        for path in options["files"]:
            try:
                rpu_file = rpu_file_import(
                    data=path.read_bytes(), source=FileSource.DROP, original_name=path.name
                )
            except RpuFileRefused as refusal:
                self.stderr.write(f"{path.name} : refusé — {refusal.messages[0]}")
                continue
            self.stdout.write(
                f"{path.name} : {rpu_file.accepted_count} passage(s) accepté(s), "
                f"{rpu_file.rejected_count} rejeté(s)."
            )
