"""Factories and helpers of the dmp tests: a clinician of the directory working in a structure, a
qualified patient who authorised them, and documents made through the services (never by hand: a
document always carries a real CDA and real blobs)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, cast

from annuaire.models import Professional, Structure
from dmp import services
from dmp.models import Document
from enrs.accounts.models import User
from enrs.patients.models import ConsentKind, InsOid, Patient
from enrs.patients.services import consent_record
from tests.annuaire.factories import ProfessionalFactory, StructureFactory
from tests.factories import UserFactory
from tests.patients.factories import PatientFactory

# A small but well-formed PDF (one empty page).
PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)
SERVICE_START = dt.datetime(2026, 11, 20, 9, 30, tzinfo=dt.UTC)
SERVICE_END = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)


@dataclass
class Clinic:
    """A physician of the directory, their account, and the structure they feed the DMP for."""

    user: User
    professional: Professional
    structure: Structure


def make_clinic(*, finess: str | None = None, **user_fields: Any) -> Clinic:
    professional = cast(Professional, ProfessionalFactory(physician=True))
    structure = cast(Structure, StructureFactory(finess_et=finess) if finess else StructureFactory())
    user = cast(User, UserFactory(idnat_ps=professional.idnat_ps, **user_fields))
    return Clinic(user=user, professional=professional, structure=structure)


def make_patient(clinic: Clinic, *, authorised: bool = True, **fields: Any) -> Patient:
    """A qualified patient (test INS OID); with an access authorisation for the clinic's physician."""
    values: dict[str, Any] = {"qualified": True}
    values.update(fields)
    if "ins" in values:
        values.setdefault("ins_oid", InsOid.NIR_TEST)
    patient = cast(Patient, PatientFactory(**values))
    if authorised:
        consent_record(
            patient=patient,
            kind=ConsentKind.DMP_ACCESS_AUTHORISATION,
            actor=clinic.user,
            professional=clinic.user,
        )
    return patient


def document_kwargs(clinic: Clinic, patient: Patient, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "patient": patient,
        "pdf": PDF,
        "type_code": "11488-4",
        "title": "Compte rendu de consultation",
        "actor": clinic.user,
        "structure": clinic.structure,
        "service_start": SERVICE_START,
        "service_end": SERVICE_END,
        "facility_type": "SA01",
        "practice_setting": "ETABLISSEMENT",
    }
    values.update(overrides)
    return values


def make_document(clinic: Clinic, patient: Patient, **overrides: Any) -> Document:
    return services.document_create_from_pdf(**document_kwargs(clinic, patient, **overrides))
