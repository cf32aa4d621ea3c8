"""``manage.py import_finess FILE``: import the FINESS establishments extraction (etalab_cs1100507_*)."""

from typing import Any

from annuaire.models import ImportKind
from annuaire.services import imports

from .import_rpps import ImportCommand


class Command(ImportCommand):
    help = (
        "Importe l'extraction FINESS des établissements publiée sur data.gouv.fr (séparateur ;, UTF-8 ou "
        "Windows-1252) : crée, met à jour et désactive les établissements (ET), convertit leurs coordonnées "
        "Lambert-93, rejette les lignes invalides. Relancer le même fichier ne change rien."
    )
    kind = ImportKind.FINESS
    entities = "établissements"
    service = staticmethod(imports.import_finess_file)

    def extra_lines(self, summary: dict[str, Any]) -> list[tuple[str, int | None]]:
        return [("géolocalisés", summary.get("geolocated", 0))]
