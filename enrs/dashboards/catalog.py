"""What the dashboards show: pages, and on each page the charts, each naming the indicators it draws.

Pure declarations (no query): `enrs.dashboards.figures` turns a chart and the filters into figures, the
views, the exports and the API all go through it. Indicator codes are those of the registry of
`enrs.usage.indicators`; a code the registry does not know shows as "indicateur indisponible" instead of
breaking the page (an app that does not exist yet simply contributes nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Mode(StrEnum):
    SERIES = "series"  # each indicator over time (one dataset each), + the target line
    BREAKDOWN = "breakdown"  # one indicator split by a key (department, category, a dimension…)
    SHARE = "share"  # BREAKDOWN shown as shares of the total (%)
    SUMMARY = "summary"  # each indicator's value over the period against its yearly target
    COMPOSITION = "composition"  # several count indicators over the period, each with its share of the sum
    MATRIX = "matrix"  # several indicators broken down by the same key (one column each)


@dataclass(frozen=True, slots=True)
class ChartSpec:
    key: str
    title: str
    indicators: tuple[str, ...]
    mode: Mode = Mode.SERIES
    by: str = ""
    chart_type: str = "line"  # Chart.js type: "line" or "bar"
    description: str = ""


@dataclass(frozen=True, slots=True)
class PageSpec:
    slug: str
    title: str
    description: str
    charts: tuple[ChartSpec, ...] = field(default_factory=tuple)

    def chart(self, key: str) -> ChartSpec | None:
        return next((c for c in self.charts if c.key == key), None)


# Breakdown keys a chart may use besides the event dimensions.
BREAKDOWN_LABELS = {
    "department": "Département",
    "category": "Catégorie de structure",
    "college": "Collège",
    "structure": "Membre",
}


def _by_department(code: str, title: str) -> ChartSpec:
    return ChartSpec(
        key="par-departement",
        title=title,
        indicators=(code,),
        mode=Mode.BREAKDOWN,
        by="department",
        chart_type="bar",
        description="Répartition sur la période choisie, par département.",
    )


PAGES: tuple[PageSpec, ...] = (
    PageSpec(
        slug="synthese",
        title="Synthèse",
        description="L'usage de chaque service sur la période, face aux objectifs de déploiement de l'année.",
        charts=(
            ChartSpec(
                key="objectifs",
                title="Usage des services et objectifs de l'année",
                indicators=(
                    "messagerie.messages_sent",
                    "dmp.documents_submitted",
                    "telemedecine.acts_closed",
                    "auth.strong_share",
                    "annuaire.mssante_coverage",
                    "ror.freshness",
                ),
                mode=Mode.SUMMARY,
                chart_type="bar",
                description="Réalisé sur la période et, pour les cumuls, rythme attendu d'après "
                "l'objectif annuel.",
            ),
            ChartSpec(
                key="activite",
                title="Activité des services dans le temps",
                indicators=(
                    "messagerie.messages_sent",
                    "dmp.documents_submitted",
                    "telemedecine.acts_closed",
                ),
            ),
            ChartSpec(
                key="par-departement",
                title="Usage des services par département",
                indicators=(
                    "messagerie.messages_sent",
                    "dmp.documents_submitted",
                    "telemedecine.acts_closed",
                ),
                mode=Mode.MATRIX,
                by="department",
                chart_type="bar",
                description="Sur la période choisie ; un département ouvre la synthèse filtrée sur lui.",
            ),
        ),
    ),
    PageSpec(
        slug="messagerie",
        title="Messagerie sécurisée de santé",
        description="Messages MSSanté envoyés, remis, en échec et reçus par les boîtes du portail.",
        charts=(
            ChartSpec(key="envois", title="Messages envoyés", indicators=("messagerie.messages_sent",)),
            ChartSpec(
                key="acheminement",
                title="Acheminement des messages",
                indicators=("messagerie.messages_received", "messagerie.failures"),
            ),
            ChartSpec(
                key="remise", title="Taux de remise des messages", indicators=("messagerie.delivery_rate",)
            ),
            ChartSpec(
                key="professionnels",
                title="Professionnels actifs en messagerie",
                indicators=("messagerie.active_professionals",),
            ),
            _by_department("messagerie.messages_sent", "Messages envoyés par département"),
        ),
    ),
    PageSpec(
        slug="dmp",
        title="Dossier Médical Partagé",
        description="Documents envoyés au DMP, acceptés et refusés.",
        charts=(
            ChartSpec(
                key="envois", title="Documents envoyés au DMP", indicators=("dmp.documents_submitted",)
            ),
            ChartSpec(
                key="issues",
                title="Documents acceptés et refusés",
                indicators=("dmp.documents_accepted", "dmp.documents_refused"),
            ),
            ChartSpec(key="acceptation", title="Taux d'acceptation", indicators=("dmp.acceptance_rate",)),
            ChartSpec(
                key="professionnels",
                title="Professionnels alimentant le DMP",
                indicators=("dmp.active_professionals",),
            ),
            ChartSpec(
                key="par-type",
                title="Documents envoyés par type",
                indicators=("dmp.documents_submitted",),
                mode=Mode.BREAKDOWN,
                by="type_code",
                chart_type="bar",
            ),
            _by_department("dmp.documents_submitted", "Documents envoyés par département"),
        ),
    ),
    PageSpec(
        slug="telemedecine",
        title="Télémédecine",
        description="Actes de télémédecine par type et par état, délais, volumes d'imagerie échangés.",
        charts=(
            ChartSpec(
                key="actes",
                title="Actes demandés et réalisés",
                indicators=("telemedecine.acts_requested", "telemedecine.acts_closed"),
            ),
            ChartSpec(
                key="par-type",
                title="Actes réalisés par type",
                indicators=("telemedecine.acts_closed",),
                mode=Mode.BREAKDOWN,
                by="act_type",
                chart_type="bar",
            ),
            ChartSpec(
                key="delais", title="Délai moyen d'acceptation", indicators=("telemedecine.acceptance_delay",)
            ),
            ChartSpec(
                key="imagerie", title="Volume d'imagerie échangé", indicators=("telemedecine.dicom_volume",)
            ),
            ChartSpec(
                key="professionnels",
                title="Professionnels actifs en télémédecine",
                indicators=("telemedecine.active_professionals",),
            ),
            _by_department("telemedecine.acts_closed", "Actes réalisés par département"),
        ),
    ),
    PageSpec(
        slug="ror",
        title="ROR : fraîcheur et tension",
        description="Part de l'offre dont les disponibilités sont à jour, et lits disponibles dans le temps.",
        charts=(
            ChartSpec(key="fraicheur", title="Fraîcheur des disponibilités", indicators=("ror.freshness",)),
            ChartSpec(key="lits", title="Lits disponibles", indicators=("ror.beds_available",)),
            ChartSpec(
                key="mises-a-jour",
                title="Mises à jour des disponibilités",
                indicators=("ror.capacity_updates",),
            ),
            _by_department("ror.freshness", "Fraîcheur par département"),
        ),
    ),
    PageSpec(
        slug="connexions",
        title="Modes de connexion",
        description="Part des connexions par authentification forte (carte CPS, Pro Santé Connect) face au "
        "code à usage unique et au mot de passe seul.",
        charts=(
            ChartSpec(
                key="methodes",
                title="Connexions par méthode",
                indicators=(
                    "auth.sign_ins_cps",
                    "auth.sign_ins_psc",
                    "auth.sign_ins_otp",
                    "auth.sign_ins_password",
                ),
                mode=Mode.COMPOSITION,
                chart_type="bar",
                description="Carte CPS et Pro Santé Connect : authentification forte ; mot de passe complété "
                "d'un code à usage unique ; mot de passe seul.",
            ),
            ChartSpec(key="forte", title="Part d'authentification forte", indicators=("auth.strong_share",)),
            ChartSpec(key="connexions", title="Connexions", indicators=("auth.sign_ins",)),
            ChartSpec(key="actifs", title="Utilisateurs actifs", indicators=("auth.active_users",)),
            ChartSpec(
                key="par-profil",
                title="Connexions par profil",
                indicators=("auth.sign_ins",),
                mode=Mode.SHARE,
                by="role",
                chart_type="bar",
            ),
        ),
    ),
    PageSpec(
        slug="annuaire",
        title="Couverture de l'annuaire",
        description="Part des professionnels actifs disposant d'une adresse de messagerie MSSanté.",
        charts=(
            ChartSpec(
                key="couverture", title="Couverture MSSanté", indicators=("annuaire.mssante_coverage",)
            ),
            _by_department("annuaire.mssante_coverage", "Couverture MSSanté par département"),
            ChartSpec(key="imports", title="Imports de l'annuaire", indicators=("annuaire.imports",)),
        ),
    ),
)


def page_get(slug: str) -> PageSpec | None:
    return next((p for p in PAGES if p.slug == slug), None)


def all_charts() -> list[tuple[PageSpec, ChartSpec]]:
    return [(page, chart) for page in PAGES for chart in page.charts]
