"""The registry of dashboard indicators: what each figure means, which events it is computed from.

An indicator combines *terms*: a kind of event, optionally restricted to some values of one dimension,
counted with a sign (``+1`` / ``-1``). Aggregations:

* ``count``     Σ events of the numerator terms;
* ``sum``       Σ event values (bytes, recipients…) of the numerator terms;
* ``avg``       mean of the numeric dimension ``measure`` over the events that carry it (delays);
* ``ratio``     100 x numerator / denominator (counts, or values when ``use_total``), in %;
* ``distinct``  distinct pseudonymous actors of the numerator kinds ("active professionals");
* ``snapshot_sum`` / ``snapshot_ratio``  state indicators emitted once a day (directory coverage, ROR
  freshness, beds): the latest day of each period is taken, not the sum of the days.

Small-cell rule (``small_cell``): a figure computed from 1 to 4 events, acts or actors is suppressed.
The rollups keep, per kind, the dimensions listed here (terms and breakdowns): after adding one, run
``manage.py usage_rollup --rebuild``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError

SMALL_CELL_THRESHOLD = 5

AGGREGATIONS = ("count", "sum", "avg", "ratio", "distinct", "snapshot_sum", "snapshot_ratio")
STRUCTURE_BREAKDOWNS = ("department", "category", "college", "structure")
SERVICES = {
    "auth": "Connexions",
    "messagerie": "Messagerie sécurisée",
    "dmp": "DMP",
    "telemedecine": "Télémédecine",
    "ror": "ROR",
    "annuaire": "Annuaire",
}


@dataclass(frozen=True)
class Term:
    kind: str
    dim: str = ""  # restrict to some values of this dimension…
    values: tuple[str, ...] = ()  # …(as rolled up: str(value), booleans as "true"/"false")
    sign: int = 1
    measure: str = ""  # use the rollup row "sum:<measure>" (numeric dimension) instead of the base row


@dataclass(frozen=True)
class Indicator:
    code: str
    label: str
    service: str
    unit: str
    aggregation: str
    numerator: tuple[Term, ...]
    denominator: tuple[Term, ...] = ()
    use_total: bool = False  # ratio of summed values instead of event counts
    small_cell: bool = True
    breakdowns: tuple[tuple[str, str], ...] = ()  # dimensions this indicator can be broken down by
    description: str = ""
    structure_breakdowns: tuple[str, ...] = STRUCTURE_BREAKDOWNS
    dim_labels: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.kind for t in (*self.numerator, *self.denominator)))

    @property
    def is_snapshot(self) -> bool:
        return self.aggregation.startswith("snapshot_")


_METHOD_LABELS = {
    "password": "Mot de passe seul",
    "otp": "Mot de passe + code à usage unique",
    "cps": "Carte CPS",
    "psc": "Pro Santé Connect",
}
_SIGN_IN = "auth.sign_in"
_UPGRADED = "auth.sign_in_upgraded"

INDICATORS: tuple[Indicator, ...] = (
    # --- Connexions -------------------------------------------------------------------------------------
    Indicator(
        "auth.sign_ins",
        "Connexions",
        "auth",
        "nombre",
        "count",
        (Term(_SIGN_IN),),
        breakdowns=(("role", "Profil"), ("method", "Méthode initiale")),
        description="Ouvertures de session sur le portail, toutes méthodes.",
        dim_labels={"method": _METHOD_LABELS},
    ),
    Indicator(
        "auth.strong_share",
        "Part des connexions par authentification forte",
        "auth",
        "%",
        "ratio",
        (Term(_SIGN_IN, "method", ("cps", "psc")), Term(_UPGRADED, "method", ("otp",))),
        (Term(_SIGN_IN),),
        description="Sessions ouvertes par carte CPS, Pro Santé Connect ou complétées par un code à usage "
        "unique, rapportées à l'ensemble des connexions.",
    ),
    Indicator(
        "auth.sign_ins_cps",
        "Connexions par carte CPS",
        "auth",
        "nombre",
        "count",
        (Term(_SIGN_IN, "method", ("cps",)),),
    ),
    Indicator(
        "auth.sign_ins_psc",
        "Connexions par Pro Santé Connect",
        "auth",
        "nombre",
        "count",
        (Term(_SIGN_IN, "method", ("psc",)),),
    ),
    Indicator(
        "auth.sign_ins_otp",
        "Connexions par mot de passe + code à usage unique",
        "auth",
        "nombre",
        "count",
        (Term(_UPGRADED, "method", ("otp",)),),
    ),
    Indicator(
        "auth.sign_ins_password",
        "Connexions par mot de passe seul",
        "auth",
        "nombre",
        "count",
        (Term(_SIGN_IN, "method", ("password",)), Term(_UPGRADED, "method", ("otp",), sign=-1)),
        description="Sessions ouvertes par mot de passe et jamais renforcées par un code.",
    ),
    Indicator(
        "auth.active_users",
        "Utilisateurs actifs",
        "auth",
        "nombre",
        "distinct",
        (Term(_SIGN_IN),),
        description="Utilisateurs distincts s'étant connectés au moins une fois sur la période.",
    ),
    # --- Messagerie ---------------------------------------------------------------------------------------
    Indicator(
        "messagerie.messages_sent",
        "Messages envoyés",
        "messagerie",
        "nombre",
        "count",
        (Term("messagerie.message_sent"),),
        breakdowns=(("box_kind", "Type de boîte"), ("cda", "Avec document CDA")),
        dim_labels={
            "box_kind": {"PER": "Personnelle", "ORG": "Organisationnelle", "APP": "Applicative"},
            "cda": {"true": "Oui", "false": "Non"},
        },
    ),
    Indicator(
        "messagerie.messages_received",
        "Messages reçus",
        "messagerie",
        "nombre",
        "count",
        (Term("messagerie.message_received"),),
    ),
    Indicator(
        "messagerie.delivery_rate",
        "Taux de remise des messages",
        "messagerie",
        "%",
        "ratio",
        (Term("messagerie.message_delivered"),),
        (Term("messagerie.message_delivered"), Term("messagerie.message_failed")),
        use_total=True,
        description="Destinataires atteints rapportés aux destinataires atteints ou en échec définitif.",
    ),
    Indicator(
        "messagerie.failures",
        "Destinataires en échec",
        "messagerie",
        "nombre",
        "sum",
        (Term("messagerie.message_failed"),),
    ),
    Indicator(
        "messagerie.active_professionals",
        "Professionnels actifs en messagerie",
        "messagerie",
        "nombre",
        "distinct",
        (Term("messagerie.message_sent"),),
        description="Professionnels distincts ayant envoyé au moins un message sécurisé sur la période.",
    ),
    # --- DMP ------------------------------------------------------------------------------------------
    Indicator(
        "dmp.documents_submitted",
        "Documents envoyés au DMP",
        "dmp",
        "nombre",
        "count",
        (Term("dmp.document_submitted"),),
        breakdowns=(("type_code", "Type de document"), ("source", "Origine")),
    ),
    Indicator(
        "dmp.documents_accepted",
        "Documents acceptés par le DMP",
        "dmp",
        "nombre",
        "count",
        (Term("dmp.document_accepted"),),
        breakdowns=(("type_code", "Type de document"), ("source", "Origine")),
    ),
    Indicator(
        "dmp.documents_refused",
        "Documents refusés par le DMP",
        "dmp",
        "nombre",
        "count",
        (Term("dmp.document_refused"),),
        breakdowns=(("type_code", "Type de document"),),
    ),
    Indicator(
        "dmp.acceptance_rate",
        "Taux d'acceptation des documents DMP",
        "dmp",
        "%",
        "ratio",
        (Term("dmp.document_accepted"),),
        (Term("dmp.document_accepted"), Term("dmp.document_refused")),
        breakdowns=(("type_code", "Type de document"),),
    ),
    Indicator(
        "dmp.active_professionals",
        "Professionnels alimentant le DMP",
        "dmp",
        "nombre",
        "distinct",
        (Term("dmp.document_submitted"),),
        description="Professionnels distincts ayant envoyé au moins un document au DMP sur la période.",
    ),
    # --- Télémédecine -----------------------------------------------------------------------------------
    Indicator(
        "telemedecine.acts_requested",
        "Demandes d'actes de télémédecine",
        "telemedecine",
        "nombre",
        "count",
        (Term("telemedecine.act_sent"),),
        breakdowns=(("act_type", "Type d'acte"), ("urgency", "Urgence"), ("via_pool", "Via une équipe")),
        dim_labels={"via_pool": {"true": "Oui", "false": "Non"}},
    ),
    Indicator(
        "telemedecine.acts_closed",
        "Actes de télémédecine réalisés",
        "telemedecine",
        "nombre",
        "count",
        (Term("telemedecine.act_closed"),),
        breakdowns=(("act_type", "Type d'acte"), ("urgency", "Urgence")),
    ),
    Indicator(
        "telemedecine.acceptance_delay",
        "Délai moyen de prise en charge des demandes",
        "telemedecine",
        "secondes",
        "avg",
        (Term("telemedecine.act_accepted", measure="delay_s"),),
        description="Temps moyen entre l'envoi d'une demande et son acceptation.",
    ),
    Indicator(
        "telemedecine.dicom_volume",
        "Volume d'images transférées",
        "telemedecine",
        "octets",
        "sum",
        (Term("telemedecine.dicom_transfer"),),
        breakdowns=(("protocol", "Protocole"),),
    ),
    Indicator(
        "telemedecine.active_professionals",
        "Professionnels actifs en télémédecine",
        "telemedecine",
        "nombre",
        "distinct",
        (Term("telemedecine.act_sent"), Term("telemedecine.act_accepted")),
        description="Professionnels distincts ayant demandé ou accepté au moins un acte sur la période.",
    ),
    # --- ROR ----------------------------------------------------------------------------------------------
    Indicator(
        "ror.capacity_updates",
        "Mises à jour des disponibilités (ROR)",
        "ror",
        "nombre",
        "count",
        (Term("ror.capacity_update"),),
        breakdowns=(("source", "Origine"),),
        small_cell=False,
    ),
    Indicator(
        "ror.freshness",
        "Fraîcheur des disponibilités (ROR)",
        "ror",
        "%",
        "snapshot_ratio",
        (Term("ror.freshness"),),
        (Term("ror.freshness", measure="offers"),),
        small_cell=False,
        structure_breakdowns=("department",),
        description="Part des offres actives dont les disponibilités ont été mises à jour récemment "
        "(dernier relevé quotidien de la période).",
    ),
    Indicator(
        "ror.beds_available",
        "Lits disponibles (ROR)",
        "ror",
        "lits",
        "snapshot_sum",
        (Term("ror.beds_available"),),
        small_cell=False,
        structure_breakdowns=("department",),
        description="Lits disponibles déclarés au ROR (dernier relevé quotidien de la période).",
    ),
    # --- Annuaire -----------------------------------------------------------------------------------------
    Indicator(
        "annuaire.imports",
        "Imports de l'annuaire",
        "annuaire",
        "nombre",
        "count",
        (Term("annuaire.import"),),
        breakdowns=(("import_kind", "Type d'import"), ("status", "Résultat")),
        small_cell=False,
        structure_breakdowns=(),
    ),
    Indicator(
        "annuaire.mssante_coverage",
        "Professionnels disposant d'une adresse MSSanté",
        "annuaire",
        "%",
        "snapshot_ratio",
        (Term("annuaire.mssante_coverage"),),
        (Term("annuaire.mssante_coverage", measure="professionals"),),
        small_cell=False,
        structure_breakdowns=("department",),
        description="Part des professionnels actifs de l'annuaire ayant au moins une adresse MSSanté "
        "(dernier relevé quotidien de la période).",
    ),
)

_BY_CODE = {indicator.code: indicator for indicator in INDICATORS}
assert len(_BY_CODE) == len(INDICATORS), "duplicate indicator code"
assert all(i.aggregation in AGGREGATIONS and i.service in SERVICES for i in INDICATORS)
# A breakdown by a dimension needs every term on the plain rows or restricted on that same dimension.
assert all(
    t.measure == "" and t.dim in ("", dim)
    for i in INDICATORS
    for dim, _ in i.breakdowns
    for t in (*i.numerator, *i.denominator)
)


def get_indicator(code: str) -> Indicator:
    try:
        return _BY_CODE[code]
    except KeyError:
        raise ValidationError(f"Indicateur inconnu : « {code} ».") from None


def rolled_up_dimensions() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Per kind: the dimensions whose values the rollup keeps, and the numeric dimensions it sums."""
    values: dict[str, set[str]] = defaultdict(set)
    sums: dict[str, set[str]] = defaultdict(set)
    for indicator in INDICATORS:
        terms = (*indicator.numerator, *indicator.denominator)
        for term in terms:
            if term.dim:
                values[term.kind].add(term.dim)
            if term.measure:
                sums[term.kind].add(term.measure)
            for dim, _label in indicator.breakdowns:
                values[term.kind].add(dim)
    return dict(values), dict(sums)


def distinct_key(indicator: Indicator) -> str:
    """The key of the precomputed distinct actors of a distinct indicator: its event kind, or for one over
    several kinds "=" and its code (no event kind starts with "=")."""
    kinds = sorted({term.kind for term in indicator.numerator})
    return kinds[0] if len(kinds) == 1 else f"={indicator.code}"
