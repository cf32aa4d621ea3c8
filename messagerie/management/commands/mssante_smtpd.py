"""``manage.py mssante_smtpd``: the incoming MSSanté SMTP listener (see `messagerie.smtpd`)."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from messagerie.smtpd import ListenerConfig, serve


class Command(BaseCommand):
    help = (
        "Serveur SMTP entrant de l'opérateur MSSanté : TLS avec certificat client de l'autorité configurée, "
        "courrier accepté seulement pour les boîtes hébergées et depuis les domaines de l'espace de "
        "confiance, message stocké (chiffré) avant de répondre 250. Arrêt propre sur SIGTERM."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=settings.MSSANTE_SMTPD_HOST, help="adresse d'écoute")
        parser.add_argument("--port", type=int, default=settings.MSSANTE_SMTPD_PORT, help="port d'écoute")
        parser.add_argument("--cert", default=settings.MSSANTE_SMTPD_CERT, help="certificat serveur (PEM)")
        parser.add_argument("--key", default=settings.MSSANTE_SMTPD_KEY, help="clé privée du serveur (PEM)")
        parser.add_argument(
            "--client-ca",
            default=settings.MSSANTE_SMTPD_CLIENT_CA,
            help="autorités acceptées pour les certificats clients (PEM, IGC-Santé)",
        )
        parser.add_argument(
            "--crl",
            default=getattr(settings, "MSSANTE_SMTPD_CRL", ""),
            help="liste de révocation de l'autorité émettrice (PEM) : certificats révoqués refusés",
        )
        parser.add_argument(
            "--implicit-tls", action="store_true", help="TLS dès la connexion (sinon STARTTLS obligatoire)"
        )
        parser.add_argument("--hostname", default="", help="nom annoncé dans la bannière SMTP")
        parser.add_argument("--workers", type=int, default=4, help="fils d'accès à la base de données")

    def handle(self, *args: Any, **options: Any) -> None:
        for name in ("cert", "key", "client_ca"):
            path = options[name]
            if not path:
                raise CommandError(
                    f"--{name.replace('_', '-')} est obligatoire (ou MSSANTE_SMTPD_{name.upper()})."
                )
            if not Path(path).is_file():
                raise CommandError(f"Fichier introuvable : {path}")
        if options["crl"] and not Path(options["crl"]).is_file():
            raise CommandError(f"Fichier introuvable : {options['crl']}")
        if not 0 < options["port"] < 65536:
            raise CommandError("Port invalide.")
        if options["workers"] < 1:
            raise CommandError("--workers doit valoir au moins 1.")
        config = ListenerConfig(
            host=options["host"],
            port=options["port"],
            cert=options["cert"],
            key=options["key"],
            client_ca=options["client_ca"],
            max_message_bytes=int(settings.MSSANTE_MAX_MESSAGE_BYTES),
            implicit_tls=options["implicit_tls"],
            crl=options["crl"],
            hostname=options["hostname"],
            workers=options["workers"],
        )
        if not logging.getLogger().handlers:
            logging.basicConfig(
                stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
            )
        try:
            asyncio.run(serve(config, ready=lambda: self.stdout.write("mssante_smtpd prêt", ending="\n")))
        except OSError as exc:
            raise CommandError(f"Écoute impossible sur {config.host}:{config.port} : {exc}") from exc
        except Exception as exc:
            raise CommandError(f"Arrêt sur erreur : {exc}") from exc
