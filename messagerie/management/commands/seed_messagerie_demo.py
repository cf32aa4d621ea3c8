"""``manage.py seed_messagerie_demo``: demo mailboxes and messages on top of ``seed_demo`` (idempotent)."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annuaire.demo import DEFAULT_SEED
from messagerie import demo


class Command(BaseCommand):
    help = (
        "Messagerie de démonstration : domaine hébergé dans l'espace de confiance, boîtes personnelles de "
        "demo-clinicien et demo-clinicien2, une boîte organisationnelle déléguée, quelques messages "
        "(dont un compte rendu PDF + CDA en IHE_XDM). Sans effet sur ce qui existe déjà."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="graine des mots de passe de démo")
        parser.add_argument(
            "--force",
            action="store_true",
            help="créer le compte demo-clinicien2 même hors mode démo (ENRS_DEMO_MODE désactivé)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = demo.messagerie_demo_seed(
                seed=options["seed"], allow_accounts=bool(settings.ENRS_DEMO_MODE or options["force"])
            )
        except demo.DemoError as error:
            raise CommandError(str(error)) from error
        if report.created:
            self.stdout.write("Messagerie de démonstration : ajouté")
            for item in report.created:
                self.stdout.write(f"  + {item}")
        else:
            self.stdout.write("Messagerie de démonstration : déjà en place, rien à ajouter.")
        for username, password in report.accounts:
            self.stdout.write(
                self.style.WARNING(f"Compte {username} (démo uniquement) — mot de passe : {password}")
            )
