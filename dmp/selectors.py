"""Reads of the dmp app: documents of a patient, of a user, of a structure; failed submissions; history.

Pages and the API read nominative data through these selectors; a read of one document for a person is
audited (`document_get_audited`), and list reads are audited by the views with one event per page.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, Q, QuerySet
from django.http import HttpRequest

from annuaire.models import Structure
from annuaire.selectors.structures import structures_of_user
from enrs.accounts.roles import Role, user_has_role
from enrs.audit.services import audit_record
from enrs.outbox.models import OutboxStatus
from enrs.patients.models import Patient
from enrs.vault.services import blob_read

from .models import Document, DocumentEvent, DocumentStatus, Submission, SubmissionAttempt

RECENT_LIMIT = 20

# Documents the DMP holds as the current version: their visibility may change, they may be replaced.
ACTIVE_STATUSES = (DocumentStatus.ACCEPTED, DocumentStatus.UPDATED)


def _document_rows() -> QuerySet[Document]:
    return Document.objects.select_related("patient", "structure", "author")


def _visible_to(user: Any) -> Q:
    """A document masked from professionals (MASQUE_PS) is shown only to its author."""
    return Q(masked_from_professionals=False) | Q(author_id=getattr(user, "pk", None))


def document_list_for_patient(*, patient: Patient, user: Any) -> QuerySet[Document]:
    """Every document (every version) fed for `patient` that `user` may see, newest first."""
    return _document_rows().filter(_visible_to(user), patient=patient).order_by("-created_at", "-pk")


def document_list_recent_for_user(*, user: Any, limit: int = RECENT_LIMIT) -> list[Document]:
    """The documents the user authored last (the DMP home page)."""
    return list(_document_rows().filter(author=user).order_by("-created_at", "-pk")[:limit])


def document_get(*, pk: int, user: Any) -> Document:
    """The document if `user` may see it (Document.DoesNotExist otherwise)."""
    return _document_rows().select_related("replaces").filter(_visible_to(user)).get(pk=pk)


def document_get_audited(*, pk: int, request: HttpRequest, purpose: str) -> Document:
    """The document, and a `dmp.document.read` event saying who read it and why (``purpose``)."""
    document = document_get(pk=pk, user=request.user)
    audit_record(
        action="dmp.document.read",
        request=request,
        target=document,
        patient_ins=document.patient.ins,
        detail={"purpose": purpose},
    )
    return document


def document_versions(*, document: Document, user: Any) -> QuerySet[Document]:
    """Every version of the document (same setId) that `user` may see, oldest first."""
    return (
        Document.objects.filter(_visible_to(user), set_id=document.set_id)
        .select_related("author")
        .order_by("version_number", "created_at", "pk")
    )


def document_history(*, document: Document) -> QuerySet[DocumentEvent]:
    return DocumentEvent.objects.filter(document=document).select_related("actor").order_by("at", "pk")


def document_submissions(*, document: Document) -> QuerySet[Submission]:
    """The calls to the DMP for this document, newest first, with their attempts."""
    return (
        Submission.objects.filter(document=document)
        .select_related("requested_by")
        .prefetch_related(Prefetch("attempt_rows", queryset=SubmissionAttempt.objects.order_by("number")))
        .order_by("-created_at", "-pk")
    )


def submission_list_failed(*, user: Any, structure: Structure | None = None) -> QuerySet[Submission]:
    """Failed submissions a person may retry: those of the user's structures (administrators: every
    structure), optionally of one structure, newest first."""
    rows = Submission.objects.filter(status=OutboxStatus.FAILED).select_related(
        "document", "document__patient", "document__structure", "requested_by"
    )
    if not user_has_role(user, frozenset({Role.ADMIN})):
        rows = rows.filter(document__structure__in=structures_of_user(user))
    if structure is not None:
        rows = rows.filter(document__structure=structure)
    return rows.order_by("document__structure__name", "document__structure_id", "-updated_at", "-pk")


def submission_get_failed(*, pk: int, user: Any) -> Submission:
    """One failed submission the user may retry (Submission.DoesNotExist otherwise)."""
    return submission_list_failed(user=user).get(pk=pk)


def document_may_write(*, document: Document, user: Any) -> bool:
    """Whether the user may act on the document in the portal (its author, or a clinician of its
    structure). The services check the patient's rights again."""
    if document.author_id == getattr(user, "pk", None):
        return True
    return structures_of_user(user).filter(pk=document.structure_id).exists()


def document_content(*, document: Document, kind: str) -> bytes:
    """The stored PDF (``kind="pdf"``) or CDA document (``kind="cda"``), decrypted. Callers read the
    document through `document_get_audited` first."""
    if kind == "pdf":
        return blob_read(document.pdf)
    if kind == "cda":
        return blob_read(document.cda)
    raise ValueError(kind)
