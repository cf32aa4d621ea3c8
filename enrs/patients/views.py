"""Patient identity pages: search, creation, detail, identity correction, identity status, the patient's
choices (opposition to DMP feeding, professional access authorisation) and the history of the status.

Nominative health data: every page applies `CLINICAL_ACCESS` (clinicians and administrators, strong
authentication, never ARS analysts). A patient is read through `selectors.patient_get_audited`, so each
page that shows a patient leaves a `patient.read` event saying who looked and why; searches leave a
`patient.search` event. Writes go through `enrs.patients.services` (atomic, audited); their French
errors come back next to the fields.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from enrs.accounts.roles import CLINICAL_ACCESS, access_required
from enrs.audit.services import audit_record
from enrs.core.forms import add_service_errors
from enrs.core.pagination import page_number, page_of

from . import selectors, services
from .forms import (
    INSI_NOT_CONNECTED,
    ConsentForm,
    IdentityForm,
    PatientCreateForm,
    PatientSearchForm,
    StatusForm,
)
from .models import Consent, ConsentKind, IdentityStatus, IdentityStatusChange, Patient

PAGE_SIZE = 25
HISTORY_PREVIEW = 5

# Purposes written into the `patient.read` audit events.
PURPOSE_DETAIL = "patients.detail"
PURPOSE_EDIT = "patients.edit"
PURPOSE_STATUS = "patients.status"
PURPOSE_CONSENT = "patients.consent"
PURPOSE_HISTORY = "patients.history"


@dataclass(frozen=True)
class InsUsability:
    """What the banner of a patient's pages says about the use of the INS."""

    usable: bool
    title: str
    reasons: tuple[str, ...]
    steps: tuple[str, ...]


_STEP_INSI = (
    "Récupérez l'INS par le téléservice INSi depuis votre logiciel (il n'est pas raccordé au portail), "
    "puis saisissez le matricule et sa nature dans « Corriger l'identité »."
)
_STEP_EVIDENCE = (
    "Vérifiez l'identité sur une pièce à haut niveau de confiance (carte nationale d'identité, passeport, "
    "titre de séjour ; livret de famille ou acte de naissance pour un mineur)."
)
_STEP_QUALIFY = "Passez ensuite l'identité au statut « Identité qualifiée » (« Changer le statut »)."


def ins_usability(patient: Patient) -> InsUsability:
    """Whether the INS of `patient` may be used, and if not why and what to do (RNIV rules)."""
    if patient.may_carry_ins:
        return InsUsability(
            usable=True,
            title="Identité qualifiée : l'INS peut être utilisé",
            reasons=(
                "Le matricule INS et les traits d'identité peuvent être transmis dans les documents, "
                "au DMP et dans la messagerie sécurisée de santé.",
            ),
            steps=(),
        )
    status = patient.identity_status
    reasons: list[str] = [
        f"L'identité est au statut « {patient.get_identity_status_display()} » : seule une identité "
        "qualifiée peut porter l'INS dans un document, un envoi au DMP ou un message."
    ]
    steps: list[str] = []
    if not patient.ins:
        reasons.append("Aucun matricule INS n'est enregistré pour ce patient.")
    # After a correction the identity is provisional again: INSi and the document must be checked anew.
    has_insi = bool(patient.ins) and (
        status == IdentityStatus.RETRIEVED
        or (status == IdentityStatus.VALIDATED and patient.insi_checked_at is not None)
    )
    has_evidence = status == IdentityStatus.VALIDATED
    if not has_insi:
        steps.append(_STEP_INSI)
    if not has_evidence:
        steps.append(_STEP_EVIDENCE)
    missing = patient.traits().missing()
    if missing:
        reasons.append("Traits INS manquants : " + ", ".join(missing) + ".")
        steps.append("Complétez les traits manquants (« Corriger l'identité »).")
    steps.append(_STEP_QUALIFY)
    reasons.append(
        "En attendant, aucun document ne peut être envoyé au DMP pour ce patient ; les échanges se font "
        "sans INS, avec les traits d'identité."
    )
    return InsUsability(
        usable=False,
        title="L'INS de ce patient ne peut pas être utilisé",
        reasons=tuple(reasons),
        steps=tuple(steps),
    )


def _patient(request: HttpRequest, pk: int, purpose: str) -> Patient:
    try:
        return selectors.patient_get_audited(pk=pk, request=request, purpose=purpose)
    except Patient.DoesNotExist:
        raise Http404("Ce patient n'existe pas.") from None


def _submit(
    request: HttpRequest,
    form: Any,
    service: Callable[[], Any],
    success: str,
    *,
    field_map: dict[str, str] | None = None,
) -> HttpResponseBase | None:
    """For a valid POST, run the service; on success flash `success` and go to the patient's page.
    A service's `ValidationError` goes onto the form. None means: render the form (again)."""
    if request.method != "POST" or not form.is_valid():
        return None
    try:
        patient = service()
    except ValidationError as error:
        add_service_errors(form, error, field_map)
        return None
    messages.success(request, success)
    return redirect("patients:detail", pk=patient.pk)


def _page(
    request: HttpRequest, template: str, title: str, *, patient: Patient | None = None, **extra: Any
) -> HttpResponse:
    context: dict[str, Any] = {"title": title, "patient": patient, **extra}
    if patient is not None:
        context.setdefault("usability", ins_usability(patient))
    invalid = any(isinstance(v, forms.BaseForm) and v.is_bound and v.errors for v in extra.values())
    status = 400 if invalid else 200
    return render(request, f"patients/{template}", context, status=status)


# --- Search --------------------------------------------------------------------------------------------


@access_required(CLINICAL_ACCESS)
@require_GET
@never_cache
def patient_search(request: HttpRequest) -> HttpResponse:
    form = PatientSearchForm(request.GET if request.GET.keys() - {"page"} else None)
    context: dict[str, Any] = {"form": form, "patients": None}
    if form.is_bound and form.is_valid():
        query = form.cleaned_data["q"]
        rows, pagination = page_of(
            selectors.patient_search(query=query, birth_date=form.cleaned_data["birth_date"]),
            page=page_number(request),
            size=PAGE_SIZE,
        )
        # A search shows names and birth dates: who searched, how, and how many patients were shown.
        audit_record(
            action="patient.search",
            request=request,
            detail={
                "by": "ins" if query[:1].isdigit() else ("name" if query else "birth_date"),
                "with_birth_date": bool(form.cleaned_data["birth_date"]),
                "shown": len(rows),
                "page": pagination["page"],
            },
        )
        context.update(patients=rows, **pagination)
    return _page(request, "search.html", "Patients", **context)


# --- Create and correct --------------------------------------------------------------------------------


@access_required(CLINICAL_ACCESS)
@require_http_methods(["GET", "POST"])
@never_cache
def patient_create(request: HttpRequest) -> HttpResponseBase:
    form = PatientCreateForm(request.POST if request.method == "POST" else None)
    done = _submit(
        request,
        form,
        lambda: services.patient_create(
            data=form.identity(),
            actor=request.user,
            request=request,
            status=form.cleaned_data["identity_status"],
            evidence=form.cleaned_data.get("evidence") or "",
            insi_checked=form.cleaned_data.get("insi_checked", False),
        ),
        "Patient enregistré.",
    )
    return done or _page(request, "create.html", "Nouveau patient", form=form, insi_note=INSI_NOT_CONNECTED)


@access_required(CLINICAL_ACCESS)
@require_http_methods(["GET", "POST"])
@never_cache
def patient_edit(request: HttpRequest, pk: int) -> HttpResponseBase:
    patient = _patient(request, pk, PURPOSE_EDIT)
    form = IdentityForm(request.POST if request.method == "POST" else None, patient=patient)
    done = _submit(
        request,
        form,
        lambda: services.patient_update_identity(
            patient=patient, data=form.identity(), actor=request.user, request=request
        ),
        "Identité enregistrée. Si un trait ou le matricule a changé, l'identité est redevenue provisoire : "
        "vérifiez-la de nouveau.",
    )
    return done or _page(request, "edit.html", "Corriger l'identité", patient=patient, form=form)


@access_required(CLINICAL_ACCESS)
@require_http_methods(["GET", "POST"])
@never_cache
def patient_status(request: HttpRequest, pk: int) -> HttpResponseBase:
    patient = _patient(request, pk, PURPOSE_STATUS)
    form = StatusForm(request.POST if request.method == "POST" else None, patient=patient)
    done = _submit(
        request,
        form,
        lambda: services.patient_set_status(
            patient=patient,
            status=form.cleaned_data["identity_status"],
            evidence=form.cleaned_data.get("evidence") or "",
            insi_checked=form.cleaned_data.get("insi_checked", False),
            reason=form.cleaned_data.get("reason") or "",
            actor=request.user,
            request=request,
        ),
        "Statut de l'identité enregistré.",
    )
    return done or _page(
        request,
        "status.html",
        "Statut de l'identité",
        patient=patient,
        form=form,
        insi_note=INSI_NOT_CONNECTED,
    )


# --- Detail and history --------------------------------------------------------------------------------


def _status_changes(patient: Patient) -> Any:
    return IdentityStatusChange.objects.filter(patient=patient).select_related("actor").order_by("-at", "-pk")


@access_required(CLINICAL_ACCESS)
@require_GET
@never_cache
def patient_detail(request: HttpRequest, pk: int) -> HttpResponse:
    patient = _patient(request, pk, PURPOSE_DETAIL)
    changes = list(_status_changes(patient)[: HISTORY_PREVIEW + 1])
    consents = list(selectors.consents_of(patient))
    active = [c for c in consents if c.is_active]
    return _page(
        request,
        "detail.html",
        patient.display_name,
        patient=patient,
        changes=changes[:HISTORY_PREVIEW],
        more_changes=len(changes) > HISTORY_PREVIEW,
        active_consents=active,
        past_consents=[c for c in consents if not c.is_active],
        opposed=any(c.kind == ConsentKind.DMP_FEEDING_OPPOSITION for c in active),
    )


@access_required(CLINICAL_ACCESS)
@require_GET
@never_cache
def patient_history(request: HttpRequest, pk: int) -> HttpResponse:
    patient = _patient(request, pk, PURPOSE_HISTORY)
    rows, pagination = page_of(_status_changes(patient), page=page_number(request), size=PAGE_SIZE)
    return _page(request, "history.html", "Historique du statut", patient=patient, changes=rows, **pagination)


# --- Patient choices -----------------------------------------------------------------------------------


@access_required(CLINICAL_ACCESS)
@require_http_methods(["GET", "POST"])
@never_cache
def consent_record(request: HttpRequest, pk: int) -> HttpResponseBase:
    patient = _patient(request, pk, PURPOSE_CONSENT)
    initial = {"kind": request.GET.get("nature")} if request.GET.get("nature") in ConsentKind.values else {}
    form = ConsentForm(request.POST if request.method == "POST" else None, user=request.user, initial=initial)

    def record() -> Patient:
        services.consent_record(
            patient=patient,
            kind=form.cleaned_data["kind"],
            professional=form.cleaned_data.get("professional"),
            note=form.cleaned_data.get("note") or "",
            actor=request.user,
            request=request,
        )
        return patient

    done = _submit(request, form, record, "Choix du patient enregistré.")
    return done or _page(request, "consent.html", "Choix du patient", patient=patient, form=form)


@access_required(CLINICAL_ACCESS)
@require_POST
def consent_withdraw(request: HttpRequest, pk: int, consent_pk: int) -> HttpResponseBase:
    consent = get_object_or_404(Consent, pk=consent_pk, patient_id=pk)
    try:
        services.consent_withdraw(consent=consent, actor=request.user, request=request)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"Retrait enregistré : {consent.get_kind_display().lower()}.")
    return redirect("patients:detail", pk=pk)
