"""``manage.py seed_demo``: load the deterministic demo directory and one demo account per role."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from annuaire import demo
from annuaire.bulk import Table
from enrs.core import geo


def _number(value: float) -> str:
    return f"{value:,.0f}".replace(",", " ")


class Command(BaseCommand):
    help = (
        "Charge un annuaire de démonstration déterministe (départements, communes, structures FINESS, "
        "professionnels RPPS, exercices, adresses MSSanté, adhérents du GCS) et un compte de démonstration "
        "par rôle, dont les mots de passe sont affichés à la fin."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--scale",
            choices=sorted(demo.SCALES),
            default="small",
            help="small : ~30 structures / 500 professionnels ; region : 300 / 20 000 ; "
            "national : 30 000 / 1 000 000 (tous les départements).",
        )
        parser.add_argument(
            "--seed", type=int, default=demo.DEFAULT_SEED, help="graine : même graine, mêmes données"
        )
        parser.add_argument(
            "--region",
            default=None,
            help="code INSEE de la région (défaut : ENRS_REGION_CODE ; ignoré en national)",
        )
        parser.add_argument(
            "--if-empty", action="store_true", help="ne rien faire si l'annuaire contient déjà des données"
        )
        parser.add_argument(
            "--reset",
            action="store_true",
            help="vider d'abord les tables de l'annuaire (et ce qui les référence) "
            "et les comptes de démonstration",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="créer les comptes de démonstration même hors mode démo (ENRS_DEMO_MODE désactivé)",
        )
        parser.add_argument(
            "--no-users", action="store_true", help="ne pas créer les comptes de démonstration"
        )
        parser.add_argument(
            "--writer",
            choices=["auto", "copy", "orm"],
            default="auto",
            help="auto : COPY sur PostgreSQL, bulk_create ailleurs",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["if_empty"] and options["reset"]:
            raise CommandError("--if-empty et --reset s'excluent.")
        scale = demo.SCALES[options["scale"]]
        region_code = options["region"] or settings.ENRS_REGION_CODE
        accounts_allowed = settings.ENRS_DEMO_MODE or options["force"]
        create_accounts = not options["no_users"]

        if options["if_empty"] and not demo.annuaire_is_empty():
            self.stdout.write("L'annuaire contient déjà des données : rien à charger.")
            if create_accounts and accounts_allowed:
                self._write_accounts(demo.demo_accounts_status(seed=options["seed"]), options["seed"])
            return
        if create_accounts and not accounts_allowed:
            raise CommandError(
                "ENRS_DEMO_MODE est désactivé : les comptes de démonstration, aux mots de passe connus, "
                "ne sont pas créés sur une installation réelle. Utilisez --no-users pour ne charger que "
                "l'annuaire, ou --force si cette base est bien une base de démonstration."
            )

        console = Console(stderr=True)
        show_progress = options["verbosity"] >= 1 and console.is_terminal
        columns = (
            TextColumn("{task.description:<22}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console, disable=not show_progress) as bar:
            tasks: dict[Table, TaskID] = {}

            def on_plan(data: demo.DemoData) -> None:
                for table, total in data.expected.items():
                    tasks[table] = bar.add_task(table.label, total=total)

            def progress(table: Table, rows: int) -> None:
                if table not in tasks:
                    tasks[table] = bar.add_task(table.label, total=None)
                bar.advance(tasks[table], rows)

            try:
                report = demo.seed_demo(
                    scale=scale.name,
                    region_code=region_code,
                    seed=options["seed"],
                    reset=options["reset"],
                    create_accounts=create_accounts,
                    method=options["writer"],
                    progress=progress,
                    on_plan=on_plan,
                )
            except demo.SeedError as error:
                raise CommandError(str(error)) from error
        self._write_summary(report)
        if create_accounts:
            self._write_accounts(report.accounts, report.seed)

    def _write_summary(self, report: demo.SeedReport) -> None:
        where = (
            "tous les départements"
            if report.region_code is None
            else f"région {report.region_code} ({geo.region_name(report.region_code)})"
        )
        rate = report.total_rows / report.duration if report.duration else 0
        self.stdout.write(
            f"Annuaire de démonstration chargé — échelle « {report.scale} », graine {report.seed}, {where}, "
            f"en {report.duration:.1f} s :".replace(".", ",", 1)
        )
        for table, count in report.counts.items():
            self.stdout.write(f"  {table.label:<24}{_number(count):>12}")
        self.stdout.write(
            f"  {'total':<24}{_number(report.total_rows):>12} lignes ({_number(rate)} lignes/s)"
        )

    def _write_accounts(self, accounts: list[demo.DemoAccount], seed: int) -> None:
        if not accounts:
            return
        self.stdout.write("")
        self.stdout.write(
            self.style.WARNING(
                f"Comptes de démonstration (mots de passe déterminés par la graine {seed} : "
                "démo uniquement) :"
            )
        )
        self.stdout.write(f"  {'identifiant':<18}{'rôle':<26}mot de passe")
        for account in accounts:
            password = account.password or "(compte existant, mot de passe modifié : inchangé)"
            self.stdout.write(f"  {account.username:<18}{account.role.label:<26}{password}")
