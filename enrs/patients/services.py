"""Writes on patient identities and choices: atomic, validated, audited.

Identity status rules (RNIV, standards §1.3):
* PROV — provisional: no INS needed;
* RECUP — retrieved from INSi: needs the matricule and its OID (the INSi call is declared by the user:
  the teleservice is not connected to the portal);
* VALI — validated: checked against a high-trust identity document;
* QUAL — qualified: both, and all five traits present. Only QUAL carries the INS outside the portal.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from enrs.audit.services import audit_record

from . import ins as ins_codes
from .models import (
    HIGH_TRUST_EVIDENCE,
    Consent,
    ConsentKind,
    IdentityStatus,
    IdentityStatusChange,
    Patient,
)


@dataclass(frozen=True)
class IdentityInput:
    birth_family_name: str
    birth_given_names: str
    first_given_name: str
    sex: str
    birth_date: dt.date
    birth_place_insee: str = ""
    used_family_name: str = ""
    used_given_name: str = ""
    ins: str = ""
    ins_oid: str = ""


def _allow_test_oids() -> bool:
    return bool(getattr(settings, "ENRS_INS_ALLOW_TEST_OIDS", False))


def _clean_identity(data: IdentityInput) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    values: dict[str, Any] = {
        "birth_family_name": data.birth_family_name.strip().upper(),
        "birth_given_names": " ".join(data.birth_given_names.upper().split()),
        "first_given_name": data.first_given_name.strip().upper(),
        "used_family_name": data.used_family_name.strip().upper(),
        "used_given_name": data.used_given_name.strip(),
        "sex": data.sex,
        "birth_date": data.birth_date,
        "birth_place_insee": data.birth_place_insee.strip().upper(),
        "ins": "",
        "ins_oid": "",
    }
    given = values["birth_given_names"].split()
    if values["first_given_name"] and given and values["first_given_name"] != given[0]:
        errors.setdefault("first_given_name", []).append(
            "Le premier prénom doit être le premier de la liste des prénoms de naissance."
        )
    if data.birth_date and data.birth_date > timezone.localdate():
        errors.setdefault("birth_date", []).append("La date de naissance est dans le futur.")
    if data.ins or data.ins_oid:
        try:
            values["ins"] = ins_codes.check_matricule(
                data.ins, data.ins_oid, allow_test_oids=_allow_test_oids()
            )
            values["ins_oid"] = data.ins_oid
        except ins_codes.InsError as exc:
            errors.setdefault("ins", []).append(str(exc))
    if errors:
        raise ValidationError(errors)
    return values


def _check_status(patient: Patient, status: str, evidence: str) -> None:
    if status not in IdentityStatus.values:
        raise ValidationError({"identity_status": "Statut d'identité inconnu."})
    if status in (IdentityStatus.RETRIEVED, IdentityStatus.QUALIFIED) and not patient.ins:
        raise ValidationError(
            {"identity_status": "Une identité récupérée ou qualifiée a un matricule INS (issu d'INSi)."}
        )
    if status in (IdentityStatus.VALIDATED, IdentityStatus.QUALIFIED) and evidence not in HIGH_TRUST_EVIDENCE:
        raise ValidationError(
            {
                "evidence": "Une identité validée ou qualifiée exige une pièce d'identité "
                "à haut niveau de confiance."
            }
        )
    if status == IdentityStatus.QUALIFIED:
        missing = patient.traits().missing()
        if missing:
            raise ValidationError(
                {
                    "identity_status": "Traits INS manquants pour qualifier l'identité : "
                    + ", ".join(missing)
                    + "."
                }
            )


def patient_create(
    *,
    data: IdentityInput,
    actor: Any,
    request: HttpRequest | None = None,
    status: str = IdentityStatus.PROVISIONAL,
    evidence: str = "",
    insi_checked: bool = False,
) -> Patient:
    values = _clean_identity(data)
    with transaction.atomic():
        if values["ins"] and Patient.objects.filter(ins=values["ins"], ins_oid=values["ins_oid"]).exists():
            raise ValidationError({"ins": "Un patient avec ce matricule INS existe déjà."})
        patient = Patient(**values, created_by=actor)
        patient.full_clean(exclude=["created_by", "status_set_by"])
        patient.save()
        if status != IdentityStatus.PROVISIONAL:
            _apply_status(patient, status=status, evidence=evidence, actor=actor, insi_checked=insi_checked)
        audit_record(
            action="patient.create",
            request=request,
            actor=actor,
            target=patient,
            patient_ins=patient.ins,
            detail={"identity_status": patient.identity_status},
        )
    return patient


def _apply_status(
    patient: Patient, *, status: str, evidence: str, actor: Any, insi_checked: bool, reason: str = ""
) -> None:
    previous = patient.identity_status
    _check_status(patient, status, evidence)
    now = timezone.now()
    patient.identity_status = status
    patient.evidence = evidence if status in (IdentityStatus.VALIDATED, IdentityStatus.QUALIFIED) else ""
    if insi_checked:
        patient.insi_checked_at = now
    patient.status_set_by = actor
    patient.status_set_at = now
    patient.save()
    IdentityStatusChange.objects.create(
        patient=patient,
        previous_status=previous,
        status=status,
        evidence=patient.evidence,
        reason=reason[:255],
        actor=actor,
    )


def patient_set_status(
    *,
    patient: Patient,
    status: str,
    actor: Any,
    evidence: str = "",
    insi_checked: bool = False,
    reason: str = "",
    request: HttpRequest | None = None,
) -> Patient:
    """Change the identity status (one service for every transition; the rules are in `_check_status`)."""
    with transaction.atomic():
        patient = Patient.objects.select_for_update().get(pk=patient.pk)
        previous = patient.identity_status
        _apply_status(
            patient, status=status, evidence=evidence, actor=actor, insi_checked=insi_checked, reason=reason
        )
        audit_record(
            action="patient.identity_status",
            request=request,
            actor=actor,
            target=patient,
            patient_ins=patient.ins,
            detail={"from": previous, "to": status, "evidence": patient.evidence},
        )
    return patient


def patient_update_identity(
    *, patient: Patient, data: IdentityInput, actor: Any, request: HttpRequest | None = None
) -> Patient:
    """Correct the traits or the INS. A change of a trait or of the INS falls back to a provisional
    identity (it must be checked again), as identity-vigilance rules require."""
    values = _clean_identity(data)
    with transaction.atomic():
        patient = Patient.objects.select_for_update().get(pk=patient.pk)
        changed = sorted(k for k, v in values.items() if getattr(patient, k) != v)
        if not changed:
            return patient
        if values["ins"] and (
            Patient.objects.filter(ins=values["ins"], ins_oid=values["ins_oid"])
            .exclude(pk=patient.pk)
            .exists()
        ):
            raise ValidationError({"ins": "Un autre patient porte déjà ce matricule INS."})
        previous_status = patient.identity_status
        for key, value in values.items():
            setattr(patient, key, value)
        identity_fields = set(changed) - {"used_family_name", "used_given_name"}
        if identity_fields and previous_status != IdentityStatus.PROVISIONAL:
            patient.identity_status = IdentityStatus.PROVISIONAL
            patient.evidence = ""
            patient.insi_checked_at = None  # the INSi check was about the old traits
            patient.status_set_by = actor
            patient.status_set_at = timezone.now()
            IdentityStatusChange.objects.create(
                patient=patient,
                previous_status=previous_status,
                status=IdentityStatus.PROVISIONAL,
                reason="Traits ou matricule modifiés : identité à vérifier de nouveau.",
                actor=actor,
            )
        patient.full_clean(exclude=["created_by", "status_set_by"])
        patient.save()
        audit_record(
            action="patient.update",
            request=request,
            actor=actor,
            target=patient,
            patient_ins=patient.ins,
            detail={"fields": changed, "identity_status": patient.identity_status},
        )
    return patient


# --- Patient choices --------------------------------------------------------------------------------


def consent_record(
    *,
    patient: Patient,
    kind: str,
    actor: Any,
    professional: Any = None,
    note: str = "",
    request: HttpRequest | None = None,
) -> Consent:
    if kind not in ConsentKind.values:
        raise ValidationError({"kind": "Nature de choix inconnue."})
    if kind == ConsentKind.DMP_ACCESS_AUTHORISATION and professional is None:
        raise ValidationError({"professional": "Indiquez le professionnel autorisé."})
    if kind == ConsentKind.DMP_FEEDING_OPPOSITION:
        professional = None
    with transaction.atomic():
        Patient.objects.select_for_update().get(pk=patient.pk)  # serialise choices of one patient
        active = Consent.objects.filter(
            patient=patient, kind=kind, professional=professional, withdrawn_at__isnull=True
        )
        if active.exists():
            raise ValidationError({"kind": "Ce choix est déjà enregistré et en vigueur."})
        consent = Consent.objects.create(
            patient=patient, kind=kind, professional=professional, note=note[:255], recorded_by=actor
        )
        audit_record(
            action="patient.consent.record",
            request=request,
            actor=actor,
            target=consent,
            patient_ins=patient.ins,
            detail={"kind": kind, "professional": getattr(professional, "pk", None)},
        )
    return consent


def consent_withdraw(*, consent: Consent, actor: Any, request: HttpRequest | None = None) -> Consent:
    with transaction.atomic():
        consent = Consent.objects.select_for_update().select_related("patient").get(pk=consent.pk)
        if consent.withdrawn_at is not None:
            raise ValidationError("Ce choix a déjà été retiré.")
        consent.withdrawn_at = timezone.now()
        consent.withdrawn_by = actor
        consent.save(update_fields=["withdrawn_at", "withdrawn_by"])
        audit_record(
            action="patient.consent.withdraw",
            request=request,
            actor=actor,
            target=consent,
            patient_ins=consent.patient.ins,
            detail={"kind": consent.kind},
        )
    return consent
