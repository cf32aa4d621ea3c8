"""Browser upload of DICOM studies (page + JSON endpoints for resumable chunks) and the study summary.

The page (`upload_page`) sends a zip or a folder in pieces with ``static/telemedecine/upload.js``:
``POST upload_start`` (JSON ``{filename, total_size, act}``), then ``POST upload_chunk`` with the raw
bytes and the ``X-Upload-Offset`` header for each piece (409 + ``received_size`` when the offset is not
what the server holds: the page resumes from there), ``GET upload_status`` after a network error, and
``POST upload_complete``. Views are thin: parse the request, call `services.uploads` / `services.studies`.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, cast

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from enrs.accounts.models import User
from enrs.accounts.roles import CLINICAL_ACCESS, access_required
from enrs.core.navigation import service
from enrs.vault.services import blob_read

from .models import Act, UploadSession
from .selectors import act_can_read
from .services import studies, uploads

MAX_JSON_BODY = 16 * 1024


def _error(message: str, status: int = 400, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def _messages(exc: ValidationError) -> str:
    return " ".join(exc.messages)


def _own_session(request: HttpRequest, session_id: uuid.UUID) -> UploadSession:
    session = UploadSession.objects.filter(pk=session_id, user=cast(User, request.user)).first()
    if session is None:
        raise Http404("Dépôt introuvable.")
    return session


def _act_param(request: HttpRequest, value: Any) -> Act | None:
    if value in (None, ""):
        return None
    act = Act.objects.filter(pk=value).first() if str(value).isdigit() else None
    if act is None or not act_can_read(request.user, act):
        raise Http404("Demande de télémédecine introuvable.")
    return act


def _session_urls(session: UploadSession) -> dict[str, str]:
    return {
        "chunk_url": reverse("telemedecine:upload_chunk", args=[session.pk]),
        "status_url": reverse("telemedecine:upload_status", args=[session.pk]),
        "complete_url": reverse("telemedecine:upload_complete", args=[session.pk]),
    }


@access_required(CLINICAL_ACCESS)
@require_GET
def upload_page(request: HttpRequest) -> HttpResponse:
    act = _act_param(request, request.GET.get("acte"))
    return render(
        request,
        "telemedecine/upload.html",
        {
            "service": service("telemedecine"),
            "title": "Déposer un examen d'imagerie",
            "act": act,
            "chunk_bytes": int(settings.DICOM_UPLOAD_CHUNK_BYTES),
            "max_bytes": int(settings.DICOM_MAX_UPLOAD_BYTES),
            "max_megabytes": int(settings.DICOM_MAX_UPLOAD_BYTES) // 1024**2,
            "max_files": int(settings.DICOM_MAX_FILES),
        },
    )


@access_required(CLINICAL_ACCESS)
@require_POST
def upload_start_view(request: HttpRequest) -> JsonResponse:
    if int(request.META.get("CONTENT_LENGTH") or 0) > MAX_JSON_BODY:
        return _error("Requête trop volumineuse.")
    try:
        payload = json.loads(request.body or b"{}")
    except ValueError:
        return _error("Requête illisible (JSON attendu).")
    if not isinstance(payload, dict):
        return _error("Requête illisible (JSON attendu).")
    total_size = payload.get("total_size")
    try:
        act = _act_param(request, payload.get("act"))
        session = uploads.upload_start(
            user=request.user,
            filename=str(payload.get("filename") or ""),
            total_size=total_size if isinstance(total_size, int) else -1,
            act=act,
            request=request,
        )
    except ValidationError as exc:
        return _error(_messages(exc))
    body = {**uploads.upload_status(session), **_session_urls(session)}
    body["chunk_size"] = int(settings.DICOM_UPLOAD_CHUNK_BYTES)
    return JsonResponse(body, status=201)


@access_required(CLINICAL_ACCESS)
@require_GET
def upload_status_view(request: HttpRequest, session_id: uuid.UUID) -> JsonResponse:
    session = _own_session(request, session_id)
    return JsonResponse({**uploads.upload_status(session), **_session_urls(session)})


@access_required(CLINICAL_ACCESS)
@require_POST
def upload_chunk_view(request: HttpRequest, session_id: uuid.UUID) -> JsonResponse:
    session = _own_session(request, session_id)
    raw_offset = request.headers.get("X-Upload-Offset", "")
    if not raw_offset.isdigit():
        return _error("En-tête X-Upload-Offset manquant ou invalide.")
    limit = int(settings.DICOM_UPLOAD_CHUNK_BYTES)
    if int(request.META.get("CONTENT_LENGTH") or 0) > limit:
        return _error(f"Morceau trop gros (maximum {limit} octets).", status=413)
    data = request.read(limit + 1)  # the raw body, never parsed as a form
    try:
        session = uploads.upload_chunk(session=session, offset=int(raw_offset), data=data)
    except ValidationError as exc:
        if exc.code == "wrong_offset":
            session.refresh_from_db()
            return _error(_messages(exc), status=409, received_size=session.received_size)
        return _error(_messages(exc), status=413 if exc.code in ("oversized", "chunk_too_large") else 400)
    return JsonResponse(uploads.upload_status(session))


@access_required(CLINICAL_ACCESS)
@require_POST
def upload_complete_view(request: HttpRequest, session_id: uuid.UUID) -> JsonResponse:
    session = _own_session(request, session_id)
    try:
        study = uploads.upload_complete(session=session, request=request)
    except ValidationError as exc:
        return _error(_messages(exc), status=422)
    return JsonResponse(
        {
            "status": "complete",
            "study_id": study.pk,
            "study_url": reverse("telemedecine:study_detail", args=[study.pk]),
            "series": study.series_count,
            "instances": study.instance_count,
        }
    )


@access_required(CLINICAL_ACCESS)
@require_GET
def study_detail(request: HttpRequest, pk: int) -> HttpResponse:
    study = studies.study_get_for(user=request.user, pk=pk, request=request)
    series = list(study.series.order_by("number", "pk"))
    return render(
        request,
        "telemedecine/study_detail.html",
        {"service": service("telemedecine"), "title": "Examen d'imagerie", "study": study, "series": series},
    )


@access_required(CLINICAL_ACCESS)
@require_GET
def study_thumbnail(request: HttpRequest, pk: int) -> HttpResponse:
    study = studies.study_get_for(user=request.user, pk=pk, request=request)
    if study.thumbnail is None:
        raise Http404("Pas d'aperçu pour cet examen.")
    response = HttpResponse(blob_read(study.thumbnail), content_type="image/png")
    response["Cache-Control"] = "private, no-store"
    return response
