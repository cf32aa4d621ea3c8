"""``manage.py dicom_scp``: the DICOM C-STORE SCP of ENRS (see `telemedecine.services.scp`)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from telemedecine.services.scp import StoreSCP

AE_TITLE_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-. ")


class Command(BaseCommand):
    # A network daemon: URL and template checks say nothing about it (the deploy runs `check` anyway).
    requires_system_checks: list[str] = []
    help = (
        "Récepteur DICOM (C-STORE SCP) : accepte les examens envoyés par les AE titles autorisés "
        "(émetteurs DICOM autorisés) et les classe sous le site de l'émetteur ; examen finalisé à la fin "
        "de chaque association. Arrêt propre sur SIGTERM."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=settings.DICOM_SCP_HOST, help="adresse d'écoute")
        parser.add_argument("--port", type=int, default=settings.DICOM_SCP_PORT, help="port d'écoute")
        parser.add_argument("--ae-title", default=settings.DICOM_AE_TITLE, help="AE title de l'ENRS")
        parser.add_argument(
            "--grace", type=float, default=30.0, help="secondes laissées aux associations en cours à l'arrêt"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        ae_title = str(options["ae_title"]).strip()
        if not ae_title or len(ae_title) > 16 or not set(ae_title) <= AE_TITLE_CHARS:
            raise CommandError("AE title invalide : 1 à 16 caractères (lettres, chiffres, espace, _ - .).")
        if not 0 < options["port"] < 65536:
            raise CommandError("Port invalide.")
        if not logging.getLogger().handlers:
            logging.basicConfig(
                stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
            )
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)
        stop = threading.Event()

        def on_signal(signum: int, frame: Any) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        scp = StoreSCP(ae_title=ae_title)
        try:
            scp.serve(
                host=options["host"],
                port=options["port"],
                stop=stop,
                grace=options["grace"],
                ready=lambda: self.stdout.write(
                    f"dicom_scp prêt : {ae_title} sur {options['host']}:{options['port']}", ending="\n"
                ),
            )
        except OSError as exc:
            raise CommandError(f"Écoute impossible sur {options['host']}:{options['port']} : {exc}") from exc
        self.stdout.write("dicom_scp arrêté", ending="\n")
