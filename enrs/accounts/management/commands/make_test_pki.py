"""`manage.py make_test_pki OUTDIR`: a test PKI with the IGC-Santé profile, for the demo and the tests."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from enrs.accounts.models import User
from enrs.accounts.pki_testing import DEFAULT_PROFESSIONALS, Professional, build_test_pki


class Command(BaseCommand):
    help = (
        "Crée une PKI de test au profil IGC-Santé (AC racine, AC émettrice, certificats de professionnels, "
        "certificats à refuser, CRL, certificat serveur pour nginx) dans OUTDIR. Jamais en production."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("outdir", type=Path, help="Dossier où écrire les fichiers PEM.")
        parser.add_argument(
            "--idnat",
            action="append",
            default=[],
            metavar="IDNAT:NOM:Prénom[:Profession]",
            help="Professionnel à qui émettre une carte (répétable). Par défaut : les comptes de la démo.",
        )
        parser.add_argument(
            "--from-users",
            action="store_true",
            help="Émettre aussi une carte pour chaque compte actif qui a un IdNat_PS (ex. après seed_demo).",
        )
        parser.add_argument(
            "--server-name",
            action="append",
            default=[],
            help="Nom DNS du certificat serveur (répétable ; défaut : localhost). 127.0.0.1 et ::1 y sont.",
        )
        parser.add_argument(
            "--p12-password", default="demo", help="Mot de passe des fichiers .p12 (défaut : demo)."
        )
        parser.add_argument(
            "--force", action="store_true", help="Remplacer une PKI déjà présente dans OUTDIR."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        outdir: Path = options["outdir"]
        if (outdir / "ca-bundle.pem").exists() and not options["force"]:
            raise CommandError(
                f"{outdir} contient déjà une PKI de test (utilisez --force pour la remplacer)."
            )
        try:
            professionals = [Professional.parse(s) for s in options["idnat"]]
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if options["from_users"]:
            professionals += self.account_holders(exclude={p.idnat_ps for p in professionals})
        professionals = professionals or list(DEFAULT_PROFESSIONALS)
        pki = build_test_pki(
            professionals=professionals, server_dns_names=options["server_name"] or ["localhost"]
        )
        pki.write(outdir, p12_password=options["p12_password"].encode())
        self.stdout.write(self.style.SUCCESS(f"PKI de test écrite dans {outdir}"))
        for p in professionals:
            self.stdout.write(f"  carte {p.idnat_ps} : {p.given_name} {p.surname} ({p.title})")
        self.stdout.write("  cartes à refuser : expired, unknown-ca, revoked, no-client-auth")
        self.stdout.write(f"  fichiers .p12 (navigateur) : mot de passe « {options['p12_password']} »")
        self.stdout.write(
            f"Réglages : CPS_CA_BUNDLE={outdir / 'ca-bundle.pem'} CPS_CRL_FILE={outdir / 'crl.pem'}"
        )

    @staticmethod
    def account_holders(*, exclude: set[str]) -> list[Professional]:
        users = User.objects.filter(is_active=True).exclude(idnat_ps="").order_by("idnat_ps")
        return [
            Professional(u.idnat_ps, (u.last_name or u.username).upper(), u.first_name or "-", "Médecin")
            for u in users
            if u.idnat_ps not in exclude
        ]
