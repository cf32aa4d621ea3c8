"""Pages of the messagerie (French, DSFR).

Clinicians (``CLINICAL_ACCESS``: strong authentication, never ARS analysts) use their boxes: folders with
unread counts, reading (an audited patient-data access when the message concerns a patient), compose with
recipient autocomplete restricted to the trust space and files uploaded one by one, per-recipient status
with "Relancer", search, mark / move / delete. A box the user may not use answers 404, and the attempt is
written to the audit trail (``access.denied``) — whether the box exists or not.

The GCS staff (``ADMINISTRATION_ACCESS``) host boxes from the directory, manage delegations, application
tokens and the trust-space allow-list.

Views parse the request, call a selector or a service, and render. Writes are POST with the CSRF token.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annuaire.models import MailboxAddress, MailboxKind
from enrs.accounts.roles import ADMINISTRATION_ACCESS, CLINICAL_ACCESS, access_required
from enrs.audit.services import audit_record
from enrs.core.forms import add_service_errors
from enrs.core.navigation import service
from enrs.core.pagination import page_number, page_of
from enrs.patients.models import Patient
from enrs.patients.selectors import patient_search

from . import selectors
from .forms import (
    ComposeForm,
    DelegationForm,
    DraftForm,
    MailboxCreateForm,
    MarkForm,
    MoveForm,
    SearchForm,
    TokenForm,
    TrustedDomainForm,
)
from .models import (
    ApplicationToken,
    Attachment,
    Delegation,
    Direction,
    Folder,
    Mailbox,
    Message,
    MessageKind,
    Recipient,
    RecipientStatus,
    TrustedDomain,
)
from .services import folders, mailboxes, outgoing

PAGE_SIZE = 25
# Folders in URLs, in French.
FOLDER_SLUGS = {
    Folder.INBOX: "reception",
    Folder.SENT: "envoyes",
    Folder.DRAFTS: "brouillons",
    Folder.ARCHIVE: "archives",
    Folder.TRASH: "corbeille",
}
SLUG_FOLDERS = {slug: folder for folder, slug in FOLDER_SLUGS.items()}


def folder_url(mailbox_pk: int, folder: str) -> str:
    return reverse("messagerie:folder", args=[mailbox_pk, FOLDER_SLUGS[Folder(folder)]])


# --- Access to a box -----------------------------------------------------------------------------------


def _deny_mailbox(request: HttpRequest, pk: int, what: str) -> Http404:
    audit_record(
        action="access.denied",
        request=request,
        outcome="denied",
        target_type="messagerie.mailbox",
        target_id=str(pk),
        detail={"reason": what, "path": request.path, "method": request.method},
    )
    return Http404("Cette boîte aux lettres n'existe pas ou ne vous est pas accessible.")


def _mailbox(request: HttpRequest, pk: int) -> Mailbox:
    """The box `pk` if the signed-in user may use it; otherwise 404 and an ``access.denied`` audit."""
    try:
        return selectors.mailbox_get_for_user(user=request.user, pk=pk)
    except Mailbox.DoesNotExist:
        raise _deny_mailbox(request, pk, "mailbox") from None


def _message(request: HttpRequest, mailbox: Mailbox, pk: int) -> Message:
    try:
        return selectors.message_get(mailbox=mailbox, pk=pk)
    except Message.DoesNotExist:
        raise Http404("Ce message n'existe pas dans cette boîte.") from None


def _sidebar(request: HttpRequest, mailbox: Mailbox, current: str | None) -> dict[str, Any]:
    boxes = selectors.mailbox_list_for_user(request.user)
    return {
        "service": service("messagerie"),
        "mailbox": mailbox,
        "mailboxes": boxes,
        "folders": [
            {"info": info, "url": folder_url(mailbox.pk, info.key), "current": info.key == current}
            for info in selectors.folder_counts(mailbox)
        ],
        "can_send": mailboxes.mailbox_can_send(request.user, mailbox),
    }


# --- Index, folders, search ----------------------------------------------------------------------------


@access_required(CLINICAL_ACCESS)
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    first = mailboxes.mailboxes_for_user(request.user).first()
    if first is not None:
        return redirect(folder_url(first.pk, Folder.INBOX))
    return render(request, "messagerie/index.html", {"service": service("messagerie"), "title": "Messagerie"})


@access_required(CLINICAL_ACCESS)
@require_GET
@never_cache
def mailbox_home(request: HttpRequest, mailbox: int) -> HttpResponse:
    box = _mailbox(request, mailbox)
    return redirect(folder_url(box.pk, Folder.INBOX))


@access_required(CLINICAL_ACCESS)
@require_GET
@never_cache
def folder_view(request: HttpRequest, mailbox: int, folder: str) -> HttpResponse:
    box = _mailbox(request, mailbox)
    key = SLUG_FOLDERS.get(folder)
    if key is None:
        raise Http404("Ce dossier n'existe pas.")
    rows, pagination = page_of(
        selectors.message_list(mailbox=box, folder=key), page=page_number(request), size=PAGE_SIZE
    )
    context = {
        **_sidebar(request, box, key),
        "title": f"{Folder(key).label} — {box.address}",
        "folder_label": Folder(key).label,
        "folder": key,
        "rows": rows,
        "search_form": SearchForm(),
        **pagination,
    }
    return render(request, "messagerie/folder.html", context)


@access_required(CLINICAL_ACCESS)
@require_GET
@never_cache
def search_view(request: HttpRequest, mailbox: int) -> HttpResponse:
    box = _mailbox(request, mailbox)
    form = SearchForm(request.GET or None)
    search = form.search()
    rows: list[Message] = []
    pagination: dict[str, Any] = {}
    if form.is_bound and form.is_valid() and not search.is_empty:
        rows, pagination = page_of(
            selectors.message_list(mailbox=box, search=search), page=page_number(request), size=PAGE_SIZE
        )
    context = {
        **_sidebar(request, box, None),
        "title": f"Recherche — {box.address}",
        "folder_label": "Recherche",
        "folder": None,
        "rows": rows,
        "search_form": form,
        "searched": not search.is_empty,
        **pagination,
    }
    return render(request, "messagerie/folder.html", context, status=400 if form.errors else 200)


# --- Reading and actions on a message ------------------------------------------------------------------


@access_required(CLINICAL_ACCESS)
@require_GET
@never_cache
def message_view(request: HttpRequest, mailbox: int, pk: int) -> HttpResponse:
    box = _mailbox(request, mailbox)
    message = _message(request, box, pk)
    if message.folder == Folder.DRAFTS:
        return redirect(f"{reverse('messagerie:compose', args=[box.pk])}?brouillon={message.pk}")
    folders.message_read(message=message, actor=request.user, request=request)
    attachments = [
        {"attachment": a, "documents": folders.xdm_documents(a)} for a in message.attachments.all()
    ]
    context = {
        **_sidebar(request, box, message.folder),
        "title": message.subject or "(sans objet)",
        "message": message,
        "body": folders.message_body(message),
        "attachments": attachments,
        "recipients": list(message.recipients.all()) if message.direction == Direction.OUTGOING else [],
        "moves": [(f, Folder(f).label) for f in folders.folders_allowed(message) if f != Folder.TRASH],
        "folder_url": folder_url(box.pk, message.folder),
        "folder_label": Folder(message.folder).label,
        "can_reply": message.direction == Direction.INCOMING
        and message.kind == MessageKind.MESSAGE
        and not message.no_reply,
        "failed": RecipientStatus.FAILED,
    }
    return render(request, "messagerie/message.html", context)


def _back(request: HttpRequest, box: Mailbox, message: Message | None = None) -> HttpResponseBase:
    if message is not None and message.pk is not None:
        return redirect("messagerie:message", box.pk, message.pk)
    return redirect(folder_url(box.pk, Folder.INBOX))


@access_required(CLINICAL_ACCESS)
@require_POST
def message_mark_view(request: HttpRequest, mailbox: int, pk: int) -> HttpResponseBase:
    box = _mailbox(request, mailbox)
    message = _message(request, box, pk)
    form = MarkForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Action inconnue.")
        return _back(request, box, message)
    read = form.cleaned_data["read"]
    folders.message_mark(message=message, read=read, actor=request.user, request=request)
    messages.success(request, "Message marqué comme lu." if read else "Message marqué comme non lu.")
    if not read:  # back to the folder: opening the message again would mark it read
        return redirect(folder_url(box.pk, message.folder))
    return _back(request, box, message)


@access_required(CLINICAL_ACCESS)
@require_POST
def message_move_view(request: HttpRequest, mailbox: int, pk: int) -> HttpResponseBase:
    box = _mailbox(request, mailbox)
    message = _message(request, box, pk)
    form = MoveForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Dossier inconnu.")
        return _back(request, box, message)
    try:
        moved = folders.message_move(
            message=message, folder=form.cleaned_data["folder"], actor=request.user, request=request
        )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return _back(request, box, message)
    messages.success(request, f"Message déplacé dans « {Folder(moved.folder).label} ».")
    return _back(request, box, moved)


@access_required(CLINICAL_ACCESS)
@require_POST
def message_delete_view(request: HttpRequest, mailbox: int, pk: int) -> HttpResponseBase:
    box = _mailbox(request, mailbox)
    message = _message(request, box, pk)
    previous = message.folder
    try:
        gone = folders.message_delete(message=message, actor=request.user, request=request)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return _back(request, box, message)
    if gone:
        messages.success(request, "Message supprimé définitivement.")
        return redirect(folder_url(box.pk, Folder.TRASH))
    messages.success(request, "Message placé dans la corbeille.")
    return redirect(folder_url(box.pk, previous))


@access_required(CLINICAL_ACCESS)
@require_GET
def attachment_view(request: HttpRequest, mailbox: int, pk: int) -> HttpResponseBase:
    box = _mailbox(request, mailbox)
    try:
        attachment = selectors.attachment_get(mailbox=box, pk=pk)
    except Attachment.DoesNotExist:
        raise Http404("Cette pièce jointe n'existe pas.") from None
    try:
        chunks = folders.attachment_download(attachment=attachment, actor=request.user, request=request)
    except ValidationError as error:
        raise PermissionDenied(" ".join(error.messages)) from error
    response = FileResponse(chunks, content_type=attachment.content_type)
    response["Content-Disposition"] = content_disposition_header(True, attachment.filename) or "attachment"
    response["Content-Length"] = str(attachment.size)
    response["X-Content-Type-Options"] = "nosniff"
    return response


@access_required(CLINICAL_ACCESS)
@require_GET
def document_pdf_view(request: HttpRequest, mailbox: int, pk: int, index: int) -> HttpResponseBase:
    box = _mailbox(request, mailbox)
    try:
        attachment = selectors.attachment_get(mailbox=box, pk=pk)
    except Attachment.DoesNotExist:
        raise Http404("Cette pièce jointe n'existe pas.") from None
    try:
        filename, pdf = folders.xdm_document_pdf(
            attachment=attachment, index=index, actor=request.user, request=request
        )
    except ValidationError as error:
        raise Http404(" ".join(error.messages)) from error
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = _inline_disposition(filename)
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _inline_disposition(filename: str) -> str:
    from django.utils.http import content_disposition_header

    return content_disposition_header(False, filename) or "inline"


# --- Compose -------------------------------------------------------------------------------------------


def _draft(request: HttpRequest, box: Mailbox, pk: Any) -> Message | None:
    if not pk:
        return None
    try:
        return Message.objects.get(
            mailbox=box, pk=int(pk), folder=Folder.DRAFTS, direction=Direction.OUTGOING
        )
    except (Message.DoesNotExist, ValueError, TypeError):
        raise Http404("Ce brouillon n'existe pas dans cette boîte.") from None


def _uploaded(box: Mailbox, user: Any, ids: list[int], draft: Message | None) -> list[Attachment]:
    if not ids:
        return []
    scope = Q(message__isnull=True, uploaded_by=user)
    if draft is not None:
        scope |= Q(message=draft)
    found = {a.pk: a for a in Attachment.objects.filter(scope, mailbox=box, pk__in=ids)}
    return [found[i] for i in ids if i in found]


def _initial(
    request: HttpRequest, box: Mailbox, draft: Message | None
) -> tuple[dict[str, Any], list[Attachment]]:
    if draft is not None:
        initial = {
            "to": ", ".join(draft.to_addresses),
            "cc": ", ".join(draft.cc_addresses),
            "subject": draft.subject,
            "body": folders.message_body(draft),
            "request_read_receipt": draft.request_read_receipt,
            "no_reply": draft.no_reply,
        }
        if draft.patient_id and draft.patient is not None:
            initial.update(patient=draft.patient_id, patient_query=_patient_label(draft.patient))
        return initial, list(draft.attachments.all())
    reply_to = request.GET.get("repondre")
    if reply_to:
        try:
            original = Message.objects.get(mailbox=box, pk=int(reply_to), direction=Direction.INCOMING)
        except (Message.DoesNotExist, ValueError):
            raise Http404("Ce message n'existe pas dans cette boîte.") from None
        if original.no_reply:
            raise PermissionDenied("L'expéditeur a indiqué que ce message n'appelle pas de réponse.")
        subject = original.subject
        if not subject.lower().startswith(("re:", "re :")):
            subject = f"RE: {subject}"
        initial = {"to": original.from_address, "subject": subject[:250], "in_reply_to": original.message_id}
        if original.patient_id and original.patient is not None:
            initial.update(patient=original.patient_id, patient_query=_patient_label(original.patient))
        return initial, []
    return {"to": request.GET.get("a", "")[:255]}, []


def _patient_label(patient: Patient) -> str:
    ins = f" — INS {patient.ins}" if patient.ins else ""
    return f"{patient.display_name} (né·e le {patient.birth_date:%d/%m/%Y}){ins}"


def _resolve_patient(form: ComposeForm) -> Patient | None:
    data = form.cleaned_data
    if data.get("patient"):
        patient = Patient.objects.filter(pk=data["patient"]).first()
        if patient is None:
            form.add_error("patient_query", "Ce patient n'existe pas.")
        return patient
    query = (data.get("patient_query") or "").strip()
    if not query:
        return None
    found = list(patient_search(query=query)[:2])
    if len(found) != 1:
        form.add_error(
            "patient_query",
            "Aucun patient ne correspond."
            if not found
            else "Plusieurs patients correspondent : choisissez dans la liste.",
        )
        return None
    return found[0]


@access_required(CLINICAL_ACCESS)
@require_http_methods(["GET", "POST"])
@never_cache
def compose(request: HttpRequest, mailbox: int) -> HttpResponseBase:
    box = _mailbox(request, mailbox)
    if not mailboxes.mailbox_can_send(request.user, box):
        raise PermissionDenied("Votre délégation sur cette boîte ne permet pas d'envoyer des messages.")
    draft = _draft(request, box, request.POST.get("draft") or request.GET.get("brouillon"))
    if request.method == "GET":
        initial, uploaded = _initial(request, box, draft)
        form: ComposeForm = ComposeForm(initial=initial)
        return _compose_page(request, box, form, uploaded, draft, initial.get("in_reply_to", ""))

    saving_draft = request.POST.get("action") == "draft"
    form = (DraftForm if saving_draft else ComposeForm)(request.POST)
    in_reply_to = request.POST.get("in_reply_to", "")[:255]
    raw_ids = [int(v) for v in request.POST.getlist("attachments") if v.isdigit()][:100]
    uploaded = _uploaded(box, request.user, raw_ids, draft)
    # Without JavaScript, files come with the form itself.
    upload_errors: list[str] = []
    for file in request.FILES.getlist("files"):
        try:
            uploaded.append(folders.attachment_upload(mailbox=box, actor=request.user, upload=file))
        except ValidationError as error:
            upload_errors.extend(error.messages)
    valid = form.is_valid()
    for message in upload_errors:
        form.add_error(None, message)
    if not valid or upload_errors:
        return _compose_page(request, box, form, uploaded, draft, in_reply_to, status=400)
    data = form.cleaned_data
    patient = _resolve_patient(form)
    if form.errors:
        return _compose_page(request, box, form, uploaded, draft, in_reply_to, status=400)
    cda = next((a for a in uploaded if a.pk == data.get("cda_attachment")), None)
    arguments: dict[str, Any] = {
        "mailbox": box,
        "actor": request.user,
        "to": data["to"],
        "cc": data["cc"],
        "subject": data["subject"],
        "body": data["body"],
        "patient": patient,
        "attachments": [a for a in uploaded if cda is None or a.pk != cda.pk]
        if not saving_draft
        else uploaded,
        "request_read_receipt": data["request_read_receipt"],
        "no_reply": data["no_reply"],
        "draft": draft,
        "request": request,
    }
    try:
        if saving_draft:
            saved = outgoing.draft_save(**arguments)
            messages.success(request, "Brouillon enregistré.")
            return redirect(f"{reverse('messagerie:compose', args=[box.pk])}?brouillon={saved.pk}")
        sent = outgoing.message_send(
            **arguments,
            cda_from_pdf=cda,
            document_type_code=data.get("document_type") or "11488-4",
            in_reply_to=in_reply_to,
        )
    except ValidationError as error:
        add_service_errors(form, error, {"patient": "patient_query", "document_type_code": "document_type"})
        return _compose_page(request, box, form, uploaded, draft, in_reply_to, status=400)
    messages.success(request, "Message envoyé : son acheminement est suivi destinataire par destinataire.")
    return redirect("messagerie:message", box.pk, sent.pk)


def _compose_page(
    request: HttpRequest,
    box: Mailbox,
    form: ComposeForm,
    uploaded: list[Attachment],
    draft: Message | None,
    in_reply_to: str,
    status: int = 200,
) -> HttpResponse:
    cda_choice = form["cda_attachment"].value()
    context = {
        **_sidebar(request, box, Folder.DRAFTS if draft else None),
        "title": "Nouveau message",
        "form": form,
        "uploaded": uploaded,
        "cda_choice": str(cda_choice or ""),
        "draft": draft,
        "in_reply_to": in_reply_to,
        "max_bytes": folders.attachment_max_bytes(),
        "accept": ",".join(sorted(folders.ALLOWED_TYPES)),
    }
    return render(request, "messagerie/compose.html", context, status=status)


@access_required(CLINICAL_ACCESS)
@require_POST
def upload(request: HttpRequest, mailbox: int) -> JsonResponse:
    """One file of a message being written (XHR from the compose page): JSON with its id."""
    box = _mailbox(request, mailbox)
    if not mailboxes.mailbox_can_send(request.user, box):
        return JsonResponse({"error": "Vous ne pouvez pas envoyer depuis cette boîte."}, status=403)
    file = request.FILES.get("file")
    if file is None:
        return JsonResponse({"error": "Aucun fichier reçu."}, status=400)
    try:
        attachment = folders.attachment_upload(mailbox=box, actor=request.user, upload=file)
    except ValidationError as error:
        return JsonResponse({"error": " ".join(error.messages)}, status=400)
    return JsonResponse(
        {
            "id": attachment.pk,
            "filename": attachment.filename,
            "size": attachment.size,
            "content_type": attachment.content_type,
            "is_pdf": attachment.content_type == "application/pdf",
        },
        status=201,
    )


@access_required(CLINICAL_ACCESS)
@require_POST
def recipient_retry_view(request: HttpRequest, mailbox: int, pk: int) -> HttpResponseBase:
    box = _mailbox(request, mailbox)
    try:
        recipient = selectors.recipient_get(mailbox=box, pk=pk)
    except Recipient.DoesNotExist:
        raise Http404("Ce destinataire n'existe pas.") from None
    try:
        outgoing.recipient_retry(recipient=recipient, actor=request.user, request=request)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"Nouvel envoi à {recipient.address} programmé.")
    return redirect("messagerie:message", box.pk, recipient.message_id)


@access_required(CLINICAL_ACCESS)
@require_GET
def recipient_search(request: HttpRequest) -> JsonResponse:
    """Trust-space addresses for the compose page's autocomplete."""
    suggestions = selectors.recipient_suggestions(query=request.GET.get("q", "")[:100])
    return JsonResponse(
        {"results": [{"value": s.address, "label": s.label, "kind": s.kind} for s in suggestions]}
    )


@access_required(CLINICAL_ACCESS)
@require_GET
def patient_lookup(request: HttpRequest) -> JsonResponse:
    """Patients by INS or birth name for the compose page (at least 2 characters, 10 results)."""
    query = request.GET.get("q", "").strip()[:100]
    if len(query) < 2:
        return JsonResponse({"results": []})
    patients = patient_search(query=query)[:10]
    return JsonResponse({"results": [{"value": str(p.pk), "label": _patient_label(p)} for p in patients]})


# --- GCS staff -----------------------------------------------------------------------------------------


def _staff_context(title: str, **extra: Any) -> dict[str, Any]:
    return {"title": title, "service": service("messagerie"), **extra}


@access_required(ADMINISTRATION_ACCESS)
@require_http_methods(["GET", "POST"])
@never_cache
def staff_mailboxes(request: HttpRequest) -> HttpResponseBase:
    form = MailboxCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        entry = MailboxAddress.objects.filter(address__iexact=form.cleaned_data["address"]).first()
        if entry is None:
            form.add_error("address", "Cette adresse n'est pas inscrite dans l'annuaire.")
        else:
            try:
                box = mailboxes.mailbox_create(
                    kind=entry.kind,
                    actor=request.user,
                    directory_entry=entry,
                    display_name=form.cleaned_data["display_name"],
                    request=request,
                )
            except ValidationError as error:
                add_service_errors(form, error, {"directory_entry": "address", "owner": "address"})
            else:
                messages.success(request, f"Boîte {box.address} créée.")
                return redirect("messagerie:staff_mailbox", box.pk)
    query = request.GET.get("q", "").strip()[:100]
    rows, pagination = page_of(
        selectors.mailbox_admin_list(query=query), page=page_number(request), size=PAGE_SIZE
    )
    context = _staff_context("Boîtes hébergées", form=form, rows=rows, query=query, **pagination)
    return render(request, "messagerie/staff/mailboxes.html", context, status=400 if form.errors else 200)


def _staff_mailbox_page(
    request: HttpRequest, box: Mailbox, *, status: int = 200, **forms: Any
) -> HttpResponse:
    context = _staff_context(
        box.address,
        mailbox=box,
        delegations=list(selectors.delegations_of(box)),
        tokens=list(box.tokens.order_by("-created_at")),
        delegation_form=forms.get("delegation_form") or DelegationForm(initial={"can_send": True}),
        token_form=forms.get("token_form") or TokenForm(),
        clear_token=forms.get("clear_token", ""),
        is_org=box.kind == MailboxKind.ORGANIZATIONAL,
        is_app=box.kind == MailboxKind.APPLICATION,
    )
    return render(request, "messagerie/staff/mailbox.html", context, status=status)


@access_required(ADMINISTRATION_ACCESS)
@require_GET
@never_cache
def staff_mailbox(request: HttpRequest, pk: int) -> HttpResponse:
    box = get_object_or_404(Mailbox.objects.select_related("owner", "structure", "professional"), pk=pk)
    return _staff_mailbox_page(request, box)


@access_required(ADMINISTRATION_ACCESS)
@require_POST
def staff_mailbox_state(request: HttpRequest, pk: int) -> HttpResponseBase:
    box = get_object_or_404(Mailbox, pk=pk)
    active = request.POST.get("active") == "1"
    mailboxes.mailbox_set_active(mailbox=box, active=active, actor=request.user, request=request)
    messages.success(request, "Boîte réactivée." if active else "Boîte désactivée.")
    return redirect("messagerie:staff_mailbox", box.pk)


@access_required(ADMINISTRATION_ACCESS)
@require_POST
@never_cache
def staff_delegation_grant(request: HttpRequest, pk: int) -> HttpResponseBase:
    box = get_object_or_404(Mailbox, pk=pk)
    form = DelegationForm(request.POST)
    if form.is_valid():
        try:
            mailboxes.delegation_grant(
                mailbox=box,
                user=form.cleaned_data["username"],
                can_send=form.cleaned_data["can_send"],
                actor=request.user,
                request=request,
            )
        except ValidationError as error:
            add_service_errors(form, error, {"user": "username", "mailbox": "username"})
        else:
            messages.success(request, "Délégation accordée.")
            return redirect("messagerie:staff_mailbox", box.pk)
    return _staff_mailbox_page(request, box, status=400, delegation_form=form)


@access_required(ADMINISTRATION_ACCESS)
@require_POST
def staff_delegation_revoke(request: HttpRequest, pk: int) -> HttpResponseBase:
    delegation = get_object_or_404(Delegation, pk=pk)
    try:
        mailboxes.delegation_revoke(delegation=delegation, actor=request.user, request=request)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, "Délégation retirée.")
    return redirect("messagerie:staff_mailbox", delegation.mailbox_id)


@access_required(ADMINISTRATION_ACCESS)
@require_POST
@never_cache
def staff_token_create(request: HttpRequest, pk: int) -> HttpResponseBase:
    box = get_object_or_404(Mailbox, pk=pk)
    form = TokenForm(request.POST)
    if form.is_valid():
        try:
            _token, clear = mailboxes.token_create(
                mailbox=box, name=form.cleaned_data["name"], actor=request.user, request=request
            )
        except ValidationError as error:
            add_service_errors(form, error, {"mailbox": "name"})
        else:
            # Shown once, on this answer only (never stored in clear, never in a redirect).
            return _staff_mailbox_page(request, box, clear_token=clear, status=201)
    return _staff_mailbox_page(request, box, status=400, token_form=form)


@access_required(ADMINISTRATION_ACCESS)
@require_POST
def staff_token_revoke(request: HttpRequest, pk: int) -> HttpResponseBase:
    token = get_object_or_404(ApplicationToken, pk=pk)
    try:
        mailboxes.token_revoke(token=token, actor=request.user, request=request)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, "Jeton révoqué.")
    return redirect("messagerie:staff_mailbox", token.mailbox_id)


@access_required(ADMINISTRATION_ACCESS)
@require_http_methods(["GET", "POST"])
@never_cache
def staff_domains(request: HttpRequest) -> HttpResponseBase:
    form = TrustedDomainForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            added = mailboxes.trusted_domain_add(
                domain=form.cleaned_data["domain"],
                operator=form.cleaned_data["operator"],
                actor=request.user,
                request=request,
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f"Domaine {added.domain} ajouté à l'espace de confiance.")
            return redirect("messagerie:staff_domains")
    context = _staff_context(
        "Espace de confiance MSSanté",
        form=form,
        domains=list(TrustedDomain.objects.select_related("added_by").order_by("-is_active", "domain")),
        hosted=mailboxes.hosted_domains(),
    )
    return render(request, "messagerie/staff/domains.html", context, status=400 if form.errors else 200)


@access_required(ADMINISTRATION_ACCESS)
@require_POST
def staff_domain_remove(request: HttpRequest, pk: int) -> HttpResponseBase:
    trusted = get_object_or_404(TrustedDomain, pk=pk)
    try:
        mailboxes.trusted_domain_remove(trusted=trusted, actor=request.user, request=request)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"Domaine {trusted.domain} retiré de l'espace de confiance.")
    return redirect("messagerie:staff_domains")
