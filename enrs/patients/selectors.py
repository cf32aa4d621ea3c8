"""Reads of patient identities. Views read a patient through `patient_get_audited` (an audited access)."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.http import HttpRequest

from enrs.audit.services import audit_record

from . import ins as ins_codes
from .models import Consent, ConsentKind, Patient


def patient_search(*, query: str = "", birth_date: Any = None) -> QuerySet[Patient]:
    """Patients by matricule INS (exact), or by birth/used family name prefix (and birth date)."""
    patients = Patient.objects.all()
    query = query.strip()
    if query:
        normalised = ins_codes.normalize(query)
        if normalised[:1].isdigit() and len(normalised) >= 13:
            patients = patients.filter(ins__startswith=normalised)
        else:
            name = query.upper()
            patients = patients.filter(
                Q(birth_family_name__startswith=name) | Q(used_family_name__startswith=name)
            )
    if birth_date:
        patients = patients.filter(birth_date=birth_date)
    return patients.order_by("birth_family_name", "first_given_name", "birth_date", "pk")


def patient_get_audited(*, pk: int, request: HttpRequest, purpose: str) -> Patient:
    """The patient, and an audit event saying who read it, for what (``purpose``, e.g. ``dmp.view``)."""
    patient = Patient.objects.get(pk=pk)
    audit_record(
        action="patient.read",
        request=request,
        target=patient,
        patient_ins=patient.ins,
        detail={"purpose": purpose},
    )
    return patient


def dmp_feeding_opposed(patient: Patient) -> bool:
    return Consent.objects.filter(
        patient=patient, kind=ConsentKind.DMP_FEEDING_OPPOSITION, withdrawn_at__isnull=True
    ).exists()


def dmp_access_authorised(patient: Patient, professional: Any) -> bool:
    return Consent.objects.filter(
        patient=patient,
        kind=ConsentKind.DMP_ACCESS_AUTHORISATION,
        professional=professional,
        withdrawn_at__isnull=True,
    ).exists()


def consents_of(patient: Patient) -> QuerySet[Consent]:
    return patient.consents.select_related("professional", "recorded_by", "withdrawn_by").order_by(
        "-recorded_at", "-pk"
    )
