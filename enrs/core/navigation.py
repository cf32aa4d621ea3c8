"""The portal's services: one registry used by the navigation, the home page and the landing pages."""

from dataclasses import dataclass
from typing import Any

from django.urls import reverse

from enrs.accounts import roles
from enrs.accounts.roles import AccessRule, Role, user_has_role


@dataclass(frozen=True, slots=True)
class Service:
    key: str
    label: str
    url_name: str
    description: str
    access: AccessRule  # the same rule its views apply (enrs.accounts.roles)
    icon: str = "fr-icon-arrow-right-line"

    @property
    def url(self) -> str:
        return reverse(self.url_name)

    @property
    def roles(self) -> frozenset[Role]:
        return self.access.roles

    @property
    def needs_strong_auth(self) -> bool:
        return self.access.strong


SERVICES: tuple[Service, ...] = (
    Service(
        "annuaire",
        "Annuaire",
        "annuaire:index",
        "L'annuaire régional des professionnels (RPPS/ADELI) et des structures (FINESS), "
        "leurs adresses de messagerie sécurisée et les adhérents du GCS.",
        roles.DIRECTORY_ACCESS,
        "fr-icon-team-line",
    ),
    Service(
        "messagerie",
        "Messagerie",
        "messagerie:index",
        "La messagerie sécurisée de santé MSSanté : boîtes personnelles et organisationnelles, "
        "échange de documents au format IHE-XDM.",
        roles.CLINICAL_ACCESS,
        "fr-icon-mail-line",
    ),
    Service(
        "patients",
        "Patients",
        "patients:search",
        "L'identité des patients : INS et ses traits, statut de l'identité, choix du patient.",
        roles.CLINICAL_ACCESS,
        "fr-icon-user-line",
    ),
    Service(
        "dmp",
        "DMP",
        "dmp:index",
        "L'alimentation du Dossier Médical Partagé : identité INS, documents CDA, envoi XDS.b.",
        roles.CLINICAL_ACCESS,
        "fr-icon-file-text-line",
    ),
    Service(
        "telemedecine",
        "Télémédecine",
        "telemedecine:index",
        "Téléconsultation, téléexpertise, télésurveillance et téléassistance, avec leur traçabilité "
        "et le partage d'examens d'imagerie (DICOM) entre établissements.",
        roles.CLINICAL_ACCESS,
        "fr-icon-video-chat-line",
    ),
    Service(
        "ror",
        "ROR",
        "ror:index",
        "Le Répertoire Opérationnel des Ressources : offre de soins, lits disponibles, "
        "recherche d'orientation.",
        roles.ROR_ACCESS,
        "fr-icon-hospital-line",
    ),
    Service(
        "dashboards",
        "Tableaux de bord",
        "dashboards:index",
        "Les indicateurs d'usage des services et de déploiement, pour l'ARS et le GCS "
        "(données agrégées, jamais nominatives).",
        roles.DASHBOARDS_ACCESS,
        "fr-icon-line-chart-line",
    ),
    Service(
        "rpu",
        "Urgences (RPU)",
        "rpu:index",
        "Les résumés de passage aux urgences : supervision des envois quotidiens et indicateurs.",
        roles.DASHBOARDS_ACCESS,
        "fr-icon-heart-pulse-line",
    ),
    Service(
        "administration",
        "Administration",
        "admin:index",
        "L'administration du portail : comptes, adhérents, paramétrage des services.",
        roles.ADMINISTRATION_ACCESS,
        "fr-icon-settings-5-line",
    ),
)


def services_for(user: Any) -> list[Service]:
    """What the navigation shows: the services this user may open; anonymous visitors see the
    public services (each leads to the sign-in page), never the administration."""
    if not getattr(user, "is_authenticated", False):
        return [s for s in SERVICES if s.key != "administration"]
    return [s for s in SERVICES if user_has_role(user, s.roles)]


def service(key: str) -> Service:
    return next(s for s in SERVICES if s.key == key)
