"""Pages of the telemedicine service: requests, the act page with its full trace, on-call pools.

Acts carry nominative health data: every act page is behind ``CLINICAL_ACCESS`` (strong authentication,
never ARS analysts) and reads the act through ``selectors.act_get_for`` (only its requester, requested
professional, expert, participants and pool members; each read audited, a refusal answered 404 and
audited ``access.denied``). Views are thin: they validate a form, call one service, and put the service's
French errors next to the fields. The pools pages show no patient data: clinicians read them, the GCS
staff and administrators manage the rota there (PACS peers and allowed DICOM senders live in the admin).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Prefetch, QuerySet
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from enrs.accounts.roles import (
    ADMINISTRATION_ACCESS,
    CLINICAL_ACCESS,
    AccessRule,
    Role,
    access_required,
    user_has_role,
)
from enrs.audit.services import audit_record
from enrs.core.forms import add_service_errors
from enrs.core.navigation import service
from enrs.patients.forms import PatientSearchForm
from enrs.patients.models import Patient
from enrs.patients.selectors import patient_get_audited, patient_search
from enrs.vault.services import blob_chunks

from . import selectors
from .forms import (
    ActCreateForm,
    ActEditForm,
    AmendForm,
    AttachmentForm,
    CancelForm,
    ConsentForm,
    IncidentForm,
    MemberForm,
    ParticipantForm,
    PlanForm,
    PoolForm,
    ReasonForm,
    ReportForm,
    ShiftForm,
    TransferForm,
)
from .models import Act, ActStatus, Pool, Shift, Study, Transfer
from .services import acts as act_services
from .services import pools as pool_services
from .services import reports, rooms, transfers

LIST_SIZE = 20
PATIENT_RESULTS = 20
# Pools and rota: no patient data. Clinicians read them; GCS staff and administrators manage them.
POOL_READ_ACCESS = AccessRule(
    frozenset({Role.CLINICIAN, Role.GCS_STAFF, Role.ADMIN}), strong=False, name="telemedecine_pools"
)

EVENT_LABELS = {
    "created": "Demande créée (brouillon)",
    "updated": "Brouillon modifié",
    "sent": "Demande envoyée",
    "accepted": "Demande acceptée",
    "refused": "Demande refusée",
    "cancelled": "Demande annulée",
    "expired": "Demande expirée sans réponse",
    "planned": "Séance planifiée",
    "consent": "Consentement recueilli",
    "started": "Acte démarré",
    "report_saved": "Compte rendu enregistré (brouillon)",
    "report_signed": "Compte rendu signé",
    "closed": "Acte clôturé",
    "participant_added": "Participant ajouté",
    "incident": "Incident technique signalé",
    "amended": "Complément ajouté",
    "attachment_added": "Pièce jointe ajoutée",
    "fallback": "Mode d'échange sans vidéo",
    "room_created": "Salle de visioconférence créée",
    "room_joined": "Entrée dans la salle de visioconférence",
    "dmp_queued": "Compte rendu mis en file pour le DMP",
    "dmp_not_fed": "Compte rendu non versé au DMP",
    "dmp_refused": "Versement au DMP refusé",
    "mssante_sent": "Compte rendu envoyé par MSSanté",
    "mssante_not_sent": "Compte rendu non envoyé par MSSanté",
    "mssante_refused": "Envoi MSSanté refusé",
    "cda_not_produced": "Document CDA non produit",
    "route_error": "Erreur d'acheminement du compte rendu",
    "images_transfer_requested": "Transfert d'examen vers un PACS demandé",
    "images_transfer_done": "Examen transféré et vérifié sur le PACS",
    "images_transfer_failed": "Échec du transfert d'examen",
    "images_transfer_retried": "Transfert d'examen relancé",
}


def _ctx(title: str, **extra: Any) -> dict[str, Any]:
    return {"service": service("telemedecine"), "title": title, **extra}


def _fail(form: Any, exc: ValidationError, field_map: dict[str, str] | None = None) -> None:
    add_service_errors(form, exc, field_map)


# --- Index ---------------------------------------------------------------------------------------------


@access_required(CLINICAL_ACCESS)
@require_GET
@never_cache
def index(request: HttpRequest) -> HttpResponse:
    user = request.user
    now = timezone.now()
    mine = list(selectors.acts_requested_by(user)[:LIST_SIZE])
    to_me = list(selectors.acts_for_expert(user)[:LIST_SIZE])
    on_call_acts = list(selectors.acts_on_call_now(user, at=now)[:LIST_SIZE])
    uid = int(user.pk or 0)
    on_call_shifts = list(
        Shift.objects.filter(user_id=uid, starts_at__lte=now, ends_at__gt=now, pool__members__pk=uid)
        .select_related("pool")
        .order_by("ends_at")
    )
    # The lists show patients' names: one audited access per page shown.
    shown = {a.pk for a in mine} | {a.pk for a in to_me} | {a.pk for a in on_call_acts}
    audit_record(action="telemedecine.act.list", request=request, actor=user, detail={"shown": len(shown)})
    return render(
        request,
        "telemedecine/index.html",
        _ctx(
            "Télémédecine",
            mine=mine,
            to_me=to_me,
            on_call_acts=on_call_acts,
            on_call_shifts=on_call_shifts,
            list_size=LIST_SIZE,
        ),
    )


# --- New request -------------------------------------------------------------------------------------


def _patient_param(request: HttpRequest, value: Any) -> Patient | None:
    if not value or not str(value).isdigit():
        return None
    try:
        return patient_get_audited(pk=int(value), request=request, purpose="telemedecine.request")
    except Patient.DoesNotExist:
        raise Http404("Ce patient n'existe pas.") from None


@access_required(CLINICAL_ACCESS)
@require_http_methods(["GET", "POST"])
@never_cache
def act_create(request: HttpRequest) -> HttpResponseBase:
    source = request.POST if request.method == "POST" else request.GET
    patient = _patient_param(request, source.get("patient"))
    context: dict[str, Any] = {"patient": patient}
    if patient is None:
        # Step 1: find the patient (INS or name), as the patients' own search does.
        search = PatientSearchForm(
            request.GET if request.GET.get("q") or request.GET.get("birth_date") else None
        )
        context["search_form"] = search
        context["patients"] = None
        if search.is_bound and search.is_valid():
            query = search.cleaned_data["q"]
            rows = list(
                patient_search(query=query, birth_date=search.cleaned_data["birth_date"])[:PATIENT_RESULTS]
            )
            audit_record(
                action="patient.search",
                request=request,
                detail={
                    "by": "ins" if query[:1].isdigit() else ("name" if query else "birth_date"),
                    "with_birth_date": bool(search.cleaned_data["birth_date"]),
                    "shown": len(rows),
                    "purpose": "telemedecine.request",
                },
            )
            context["patients"] = rows
        return render(request, "telemedecine/act_create.html", _ctx("Nouvelle demande", **context))

    form = ActCreateForm(
        request.POST if request.method == "POST" else None,
        request.FILES if request.method == "POST" else None,
        user=request.user,
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            act = act_services.act_create(
                actor=request.user,
                act_type=data["act_type"],
                patient=patient,
                requester_structure=data["requester_structure"],
                clinical_question=data["clinical_question"],
                urgency=data["urgency"],
                requested_professional=data["requested_professional"],
                pool=data["pool"],
                scheduled_at=data["scheduled_at"],
                request=request,
            )
            upload = data.get("attachment")
            if upload is not None:
                act_services.attachment_add(
                    act=act,
                    actor=request.user,
                    filename=upload.name or "piece-jointe",
                    content_type=upload.content_type or "application/octet-stream",
                    data=upload,
                    request=request,
                )
        except ValidationError as exc:
            _fail(form, exc)
        else:
            messages.success(
                request, "Le brouillon de la demande est enregistré : vérifiez-le puis envoyez-le."
            )
            return redirect("telemedecine:act_detail", pk=act.pk)
    context["form"] = form
    context["no_structure"] = not form.fields["requester_structure"].queryset.exists()  # type: ignore[attr-defined]
    return render(request, "telemedecine/act_create.html", _ctx("Nouvelle demande", **context))


@access_required(CLINICAL_ACCESS)
@require_http_methods(["GET", "POST"])
@never_cache
def act_edit(request: HttpRequest, pk: int) -> HttpResponseBase:
    """Change a draft (its requester only, before it is sent)."""
    if request.method == "POST":
        act = selectors.act_get_for_update(request.user, pk)
    else:
        act = selectors.act_get_for(request.user, pk, request)
    if "edit" not in act_services.act_allowed_actions(act, request.user):
        messages.error(request, "Seul le requérant modifie sa demande, et seulement avant de l'envoyer.")
        return redirect("telemedecine:act_detail", pk=act.pk)
    initial = {
        "pool": act.pool_id,
        "requested_professional": act.requested_professional_id,
        "clinical_question": act.clinical_question,
        "urgency": act.urgency,
        "scheduled_at": act.scheduled_at,
    }
    form = ActEditForm(request.POST if request.method == "POST" else None, initial=initial, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            act_services.act_update(
                act=act,
                actor=request.user,
                clinical_question=data["clinical_question"],
                urgency=data["urgency"],
                requested_professional=data["requested_professional"],
                pool=data["pool"],
                scheduled_at=data["scheduled_at"],
                request=request,
            )
        except ValidationError as exc:
            _fail(form, exc)
        else:
            messages.success(request, "Le brouillon est modifié.")
            return redirect("telemedecine:act_detail", pk=act.pk)
    return render(
        request,
        "telemedecine/act_edit.html",
        _ctx("Modifier le brouillon", act=act, form=form),
        status=400 if form.is_bound and form.errors else 200,
    )


# --- The act page ---------------------------------------------------------------------------------------


def _studies_of(act: Act) -> QuerySet[Study]:
    return act.studies.filter(status="available").order_by("-created_at", "-pk")


def _transfers_of(act: Act) -> list[Transfer]:
    return list(
        Transfer.objects.filter(act=act).select_related("peer", "study").order_by("-created_at", "-pk")
    )


def _transfer_json(transfer: Transfer, act: Act) -> dict[str, Any]:
    total = transfer.instances_total
    return {
        "id": transfer.pk,
        "study": transfer.study_id,
        "peer": transfer.peer.name,
        "status": transfer.status,
        "status_label": transfer.get_status_display(),
        "instances_sent": transfer.instances_sent,
        "instances_total": total,
        "percent": int(transfer.instances_sent * 100 / total) if total else 0,
        "verified_at": transfer.verified_at.isoformat() if transfer.verified_at else None,
        "last_error": transfer.last_error[:500] if transfer.status in ("failed", "retry") else "",
        "retry_url": reverse("telemedecine:transfer_retry", args=[act.pk, transfer.pk]),
    }


ROUTE_FAILURES = {
    "dmp": ("dmp_not_fed", "dmp_refused"),
    "mssante": ("mssante_not_sent", "mssante_refused"),
}


def _route_outcomes(act: Act, events: list[dict[str, Any]]) -> dict[str, Any]:
    """Where the signed report went: the DMP document's and the MSSanté message's status, or the reason
    written in the act's trace when it did not go."""
    outcome: dict[str, Any] = {"dmp": None, "mssante": None, "dmp_reason": "", "mssante_reason": ""}
    for route, codes in ROUTE_FAILURES.items():
        reasons = [e["reason"] for e in events if e["code"] in codes and e["reason"]]
        outcome[f"{route}_reason"] = reasons[-1] if reasons else ""
    outcome["errors"] = [e for e in events if e["code"] in ("route_error", "cda_not_produced")]
    if act.dmp_document_id:
        from dmp.models import Document

        document = Document.objects.filter(pk=act.dmp_document_id).first()
        if document is not None:
            outcome["dmp"] = {"status": document.get_status_display(), "detail": document.status_detail}
    if act.report_message_id:
        from messagerie.models import Recipient

        outcome["mssante"] = [
            {"address": r.address, "status": r.get_status_display(), "detail": r.status_detail}
            for r in Recipient.objects.filter(message_id=act.report_message_id).order_by("pk")
        ]
    return outcome


def _event_note(detail: dict[str, Any]) -> str:
    """The French precision shown next to an event of the trace."""
    parts = []
    for key, label in (("reason", ""), ("error", ""), ("peer", "PACS"), ("images", "images"), ("to", "à")):
        value = detail.get(key)
        if value in (None, ""):
            continue
        parts.append(f"{label} {value}".strip() if key != "images" else f"{value} {label}")
    return " ; ".join(parts)


def _event_rows(act: Act) -> list[dict[str, Any]]:
    rows = []
    for event in selectors.act_events(act):
        detail = event.detail if isinstance(event.detail, dict) else {}
        rows.append(
            {
                "at": event.at,
                "label": EVENT_LABELS.get(event.event, event.event),
                "code": event.event,
                "actor": event.actor,
                "reason": str(detail.get("reason", "") or ""),
                "note": _event_note(detail),
                "detail": {k: v for k, v in detail.items() if k != "reason"},
            }
        )
    return rows


def _act_page(request: HttpRequest, act: Act, *, status: int = 200, **forms: Any) -> HttpResponse:
    user = request.user
    allowed = act_services.act_allowed_actions(act, user)
    studies = _studies_of(act)
    defaults: dict[str, Any] = {
        "refuse_form": ReasonForm(prefix="refus"),
        "cancel_form": CancelForm(prefix="annulation"),
        "consent_form": ConsentForm(prefix="consentement"),
        "plan_form": PlanForm(
            prefix="planification", initial={"scheduled_at": act.scheduled_at, "fallback": act.fallback}
        ),
        "report_form": ReportForm(
            prefix="cr", initial={"report_text": act.report_text, "prescriptions": act.prescriptions}
        ),
        "participant_form": ParticipantForm(prefix="participant"),
        "incident_form": IncidentForm(prefix="incident"),
        "amend_form": AmendForm(prefix="complement"),
        "attachment_form": AttachmentForm(prefix="pj"),
        "transfer_form": TransferForm(prefix="transfert", studies=studies),
    }
    defaults.update(forms)
    study_list = list(studies.prefetch_related(Prefetch("series")))
    events = _event_rows(act)
    context = _ctx(
        f"{act.get_act_type_display()} — {act.patient.display_name}",
        act=act,
        allowed=allowed,
        buttons=allowed & {"edit", "send", "accept", "start", "close", "join"},
        events=events,
        participants=list(act.participants.select_related("user")),
        incidents=list(act.incidents.select_related("reported_by")),
        amendments=list(act.amendments.select_related("author")),
        attachments=list(act.attachments.all()),
        studies=study_list,
        transfers=_transfers_of(act),
        peers_exist=defaults["transfer_form"].fields["peer"].queryset.exists(),
        may_transfer=act.status in (ActStatus.SENT, ActStatus.ACCEPTED, ActStatus.IN_PROGRESS)
        and (user.pk in {act.requester_id, act.expert_id}),
        routes=_route_outcomes(act, events),
        jitsi=rooms.jitsi_configured(),
        on_call=pool_services.pool_on_call(act.pool)
        if act.pool is not None and act.status == ActStatus.SENT
        else [],
        **defaults,
    )
    return render(request, "telemedecine/act_detail.html", context, status=status)


@access_required(CLINICAL_ACCESS)
@require_GET
@never_cache
def act_detail(request: HttpRequest, pk: int) -> HttpResponse:
    act = selectors.act_get_for(request.user, pk, request)
    return _act_page(request, act)


# action -> (form class and prefix or None, form context name, callable(request, act, data) -> message)
ActionHandler = Callable[[HttpRequest, Act, dict[str, Any]], str]


def _form_action(
    form_class: type[Any], prefix: str, context_name: str, run: ActionHandler, *, files: bool = False
) -> tuple[type[Any], str, str, ActionHandler, bool]:
    return (form_class, prefix, context_name, run, files)


def _refuse(request: HttpRequest, act: Act, data: dict[str, Any]) -> str:
    act_services.act_refuse(act=act, actor=request.user, reason=data["reason"], request=request)
    return "La demande est refusée ; le requérant est prévenu."


def _cancel(request: HttpRequest, act: Act, data: dict[str, Any]) -> str:
    act_services.act_cancel(act=act, actor=request.user, reason=data["reason"], request=request)
    return "La demande est annulée."


def _consent(request: HttpRequest, act: Act, data: dict[str, Any]) -> str:
    act_services.consent_record(
        act=act, status=data["status"], collected_by=request.user, at=data["at"], request=request
    )
    return "Le consentement du patient est enregistré."


def _plan(request: HttpRequest, act: Act, data: dict[str, Any]) -> str:
    act_services.act_plan(
        act=act,
        actor=request.user,
        scheduled_at=data["scheduled_at"],
        fallback=data["fallback"] if data["fallback"] else None,
        request=request,
    )
    return "La séance est planifiée."


def _report(request: HttpRequest, act: Act, data: dict[str, Any]) -> str:
    act_services.act_report_save(
        act=act,
        actor=request.user,
        report_text=data["report_text"],
        prescriptions=data["prescriptions"],
        request=request,
    )
    return "Le compte rendu est enregistré (non signé)."


def _sign(request: HttpRequest, act: Act, data: dict[str, Any]) -> str:
    act_services.act_sign_report(
        act=act,
        actor=request.user,
        report_text=data["report_text"],
        prescriptions=data["prescriptions"],
        request=request,
    )
    return "Le compte rendu est signé : il est transmis au requérant et, si possible, au DMP."


def _participant(request: HttpRequest, act: Act, data: dict[str, Any]) -> str:
    act_services.participant_add(
        act=act,
        actor=request.user,
        role=data["role"],
        name=data["name"],
        function=data["function"],
        request=request,
    )
    return "Le participant est ajouté."


def _incident(request: HttpRequest, act: Act, data: dict[str, Any]) -> str:
    act_services.incident_add(
        act=act,
        actor=request.user,
        code=data["code"],
        description=data["description"],
        occurred_at=data["occurred_at"],
        request=request,
    )
    return "L'incident technique est enregistré."


def _amend(request: HttpRequest, act: Act, data: dict[str, Any]) -> str:
    act_services.act_amend(act=act, actor=request.user, text=data["text"], request=request)
    return "Le complément est ajouté à l'acte."


def _attachment(request: HttpRequest, act: Act, data: dict[str, Any]) -> str:
    upload = data["file"]
    act_services.attachment_add(
        act=act,
        actor=request.user,
        filename=upload.name or "piece-jointe",
        content_type=upload.content_type or "application/octet-stream",
        data=upload,
        request=request,
    )
    return "La pièce jointe est ajoutée."


FORM_ACTIONS: dict[str, tuple[type[Any], str, str, ActionHandler, bool]] = {
    "refuse": _form_action(ReasonForm, "refus", "refuse_form", _refuse),
    "cancel": _form_action(CancelForm, "annulation", "cancel_form", _cancel),
    "consent": _form_action(ConsentForm, "consentement", "consent_form", _consent),
    "plan": _form_action(PlanForm, "planification", "plan_form", _plan),
    "report": _form_action(ReportForm, "cr", "report_form", _report),
    "sign": _form_action(ReportForm, "cr", "report_form", _sign),
    "participant": _form_action(ParticipantForm, "participant", "participant_form", _participant),
    "incident": _form_action(IncidentForm, "incident", "incident_form", _incident),
    "amend": _form_action(AmendForm, "complement", "amend_form", _amend),
    "attachment": _form_action(AttachmentForm, "pj", "attachment_form", _attachment, files=True),
}

SIMPLE_ACTIONS: dict[str, tuple[Callable[..., Any], str]] = {
    "send": (act_services.act_send, "La demande est envoyée."),
    "accept": (act_services.act_accept, "Vous avez accepté la demande : vous êtes le professionnel requis."),
    "start": (act_services.act_start, "L'acte est démarré."),
    "close": (act_services.act_close, "L'acte est clôturé."),
}


@access_required(CLINICAL_ACCESS)
@require_POST
def act_action(request: HttpRequest, pk: int, action: str) -> HttpResponseBase:
    """One transition or addition on the act (each calls one service; errors come back on the page)."""
    if action not in FORM_ACTIONS and action not in SIMPLE_ACTIONS:
        raise Http404("Action inconnue.")
    act = selectors.act_get_for_update(request.user, pk)
    if action in SIMPLE_ACTIONS:
        service_fn, success = SIMPLE_ACTIONS[action]
        try:
            service_fn(act=act, actor=request.user, request=request)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, success)
        return redirect("telemedecine:act_detail", pk=act.pk)
    form_class, prefix, context_name, run, files = FORM_ACTIONS[action]
    form = form_class(request.POST, request.FILES if files else None, prefix=prefix)
    if form.is_valid():
        try:
            message = run(request, act, form.cleaned_data)
        except ValidationError as exc:
            _fail(form, exc, {"collected_by": "status", "user": "name", "data": "file", "filename": "file"})
        else:
            messages.success(request, message)
            return redirect("telemedecine:act_detail", pk=act.pk)
    # Show the page again with the form in error (an audited read of the act).
    act = selectors.act_get_for(request.user, pk, request)
    return _act_page(request, act, status=400, **{context_name: form, "open_form": action})


@access_required(CLINICAL_ACCESS)
@require_POST
def act_join(request: HttpRequest, pk: int) -> HttpResponseBase:
    """Into the act's video room: a fresh short-lived token, then off to the video service."""
    act = selectors.act_get_for_update(request.user, pk)
    try:
        url, _token = rooms.room_join(act=act, user=request.user, request=request)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("telemedecine:act_detail", pk=act.pk)
    response = HttpResponseRedirect(url)
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "no-store"
    return response


@access_required(CLINICAL_ACCESS)
@require_GET
def act_report_file(request: HttpRequest, pk: int, kind: str) -> HttpResponseBase:
    """The signed report, as PDF or as its CDA document (an audited read of the act)."""
    act = selectors.act_get_for(request.user, pk, request)
    short = str(act.reference)[:8]
    try:
        if kind == "pdf":
            body, content_type, name = (
                reports.report_pdf_bytes(act),
                "application/pdf",
                f"compte-rendu-{short}.pdf",
            )
        else:
            body, content_type, name = (
                reports.report_cda_bytes(act),
                "application/xml",
                f"compte-rendu-{short}.xml",
            )
    except ValidationError:
        raise Http404("Pas de compte rendu signé pour cet acte.") from None
    response = HttpResponse(body, content_type=content_type)
    name = f"compte-rendu-{short}.{'pdf' if kind == 'pdf' else 'xml'}"
    response["Content-Disposition"] = content_disposition_header(True, name) or "attachment"
    response["Cache-Control"] = "private, no-store"
    return response


@access_required(CLINICAL_ACCESS)
@require_GET
def attachment_download(request: HttpRequest, pk: int, attachment_pk: int) -> HttpResponseBase:
    attachment = selectors.attachment_get_for(request.user, attachment_pk, request)
    if attachment.act_id != pk:
        raise Http404("Pièce jointe introuvable.")
    response = FileResponse(blob_chunks(attachment.blob), content_type=attachment.content_type)
    response["Content-Disposition"] = content_disposition_header(True, attachment.filename) or "attachment"
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


# --- Transfers of the act's studies -----------------------------------------------------------------


@access_required(CLINICAL_ACCESS)
@require_POST
def transfer_create(request: HttpRequest, pk: int) -> HttpResponseBase:
    act = selectors.act_get_for_update(request.user, pk)
    form = TransferForm(request.POST, prefix="transfert", studies=_studies_of(act))
    if form.is_valid():
        try:
            transfers.transfer_create(
                study=form.cleaned_data["study"],
                peer=form.cleaned_data["peer"],
                requested_by=request.user,
                act=act,
                purpose="care",
                request=request,
            )
        except ValidationError as exc:
            _fail(form, exc)
        else:
            messages.success(request, "Le transfert de l'examen vers le PACS du site expert est lancé.")
            return redirect(reverse("telemedecine:act_detail", args=[act.pk]) + "#examens")
    act = selectors.act_get_for(request.user, pk, request)
    return _act_page(request, act, status=400, transfer_form=form, open_form="transfer")


@access_required(CLINICAL_ACCESS)
@require_POST
def transfer_retry(request: HttpRequest, pk: int, transfer_pk: int) -> HttpResponseBase:
    act = selectors.act_get_for_update(request.user, pk)
    transfer = get_object_or_404(Transfer, pk=transfer_pk, act=act)
    try:
        transfers.transfer_retry(transfer=transfer, actor=request.user, request=request)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request, "Le transfert est relancé : les images déjà acceptées ne sont pas renvoyées."
        )
    return redirect(reverse("telemedecine:act_detail", args=[act.pk]) + "#examens")


@access_required(CLINICAL_ACCESS)
@require_GET
@never_cache
def act_progress(request: HttpRequest, pk: int) -> JsonResponse:
    """Polled by ``static/telemedecine/act.js``: the act's state and its transfers' progress.

    Counts and states only (no patient data), so a poll is not recorded as a new read of the act; the
    caller must still be one of the act's readers."""
    act = selectors.act_get_for_update(request.user, pk)
    rows = [_transfer_json(t, act) for t in _transfers_of(act)]
    return JsonResponse(
        {
            "act": act.pk,
            "status": act.status,
            "status_label": act.get_status_display(),
            "transfers": rows,
            "done": all(t["status"] in ("done", "failed", "cancelled") for t in rows),
        }
    )


# --- Pools and rota ------------------------------------------------------------------------------------


def _may_manage_pools(user: Any) -> bool:
    return user_has_role(user, ADMINISTRATION_ACCESS.roles)


@access_required(POOL_READ_ACCESS)
@require_GET
def pool_list(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    pools = list(selectors.pool_list().prefetch_related("members"))
    current = (
        Shift.objects.filter(pool__in=pools, starts_at__lte=now, ends_at__gt=now)
        .select_related("user")
        .order_by("starts_at", "pk")
    )
    on_call: dict[int, list[Any]] = {}
    for shift in current:
        on_call.setdefault(shift.pool_id, []).append(shift.user)
    rows = []
    for pool in pools:
        members = {m.pk for m in pool.members.all()}
        # Only members count as on call (a former member's old shift does not).
        rows.append(
            {
                "pool": pool,
                "on_call": [u for u in on_call.get(pool.pk, []) if u.pk in members and u.is_active],
                "members": len(members),
            }
        )
    return render(
        request,
        "telemedecine/pool_list.html",
        _ctx("Équipes de garde", rows=rows, may_manage=_may_manage_pools(request.user)),
    )


def _pool_page(
    request: HttpRequest,
    pool: Pool,
    *,
    form: ShiftForm | None = None,
    member_form: MemberForm | None = None,
    status: int = 200,
) -> HttpResponse:
    now = timezone.now()
    shifts = list(
        selectors.shifts_of(pool, start=now - dt.timedelta(days=1), end=now + dt.timedelta(days=14))
    )
    may_manage = _may_manage_pools(request.user)
    return render(
        request,
        "telemedecine/pool_detail.html",
        _ctx(
            pool.name,
            pool=pool,
            members=list(pool.members.order_by("last_name", "first_name", "pk")),
            shifts=shifts,
            now=now,
            on_call=pool_services.pool_on_call(pool, now),
            may_manage=may_manage,
            form=(form or ShiftForm(pool=pool)) if may_manage else None,
            member_form=(member_form or MemberForm(prefix="membre")) if may_manage else None,
        ),
        status=status,
    )


@access_required(POOL_READ_ACCESS)
@require_GET
def pool_detail(request: HttpRequest, pk: int) -> HttpResponse:
    pool = get_object_or_404(Pool.objects.select_related("structure"), pk=pk)
    return _pool_page(request, pool)


@access_required(ADMINISTRATION_ACCESS)
@require_POST
def shift_add(request: HttpRequest, pk: int) -> HttpResponseBase:
    pool = get_object_or_404(Pool.objects.select_related("structure"), pk=pk)
    form = ShiftForm(request.POST, pool=pool)
    if form.is_valid():
        try:
            pool_services.shift_add(
                pool=pool,
                user=form.cleaned_data["user"],
                starts_at=form.cleaned_data["starts_at"],
                ends_at=form.cleaned_data["ends_at"],
                actor=request.user,
                request=request,
            )
        except ValidationError as exc:
            _fail(form, exc)
        else:
            messages.success(request, "La garde est ajoutée au planning.")
            return redirect("telemedecine:pool_detail", pk=pool.pk)
    return _pool_page(request, pool, form=form, status=400)


@access_required(ADMINISTRATION_ACCESS)
@require_POST
def shift_remove(request: HttpRequest, pk: int, shift_pk: int) -> HttpResponseBase:
    shift = get_object_or_404(Shift, pk=shift_pk, pool_id=pk)
    pool_services.shift_remove(shift=shift, actor=request.user, request=request)
    messages.success(request, "La garde est retirée du planning.")
    return redirect("telemedecine:pool_detail", pk=pk)


@access_required(ADMINISTRATION_ACCESS)
@require_http_methods(["GET", "POST"])
def pool_create(request: HttpRequest) -> HttpResponseBase:
    form = PoolForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            pool = pool_services.pool_create(
                actor=request.user,
                name=form.cleaned_data["name"],
                structure=form.cleaned_data["structure"],
                specialty=form.cleaned_data["specialty"],
                request=request,
            )
        except ValidationError as exc:
            _fail(form, exc)
        else:
            messages.success(request, "L'équipe de garde est créée : ajoutez ses membres puis ses gardes.")
            return redirect("telemedecine:pool_detail", pk=pool.pk)
    return render(
        request,
        "telemedecine/pool_create.html",
        _ctx("Nouvelle équipe de garde", form=form),
        status=400 if form.is_bound and form.errors else 200,
    )


@access_required(ADMINISTRATION_ACCESS)
@require_POST
def member_add(request: HttpRequest, pk: int) -> HttpResponseBase:
    pool = get_object_or_404(Pool.objects.select_related("structure"), pk=pk)
    form = MemberForm(request.POST, prefix="membre")
    if form.is_valid():
        try:
            pool_services.pool_member_add(
                pool=pool, user=form.cleaned_data["account"], actor=request.user, request=request
            )
        except ValidationError as exc:
            _fail(form, exc, {"user": "account"})
        else:
            messages.success(request, "Le professionnel est ajouté à l'équipe.")
            return redirect("telemedecine:pool_detail", pk=pool.pk)
    return _pool_page(request, pool, member_form=form, status=400)


@access_required(ADMINISTRATION_ACCESS)
@require_POST
def member_remove(request: HttpRequest, pk: int, user_pk: int) -> HttpResponseBase:
    pool = get_object_or_404(Pool, pk=pk)
    user = get_object_or_404(pool.members.all(), pk=user_pk)
    pool_services.pool_member_remove(pool=pool, user=user, actor=request.user, request=request)
    messages.success(request, "Le professionnel est retiré de l'équipe (et de ses gardes à venir).")
    return redirect("telemedecine:pool_detail", pk=pk)
