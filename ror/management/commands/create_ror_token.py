"""``manage.py create_ror_token``: an API token for an establishment's software (secret shown once)."""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annuaire.models import Structure
from ror.models import RorApiToken
from ror.services import token_create, token_revoke


class Command(BaseCommand):
    help = (
        "Crée un jeton d'API du ROR limité aux structures données (FINESS géographiques) et l'affiche une "
        "seule fois ; seule son empreinte SHA-256 est conservée. --revoke PREFIXE révoque un jeton."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--user", required=True, help="compte qui crée le jeton (GCS ou membre des structures)"
        )
        parser.add_argument("--name", default="", help="libellé du jeton (nom du logiciel)")
        parser.add_argument("--finess", nargs="*", default=[], help="FINESS géographiques des structures")
        parser.add_argument("--revoke", default="", help="révoquer le jeton qui commence par ce préfixe")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["user"], is_active=True).first()
        if user is None:
            raise CommandError(f"Compte inconnu ou inactif : {options['user']}")
        if options["revoke"]:
            token = RorApiToken.objects.filter(key_prefix=options["revoke"], revoked_at=None).first()
            if token is None:
                raise CommandError("Aucun jeton actif avec ce préfixe.")
            token_revoke(token=token, actor=user)
            self.stdout.write(f"Jeton « {token.name} » ({token.key_prefix}…) révoqué.")
            return
        structures = list(Structure.objects.filter(finess_et__in=options["finess"]))
        missing = set(options["finess"]) - {s.finess_et for s in structures}
        if missing:
            raise CommandError("FINESS inconnus : " + ", ".join(sorted(missing)))
        try:
            token, secret = token_create(name=options["name"], structures=structures, actor=user)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(
            f"Jeton « {token.name} » créé pour {len(structures)} structure(s). À copier maintenant,"
        )
        self.stdout.write("il ne sera plus jamais affiché :")
        self.stdout.write(secret)
