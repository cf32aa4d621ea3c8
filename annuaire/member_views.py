"""The GCS staff's pages for members (adhérents): list with filters and CSV export, detail, onboarding,
edits, transitions (with a confirmation step), fees, representatives and services used.

GCS staff and administrators only (`ADMINISTRATION_ACCESS`): clinicians and ARS analysts get a 403 on
every page, download and export. Views parse the request, call a service or a selector, and render;
rules and audit live in `annuaire.services.members`. Writes are POST with the CSRF token; every GET is
read-only.
"""

import contextlib
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import formats, timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from annuaire.member_forms import (
    AdherentEditForm,
    AdherentOnboardForm,
    ConfirmForm,
    FeeForm,
    FeePaidForm,
    MemberFilterForm,
    RepresentativeForm,
    ServicesForm,
    TransitionForm,
)
from annuaire.models import (
    Adherent,
    AdherentFee,
    AdherentRepresentative,
    AdherentStatus,
    College,
    EnrsService,
    FeeStatus,
    GoverningBody,
    RepresentativeRole,
)
from annuaire.selectors.members import adherent_get, adherent_history, adherent_list
from annuaire.services.members import (
    ADHERENT_AUDITED_FIELDS,
    TRANSITIONS,
    adherent_admit,
    adherent_exclude,
    adherent_fee_mark_paid,
    adherent_fee_record,
    adherent_onboard,
    adherent_representative_remove,
    adherent_representative_set,
    adherent_resign,
    adherent_services_set,
    adherent_transitions,
    adherent_update,
)
from enrs.accounts.roles import ADMINISTRATION_ACCESS, access_required
from enrs.audit.models import AuditEvent
from enrs.audit.services import audit_record
from enrs.core.csv_export import csv_response
from enrs.core.forms import add_service_errors

PAGE_SIZE = 25
EXPORT_CHUNK_SIZE = 500

TRANSITION_SERVICES: dict[str, Callable[..., Adherent]] = {
    "admit": adherent_admit,
    "resign": adherent_resign,
    "exclude": adherent_exclude,
}
TRANSITION_DONE = {
    "admit": "Candidat admis : il est désormais membre du GCS.",
    "resign": "Démission enregistrée.",
    "exclude": "Exclusion enregistrée.",
}
HISTORY_LABELS = {
    "annuaire.adherent.onboard": "Inscription comme candidat",
    "annuaire.adherent.update": "Modification",
    "annuaire.adherent.admit": "Admission",
    "annuaire.adherent.resign": "Démission",
    "annuaire.adherent.exclude": "Exclusion",
    "annuaire.adherent.fee": "Cotisation",
    "annuaire.adherent.representative": "Représentant",
    "annuaire.adherent.services": "Services utilisés",
}


def _name(adherent: Adherent) -> str:
    if adherent.structure is not None:
        return adherent.structure.name
    if adherent.professional is not None:
        return f"{adherent.professional.first_name} {adherent.professional.last_name}".strip()
    return f"Adhérent n° {adherent.pk}"


def _adherent_or_404(pk: int) -> Adherent:
    try:
        return adherent_get(pk=pk)
    except Adherent.DoesNotExist:
        raise Http404("Cet adhérent n'existe pas.") from None


def _posted(request: HttpRequest) -> Any:
    """The form data of a POST (even an empty one: no checkbox ticked), None for a GET."""
    return request.POST if request.method == "POST" else None


def _submitted(request: HttpRequest) -> tuple[Any, Any]:
    return (request.POST, request.FILES) if request.method == "POST" else (None, None)


def _to_detail(adherent: Adherent) -> HttpResponseBase:
    return redirect("annuaire:member_detail", pk=adherent.pk)


def _submit(
    request: HttpRequest,
    form: Any,
    service: Callable[[], Any],
    success: str | Callable[[Any], str],
    *,
    adherent: Adherent | None = None,
    field_map: Any = None,
) -> HttpResponseBase | None:
    """For a valid POST, run the service: on success flash `success` and go to the member's page (the
    service's result when no `adherent` is given); a `ValidationError` goes onto the form next to the
    fields it names. None means: render the form (again)."""
    if request.method != "POST" or not form.is_valid():
        return None
    try:
        result = service()
    except ValidationError as error:
        add_service_errors(form, error, field_map)
        return None
    messages.success(request, success(result) if callable(success) else success)
    return _to_detail(adherent if adherent is not None else result)


def _member_page(
    request: HttpRequest, template: str, adherent: Adherent, title: str, **extra: Any
) -> HttpResponse:
    name = _name(adherent)
    context = {"title": f"{title} — {name}", "adherent": adherent, "name": name, **extra}
    return render(request, f"annuaire/members/{template}", context)


def _day(value: date | None) -> str:
    return f"{value:%d/%m/%Y}" if value else ""


# --- List and export -----------------------------------------------------------------------------------


@access_required(ADMINISTRATION_ACCESS)
@require_GET
@never_cache
def member_list(request: HttpRequest) -> HttpResponse:
    form = MemberFilterForm(request.GET or None)
    context: dict[str, Any] = {"title": "Adhérents du GCS", "form": form, "page_obj": None}
    if form.is_bound and not form.is_valid():
        return render(request, "annuaire/members/list.html", context, status=400)
    filters = form.filters()
    page_obj = Paginator(adherent_list(**filters), PAGE_SIZE).get_page(request.GET.get("page"))
    context.update(
        page_obj=page_obj,
        adherents=list(page_obj),
        fee_year=form.fee_year,
        filtered=bool(filters),
    )
    return render(request, "annuaire/members/list.html", context)


def csv_header(fee_year: int) -> list[str]:
    return [
        "N° adhérent",
        "Adhérent",
        "Type",
        "FINESS géographique",
        "FINESS juridique",
        "SIRET",
        "IdNat_PS",
        "Collège",
        "Libellé du collège",
        "Statut",
        "Début d'adhésion",
        "Fin d'adhésion",
        "Convention signée le",
        "Département",
        "Commune",
        "Adresses MSSanté organisationnelles",
        "Services utilisés",
        f"Cotisation {fee_year} (€)",
        f"Statut de la cotisation {fee_year}",
        "AG — titulaire",
        "AG — suppléant",
        "Comité restreint — titulaire",
        "Comité restreint — suppléant",
    ]


def _representative_cell(representative: AdherentRepresentative | None) -> str:
    if representative is None:
        return ""
    text = f"{representative.first_name} {representative.last_name}"
    return f"{text} <{representative.email}>" if representative.email else text


def csv_row(adherent: Adherent) -> list[Any]:
    """One line of the export (rows of `adherent_list(..., with_contacts=True)`)."""
    structure, professional = adherent.structure, adherent.professional
    fees: list[AdherentFee] = getattr(adherent, "fees_of_year", [])
    fee = fees[0] if fees else None
    seats = {(r.body, r.role): r for r in adherent.representatives.all()}
    mailboxes = getattr(structure, "org_mailboxes", []) if structure is not None else []
    commune = structure.commune if structure is not None else None
    return [
        adherent.pk,
        _name(adherent),
        "Structure" if structure is not None else "Professionnel",
        (structure.finess_et or "") if structure else "",
        structure.finess_ej if structure else "",
        structure.siret if structure else "",
        professional.idnat_ps if professional else "",
        adherent.college,
        College(adherent.college).label,
        adherent.get_status_display(),
        _day(adherent.membership_start),
        _day(adherent.membership_end),
        _day(adherent.convention_signed_on),
        getattr(adherent, "department_code", "") or "",
        commune.name if commune else "",
        ", ".join(m.address for m in mailboxes),
        ", ".join(s.get_service_display() for s in adherent.services.all()),
        formats.number_format(fee.amount, decimal_pos=2) if fee else "",
        fee.get_status_display() if fee else "Non appelée",
        *(
            _representative_cell(seats.get((body, role)))
            for body in GoverningBody.values
            for role in RepresentativeRole.values
        ),
    ]


@access_required(ADMINISTRATION_ACCESS)
@require_GET
@never_cache
def member_export(request: HttpRequest) -> HttpResponseBase:
    form = MemberFilterForm(request.GET or None)
    if form.is_bound and not form.is_valid():
        context = {"title": "Adhérents du GCS", "form": form, "page_obj": None}
        return render(request, "annuaire/members/list.html", context, status=400)
    filters = form.filters()
    # The export lists people (representatives): who took it, and with which filters, is on record.
    audit_record(
        action="annuaire.adherent.export",
        request=request,
        detail={"filters": {key: str(value) for key, value in filters.items()}},
    )
    adherents = adherent_list(**filters, with_contacts=True).iterator(chunk_size=EXPORT_CHUNK_SIZE)
    rows: Iterator[list[Any]] = (csv_row(a) for a in adherents)
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    return csv_response(f"adherents-gcs-{stamp}.csv", csv_header(form.fee_year), rows)


# --- Detail ------------------------------------------------------------------------------------------------


def _value_text(name: str, value: Any) -> str:
    """An audited value as the member's page shows it."""
    if value in (None, "", []):
        return "—"
    try:
        if name == "status":
            return str(AdherentStatus(value).label)
        if name == "fee_status":
            return str(FeeStatus(value).label)
        if name == "college":
            return f"{value} — {College(value).label}"
        if name == "services":
            return ", ".join(str(EnrsService(v).label) for v in value)
    except (TypeError, ValueError):
        return str(value)
    if name == "convention_document":
        return "document PDF"
    if isinstance(value, str) and len(value) == 10 and value[4:5] == "-" and value[7:8] == "-":
        try:
            return f"{date.fromisoformat(value):%d/%m/%Y}"
        except ValueError:
            return value
    return str(value)


_FIELD_LABELS: dict[str, str] = {
    name: str(getattr(Adherent._meta.get_field(name), "verbose_name", name))
    for name in ADHERENT_AUDITED_FIELDS
}
_FIELD_LABELS.update(services="services", amount="montant (€)", year="année", paid_on="payée le")
_FIELD_LABELS.update(
    last_name="nom",
    first_name="prénom",
    email="courriel",
    function="fonction",
    professional_id="professionnel",
)


def history_entry(event: AuditEvent) -> dict[str, Any]:
    """What the member's page says about one audit event: when, who, what, and the fields changed."""
    detail = event.detail if isinstance(event.detail, dict) else {}
    changes = detail.get("changes") if isinstance(detail.get("changes"), dict) else {}
    lines = []
    for name, change in (changes or {}).items():
        if not isinstance(change, dict):
            continue
        shown = name if event.action != "annuaire.adherent.fee" or name != "status" else "fee_status"
        before = _value_text(shown, change.get("before"))
        after = _value_text(shown, change.get("after"))
        lines.append(f"{_FIELD_LABELS.get(name, name)} : {before} → {after}")
    label = HISTORY_LABELS.get(event.action, event.action)
    if event.action == "annuaire.adherent.fee" and detail.get("year"):
        label = f"{label} {detail['year']}"
    if event.action == "annuaire.adherent.representative":
        with contextlib.suppress(ValueError):
            label = (
                f"{label} — {GoverningBody(str(detail.get('body'))).label}, "
                f"{RepresentativeRole(str(detail.get('role'))).label.lower()}"
            )
        if detail.get("operation") == "remove":
            label += " (retrait)"
    return {"event": event, "label": label, "lines": lines}


@access_required(ADMINISTRATION_ACCESS)
@require_GET
@never_cache
def member_detail(request: HttpRequest, pk: int) -> HttpResponse:
    adherent = _adherent_or_404(pk)
    by_seat = {(r.body, r.role): r for r in adherent.representatives.all()}
    seats = [
        {
            "body": body,
            "roles": [
                {"role": role, "representative": by_seat.get((body.value, role.value))}
                for role in RepresentativeRole
            ],
        }
        for body in GoverningBody
    ]
    context = {
        "title": _name(adherent),
        "adherent": adherent,
        "name": _name(adherent),
        "transitions": [
            {"transition": t, "url": reverse(f"annuaire:member_{t.name}", args=[adherent.pk])}
            for t in adherent_transitions(adherent)
        ],
        "seats": seats,
        "history": [history_entry(e) for e in adherent_history(adherent=adherent)],
        "ended": adherent.status in (AdherentStatus.RESIGNED, AdherentStatus.EXCLUDED),
        "statuses": AdherentStatus,
        "fee_statuses": FeeStatus,
    }
    return render(request, "annuaire/members/detail.html", context)


@access_required(ADMINISTRATION_ACCESS)
@require_GET
@never_cache
def member_convention(request: HttpRequest, pk: int) -> FileResponse:
    adherent = get_object_or_404(Adherent, pk=pk)
    if not adherent.convention_document:
        raise Http404("Aucune convention n'est enregistrée pour cet adhérent.")
    try:
        handle = adherent.convention_document.open("rb")
    except FileNotFoundError:
        raise Http404("Le fichier de la convention est introuvable.") from None
    return FileResponse(
        handle,
        as_attachment=True,
        filename=f"convention-adherent-{adherent.pk}.pdf",
        content_type="application/pdf",
    )


# --- Onboarding and edits -------------------------------------------------------------------------------


@access_required(ADMINISTRATION_ACCESS)
@require_http_methods(["GET", "POST"])
@never_cache
def member_create(request: HttpRequest) -> HttpResponseBase:
    form = AdherentOnboardForm(*_submitted(request))
    done = _submit(
        request,
        form,
        lambda: adherent_onboard(actor=request.user, request=request, **form.service_kwargs()),
        lambda adherent: f"« {_name(adherent)} » est inscrit comme candidat.",
    )
    return done or render(request, "annuaire/members/create.html", {"title": "Nouvel adhérent", "form": form})


@access_required(ADMINISTRATION_ACCESS)
@require_http_methods(["GET", "POST"])
@never_cache
def member_edit(request: HttpRequest, pk: int) -> HttpResponseBase:
    adherent = _adherent_or_404(pk)
    form = AdherentEditForm(*_submitted(request), adherent=adherent)
    done = _submit(
        request,
        form,
        lambda: adherent_update(
            adherent=adherent,
            actor=request.user,
            request=request,
            data=form.update_data(),
            convention_document=form.cleaned_data["convention_document"] or None,
        ),
        "Modifications enregistrées.",
        adherent=adherent,
    )
    return done or _member_page(request, "edit.html", adherent, "Modifier", form=form)


# --- Transitions ------------------------------------------------------------------------------------------


@access_required(ADMINISTRATION_ACCESS)
@require_http_methods(["GET", "POST"])
@never_cache
def member_transition(request: HttpRequest, pk: int, transition: str) -> HttpResponseBase:
    adherent = _adherent_or_404(pk)
    form = TransitionForm(_posted(request), transition=transition)
    done = _submit(
        request,
        form,
        lambda: TRANSITION_SERVICES[transition](
            adherent=adherent, actor=request.user, request=request, **form.service_kwargs()
        ),
        TRANSITION_DONE[transition],
        adherent=adherent,
        field_map=TransitionForm.SERVICE_FIELDS,
    )
    step = TRANSITIONS[transition]
    allowed = adherent.status in step.sources
    return done or _member_page(
        request, "transition.html", adherent, step.label, form=form, transition=step, allowed=allowed
    )


# --- Fees -------------------------------------------------------------------------------------------------


@access_required(ADMINISTRATION_ACCESS)
@require_http_methods(["GET", "POST"])
@never_cache
def member_fee_record(request: HttpRequest, pk: int) -> HttpResponseBase:
    adherent = _adherent_or_404(pk)
    form = FeeForm(_posted(request))
    done = _submit(
        request,
        form,
        lambda: adherent_fee_record(
            adherent=adherent, actor=request.user, request=request, **form.cleaned_data
        ),
        lambda fee: f"Cotisation {fee.year} enregistrée.",
        adherent=adherent,
    )
    return done or _member_page(request, "fee_form.html", adherent, "Cotisation", form=form)


@access_required(ADMINISTRATION_ACCESS)
@require_http_methods(["GET", "POST"])
@never_cache
def member_fee_paid(request: HttpRequest, pk: int, fee_pk: int) -> HttpResponseBase:
    adherent = _adherent_or_404(pk)
    fee = get_object_or_404(AdherentFee, pk=fee_pk, adherent=adherent)
    form = FeePaidForm(_posted(request))
    done = _submit(
        request,
        form,
        lambda: adherent_fee_mark_paid(
            fee=fee, actor=request.user, request=request, paid_on=form.cleaned_data["paid_on"]
        ),
        f"Paiement de la cotisation {fee.year} enregistré.",
        adherent=adherent,
    )
    title = f"Paiement de la cotisation {fee.year}"
    return done or _member_page(request, "fee_paid.html", adherent, title, fee=fee, form=form)


# --- Representatives and services ---------------------------------------------------------------------


@access_required(ADMINISTRATION_ACCESS)
@require_http_methods(["GET", "POST"])
@never_cache
def member_representative_set(request: HttpRequest, pk: int) -> HttpResponseBase:
    adherent = _adherent_or_404(pk)
    initial: dict[str, Any] = {}
    body, role = request.GET.get("instance", ""), request.GET.get("role", "")
    if body in GoverningBody.values and role in RepresentativeRole.values:
        initial = {"body": body, "role": role}
        current = next((r for r in adherent.representatives.all() if (r.body, r.role) == (body, role)), None)
        if current is not None:
            initial.update(
                last_name=current.last_name,
                first_name=current.first_name,
                email=current.email,
                function=current.function,
                professional=current.professional.idnat_ps if current.professional else "",
            )
    form = RepresentativeForm(_posted(request), initial=initial)
    done = _submit(
        request,
        form,
        lambda: adherent_representative_set(
            adherent=adherent, actor=request.user, request=request, **form.cleaned_data
        ),
        "Représentant enregistré.",
        adherent=adherent,
    )
    return done or _member_page(request, "representative_form.html", adherent, "Représentant", form=form)


@access_required(ADMINISTRATION_ACCESS)
@require_http_methods(["GET", "POST"])
@never_cache
def member_representative_remove(request: HttpRequest, pk: int, representative_pk: int) -> HttpResponseBase:
    adherent = _adherent_or_404(pk)
    representative = get_object_or_404(AdherentRepresentative, pk=representative_pk, adherent=adherent)
    form = ConfirmForm(_posted(request))
    done = _submit(
        request,
        form,
        lambda: adherent_representative_remove(
            representative=representative, actor=request.user, request=request
        ),
        "Représentant retiré.",
        adherent=adherent,
    )
    return done or _member_page(
        request,
        "representative_remove.html",
        adherent,
        "Retirer un représentant",
        representative=representative,
        form=form,
    )


@access_required(ADMINISTRATION_ACCESS)
@require_http_methods(["GET", "POST"])
@never_cache
def member_services(request: HttpRequest, pk: int) -> HttpResponseBase:
    adherent = _adherent_or_404(pk)
    initial = {"services": [s.service for s in adherent.services.all()]}
    form = ServicesForm(_posted(request), initial=initial)
    done = _submit(
        request,
        form,
        lambda: adherent_services_set(
            adherent=adherent, actor=request.user, request=request, services=form.cleaned_data["services"]
        ),
        "Services utilisés enregistrés.",
        adherent=adherent,
    )
    return done or _member_page(request, "services_form.html", adherent, "Services", form=form)


# Included by annuaire/urls.py under "adherents/" (names in the "annuaire" namespace).
urlpatterns = [
    path("", member_list, name="member_list"),
    path("export.csv", member_export, name="member_export"),
    path("nouveau/", member_create, name="member_create"),
    path("<int:pk>/", member_detail, name="member_detail"),
    path("<int:pk>/modifier/", member_edit, name="member_edit"),
    path("<int:pk>/convention.pdf", member_convention, name="member_convention"),
    path("<int:pk>/admission/", member_transition, {"transition": "admit"}, name="member_admit"),
    path("<int:pk>/demission/", member_transition, {"transition": "resign"}, name="member_resign"),
    path("<int:pk>/exclusion/", member_transition, {"transition": "exclude"}, name="member_exclude"),
    path("<int:pk>/cotisations/", member_fee_record, name="member_fee_record"),
    path("<int:pk>/cotisations/<int:fee_pk>/paiement/", member_fee_paid, name="member_fee_paid"),
    path("<int:pk>/representants/", member_representative_set, name="member_representative_set"),
    path(
        "<int:pk>/representants/<int:representative_pk>/retrait/",
        member_representative_remove,
        name="member_representative_remove",
    ),
    path("<int:pk>/services/", member_services, name="member_services"),
]
