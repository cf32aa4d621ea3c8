"""The DMP portal: the documents fed for a patient and their status, the "feed the DMP" form, a
document's page (visibility, versions, history, calls to the DMP), visibility changes (ITI-57), new
versions, and the failed submissions of the user's structures with their "Relancer" button.

Nominative health data: every page applies `CLINICAL_ACCESS` (strong authentication, never ARS analysts).
Patients are read through `enrs.patients.selectors.patient_get_audited`, documents through
`dmp.selectors.document_get_audited`; list pages write one audit event each. Writes go through
`dmp.services`, whose French refusals are shown next to the form.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annuaire.selectors.structures import structures_of_user
from enrs.accounts.roles import CLINICAL_ACCESS, access_required
from enrs.audit.services import audit_record
from enrs.core.forms import add_service_errors
from enrs.core.navigation import service
from enrs.core.pagination import page_number, page_of
from enrs.outbox.models import OutboxStatus
from enrs.patients import selectors as patient_selectors
from enrs.patients.models import Patient
from enrs.standards import valuesets

from . import selectors, services
from .forms import FeedForm, ReplaceForm, VisibilityForm
from .models import Document, Submission, SubmissionKind

PAGE_SIZE = 25
# A service's refusal about the patient (identity, opposition, authorisation) goes at the top of the form.
FIELD_MAP = {"patient": "__all__", "source": "__all__"}


def _patient(request: HttpRequest, pk: int, purpose: str) -> Patient:
    try:
        return patient_selectors.patient_get_audited(pk=pk, request=request, purpose=purpose)
    except Patient.DoesNotExist:
        raise Http404("Ce patient n'existe pas.") from None


def _document(request: HttpRequest, pk: int, purpose: str) -> Document:
    try:
        return selectors.document_get_audited(pk=pk, request=request, purpose=purpose)
    except Document.DoesNotExist:
        raise Http404("Ce document n'existe pas ou ne vous est pas visible.") from None


WRITE_DENIED = (
    "Seuls l'auteur du document et les professionnels de sa structure peuvent agir sur ce document."
)


def _writable(request: HttpRequest, pk: int, purpose: str) -> Document:
    document = _document(request, pk, purpose)
    if not selectors.document_may_write(document=document, user=request.user):
        raise PermissionDenied(WRITE_DENIED)
    return document


def _render(request: HttpRequest, template: str, title: str, **context: Any) -> HttpResponse:
    invalid = any(isinstance(v, forms.BaseForm) and v.is_bound and v.errors for v in context.values())
    context = {"title": title, "service": service("dmp"), **context}
    return render(request, f"dmp/{template}", context, status=400 if invalid else 200)


def _run(
    request: HttpRequest, form: forms.Form, action: Callable[[], Document], success: str
) -> HttpResponseBase | None:
    """For a valid POST: run the service(s); on success flash `success` and show the document; a
    refusal goes onto the form (None: render the form again)."""
    if request.method != "POST" or not form.is_valid():
        return None
    try:
        document = action()
    except ValidationError as error:
        add_service_errors(form, error, FIELD_MAP)
        return None
    messages.success(request, success)
    return redirect("dmp:document_detail", pk=document.pk)


def _submit_or_keep_draft(request: HttpRequest, document: Document) -> Document:
    """Queue a fresh draft for sending; if the DMP rules refuse it now, the draft stays and says why."""
    try:
        services.document_submit(document=document, actor=request.user, request=request)
    except ValidationError as error:
        messages.warning(
            request,
            "Le document est enregistré en brouillon mais n'a pas été envoyé : " + " ".join(error.messages),
        )
    return document


def patient_rights(patient: Patient, user: Any) -> dict[str, Any]:
    """What stops the user from feeding this patient's DMP, in French (empty list: nothing)."""
    blockers = []
    if not patient.may_carry_ins:
        blockers.append(
            f"L'identité du patient n'est pas qualifiée (« {patient.get_identity_status_display()} ») : "
            "seule une identité qualifiée peut porter l'INS dans un document envoyé au DMP."
        )
    opposed = patient_selectors.dmp_feeding_opposed(patient)
    if opposed:
        blockers.append("Le patient s'est opposé à l'alimentation de son DMP.")
    authorised = patient_selectors.dmp_access_authorised(patient, user)
    if not authorised:
        blockers.append(
            "Vous n'avez pas d'autorisation d'accès au DMP de ce patient : recueillez-la auprès du patient "
            "et enregistrez-la sur sa page."
        )
    return {"blockers": blockers, "opposed": opposed, "authorised": authorised}


# --- Home -------------------------------------------------------------------------------------------------


@access_required(CLINICAL_ACCESS)
@require_GET
@never_cache
def index(request: HttpRequest) -> HttpResponse:
    documents = selectors.document_list_recent_for_user(user=request.user)
    audit_record(
        action="dmp.document.list", request=request, detail={"list": "recent", "shown": len(documents)}
    )
    return _render(request, "index.html", "DMP", documents=documents)


# --- A patient's documents and the feed form -------------------------------------------------------------


@access_required(CLINICAL_ACCESS)
@require_GET
@never_cache
def patient_documents(request: HttpRequest, pk: int) -> HttpResponse:
    patient = _patient(request, pk, "dmp.documents")
    rows, pagination = page_of(
        selectors.document_list_for_patient(patient=patient, user=request.user),
        page=page_number(request),
        size=PAGE_SIZE,
    )
    return _render(
        request,
        "patient_documents.html",
        f"DMP — {patient.display_name}",
        patient=patient,
        documents=rows,
        **pagination,
        **patient_rights(patient, request.user),
    )


@access_required(CLINICAL_ACCESS)
@require_http_methods(["GET", "POST"])
@never_cache
def document_feed(request: HttpRequest, pk: int) -> HttpResponseBase:
    patient = _patient(request, pk, "dmp.feed")
    structures = structures_of_user(request.user)
    posted = (request.POST, request.FILES) if request.method == "POST" else ()
    form = FeedForm(*posted, structures=structures)

    def feed() -> Document:
        data = form.cleaned_data
        document = services.document_create_from_pdf(
            patient=patient,
            pdf=data["pdf"],
            type_code=data["type_code"],
            title=data["title"],
            actor=request.user,
            structure=data["structure"],
            service_start=data["service_start"],
            service_end=data["service_end"],
            facility_type=data["facility_type"],
            practice_setting=data["practice_setting"],
            confidentiality=data["confidentiality"],
            masked_from_professionals=data["masked_from_professionals"],
            invisible_to_patient=data["invisible_to_patient"],
            invisible_to_legal_representatives=data["invisible_to_legal_representatives"],
            request=request,
        )
        return _submit_or_keep_draft(request, document)

    done = _run(request, form, feed, "Document créé et mis en file d'envoi vers le DMP.")
    return done or _render(
        request,
        "feed.html",
        "Alimenter le DMP",
        patient=patient,
        form=form,
        has_structures=structures.exists(),
        **patient_rights(patient, request.user),
    )


# --- One document ----------------------------------------------------------------------------------------


@access_required(CLINICAL_ACCESS)
@require_GET
@never_cache
def document_detail(request: HttpRequest, pk: int) -> HttpResponse:
    document = _document(request, pk, "dmp.document")
    submissions = list(selectors.document_submissions(document=document))
    return _render(
        request,
        "document_detail.html",
        document.title,
        document=document,
        patient=document.patient,
        type_label=getattr(valuesets.lookup("type_code", document.type_code), "display", ""),
        versions=list(selectors.document_versions(document=document, user=request.user)),
        events=list(selectors.document_history(document=document)),
        submissions=submissions,
        failed=[s for s in submissions if s.status == OutboxStatus.FAILED],
        may_write=selectors.document_may_write(document=document, user=request.user),
        may_change=document.status in selectors.ACTIVE_STATUSES,
        pending=any(s.is_open for s in submissions),
    )


FILES = {
    "pdf": ("application/pdf", "document-{pk}.pdf"),
    "cda": ("text/xml; charset=utf-8", "document-{pk}-cda.xml"),
}


@access_required(CLINICAL_ACCESS)
@require_GET
@never_cache
def document_file(request: HttpRequest, pk: int, kind: str) -> HttpResponse:
    """The PDF as deposited, or the CDA document built around it (as sent to the DMP): an audited read."""
    if kind not in FILES:
        raise Http404("Format inconnu.")
    document = _document(request, pk, f"dmp.download.{kind}")
    content_type, filename = FILES[kind]
    response = HttpResponse(
        selectors.document_content(document=document, kind=kind), content_type=content_type
    )
    response["Content-Disposition"] = f'attachment; filename="{filename.format(pk=document.pk)}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


@access_required(CLINICAL_ACCESS)
@require_POST
def document_send(request: HttpRequest, pk: int) -> HttpResponseBase:
    document = _writable(request, pk, "dmp.send")
    try:
        services.document_submit(document=document, actor=request.user, request=request)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, "Document mis en file d'envoi vers le DMP.")
    return redirect("dmp:document_detail", pk=document.pk)


@access_required(CLINICAL_ACCESS)
@require_http_methods(["GET", "POST"])
@never_cache
def document_visibility(request: HttpRequest, pk: int) -> HttpResponseBase:
    document = _writable(request, pk, "dmp.visibility")
    form = VisibilityForm(request.POST if request.method == "POST" else None, document=document)

    def change() -> Document:
        services.document_set_visibility(
            document=document,
            actor=request.user,
            masked_from_professionals=form.cleaned_data["masked_from_professionals"],
            invisible_to_patient=form.cleaned_data["invisible_to_patient"],
            invisible_to_legal_representatives=form.cleaned_data["invisible_to_legal_representatives"],
            request=request,
        )
        return document

    done = _run(
        request,
        form,
        change,
        "Modification de visibilité envoyée au DMP : elle s'appliquera quand le DMP l'aura acceptée.",
    )
    return done or _render(
        request,
        "visibility.html",
        "Visibilité du document",
        document=document,
        patient=document.patient,
        form=form,
    )


@access_required(CLINICAL_ACCESS)
@require_http_methods(["GET", "POST"])
@never_cache
def document_replace(request: HttpRequest, pk: int) -> HttpResponseBase:
    previous = _writable(request, pk, "dmp.replace")
    posted = (request.POST, request.FILES) if request.method == "POST" else ()
    form = ReplaceForm(*posted, document=previous)

    def replace() -> Document:
        data = form.cleaned_data
        document = services.document_replace(
            previous=previous,
            pdf=data["pdf"],
            actor=request.user,
            title=data["title"],
            type_code=data["type_code"],
            service_start=data["service_start"],
            service_end=data["service_end"],
            request=request,
        )
        return _submit_or_keep_draft(request, document)

    done = _run(request, form, replace, "Nouvelle version créée et mise en file d'envoi vers le DMP.")
    return done or _render(
        request, "replace.html", "Nouvelle version", document=previous, patient=previous.patient, form=form
    )


# --- Failed submissions ----------------------------------------------------------------------------------


@access_required(CLINICAL_ACCESS)
@require_GET
@never_cache
def failed_list(request: HttpRequest) -> HttpResponse:
    rows, pagination = page_of(
        selectors.submission_list_failed(user=request.user), page=page_number(request), size=PAGE_SIZE
    )
    audit_record(action="dmp.document.list", request=request, detail={"list": "failed", "shown": len(rows)})
    groups: list[dict[str, Any]] = []
    for submission in rows:
        structure = submission.document.structure
        if not groups or groups[-1]["structure"].pk != structure.pk:
            groups.append({"structure": structure, "submissions": []})
        groups[-1]["submissions"].append(submission)
    return _render(
        request, "failed.html", "Envois en échec", groups=groups, kinds=SubmissionKind, **pagination
    )


@access_required(CLINICAL_ACCESS)
@require_POST
def submission_retry(request: HttpRequest, pk: int) -> HttpResponseBase:
    try:
        submission = selectors.submission_get_failed(pk=pk, user=request.user)
    except Submission.DoesNotExist:
        raise Http404("Cet envoi n'est pas en échec, ou pas dans vos structures.") from None
    try:
        services.submission_retry(submission=submission, actor=request.user, request=request)
    except ValidationError as error:
        messages.error(request, "L'envoi n'a pas été relancé : " + " ".join(error.messages))
    else:
        messages.success(request, f"Envoi relancé : « {submission.document.title} ».")
    if request.POST.get("retour") == "document":
        return redirect("dmp:document_detail", pk=submission.document_id)
    return redirect("dmp:failed_list")
