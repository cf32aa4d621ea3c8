"""Reads of the GCS members (adhérents): the staff's filtered list (and its CSV export), one member's page,
its history from the audit trail.

Each read costs a fixed number of queries whatever the number of members: relations are joined
(`select_related`) or prefetched once per page, and the department of a professional member is a
subquery, not a query per row.
"""

from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce, Lower
from django.utils import timezone

from annuaire.models import (
    Adherent,
    AdherentFee,
    AdherentRepresentative,
    AdherentService,
    Exercice,
    MailboxAddress,
    MailboxKind,
    Professional,
)
from enrs.audit.models import AuditEvent
from enrs.audit.selectors import audit_event_search

# `fee_status` filter value for "no fee recorded for the year".
FEE_MISSING = "missing"
ADHERENT_TARGET_TYPE = Adherent._meta.label_lower  # "annuaire.adherent", as audit_record writes it


def _fee_year(year: int | None) -> int:
    return year or timezone.localdate().year


def adherent_list(
    *,
    college: int | None = None,
    status: str | None = None,
    department: str | None = None,
    service: str | None = None,
    fee_status: str | None = None,
    year: int | None = None,
    q: str = "",
    with_contacts: bool = False,
) -> QuerySet[Adherent]:
    """Members matching every given filter, by name.

    - ``department``: code of the department of the member structure's commune, or of a structure where
      the professional member works;
    - ``fee_status``: status of the fee of ``year`` (the current year by default), or ``FEE_MISSING``
      for members without a fee recorded that year; each member carries that fee (or nothing) in
      ``fees_of_year``;
    - ``q``: a name (structure name, professional's names), or an identifier (FINESS, SIRET, SIREN,
      IdNat_PS, RPPS, ADELI) matched exactly;
    - ``with_contacts``: also prefetch representatives and the structures' organisational MSSanté
      addresses (``structure.org_mailboxes``), for the export.

    Every row is annotated with ``department_code`` (structure's, else the professional's first place
    of work) and ``sort_name``.
    """
    fee_year = _fee_year(year)
    professional_department = Subquery(
        Exercice.objects.filter(professional=OuterRef("professional"), structure__commune__isnull=False)
        .order_by("pk")
        .values("structure__commune__department__code")[:1]
    )
    adherents = (
        Adherent.objects.select_related("structure__commune__department", "professional")
        .annotate(
            department_code=Coalesce("structure__commune__department__code", professional_department),
            sort_name=Coalesce("structure__name", "professional__last_name"),
        )
        .prefetch_related(
            Prefetch("services", queryset=AdherentService.objects.order_by("service")),
            Prefetch("fees", queryset=AdherentFee.objects.filter(year=fee_year), to_attr="fees_of_year"),
        )
    )
    if with_contacts:
        adherents = adherents.prefetch_related(
            Prefetch(
                "representatives",
                queryset=AdherentRepresentative.objects.order_by("body", "role"),
            ),
            Prefetch(
                "structure__mailboxes",
                queryset=MailboxAddress.objects.filter(kind=MailboxKind.ORGANIZATIONAL).order_by("address"),
                to_attr="org_mailboxes",
            ),
        )
    if college:
        adherents = adherents.filter(college=college)
    if status:
        adherents = adherents.filter(status=status)
    if department:
        works_there = Exercice.objects.filter(
            professional=OuterRef("professional"), structure__commune__department__code=department
        )
        adherents = adherents.filter(
            Q(structure__commune__department__code=department) | Q(Exists(works_there))
        )
    if service:
        adherents = adherents.filter(
            Exists(AdherentService.objects.filter(adherent=OuterRef("pk"), service=service))
        )
    if fee_status:
        fees = AdherentFee.objects.filter(adherent=OuterRef("pk"), year=fee_year)
        if fee_status == FEE_MISSING:
            adherents = adherents.filter(~Exists(fees))
        else:
            adherents = adherents.filter(Exists(fees.filter(status=fee_status)))
    term = q.strip()
    if term:
        compact = "".join(term.split()).upper()
        if compact[:1].isdigit() and compact[2:].isdigit():  # FINESS (2A/2B too), SIRET, IdNat_PS…
            adherents = adherents.filter(
                Q(structure__finess_et=compact)
                | Q(structure__finess_ej=compact)
                | Q(structure__siret=compact)
                | Q(structure__siren=compact)
                | Q(professional__idnat_ps=compact)
                | Q(professional__rpps=compact)
                | Q(professional__adeli=compact)
            )
        else:
            adherents = adherents.filter(
                Q(structure__name__icontains=term)
                | Q(professional__last_name__icontains=term)
                | Q(professional__first_name__icontains=term)
            )
    return adherents.order_by(Lower("sort_name"), "pk")


def adherent_get(*, pk: int) -> Adherent:
    """One member with everything its page shows (raises ``Adherent.DoesNotExist``).

    Prefetched: services, fees (latest year first), representatives (by body, holder first), the
    structure's organisational MSSanté addresses (``structure.org_mailboxes``) or the professional's
    addresses (``professional.all_mailboxes``)."""
    return (
        Adherent.objects.select_related(
            "structure__commune__department", "structure__legal_entity", "professional"
        )
        .prefetch_related(
            Prefetch("services", queryset=AdherentService.objects.order_by("service")),
            Prefetch("fees", queryset=AdherentFee.objects.order_by("-year")),
            Prefetch(
                "representatives",
                queryset=AdherentRepresentative.objects.select_related("professional").order_by(
                    "body", "role"
                ),
            ),
            Prefetch(
                "structure__mailboxes",
                queryset=MailboxAddress.objects.filter(kind=MailboxKind.ORGANIZATIONAL).order_by("address"),
                to_attr="org_mailboxes",
            ),
            Prefetch(
                "professional__mailboxes",
                queryset=MailboxAddress.objects.order_by("address"),
                to_attr="all_mailboxes",
            ),
        )
        .get(pk=pk)
    )


def adherent_history(*, adherent: Adherent, limit: int = 50) -> list[AuditEvent]:
    """The last `limit` events of the audit trail about this member (onboarding, edits, transitions,
    fees, representatives, services), most recent first, with their actor."""
    events = audit_event_search(target_type=ADHERENT_TARGET_TYPE, target_id=str(adherent.pk))
    return list(events[:limit])


def member_professional_find(*, identifier: str) -> Professional | None:
    """The directory professional with this IdNat_PS, RPPS or ADELI number (spaces ignored), or None."""
    value = "".join(identifier.split())
    if not value.isdigit():
        return None
    return (
        Professional.objects.filter(Q(idnat_ps=value) | Q(rpps=value) | Q(adeli=value)).order_by("pk").first()
    )
