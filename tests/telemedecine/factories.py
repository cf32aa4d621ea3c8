"""Factories of the telemedecine tests (shared by every test module of the app).

* ``PoolFactory`` (an on-call pool of a hospital), ``ShiftFactory`` (a rota slot of a member, now ± 4 h),
  ``ActFactory`` (a draft téléexpertise request; traits ``to_pool``), ``ParticipantFactory``,
  ``IncidentFactory``.
* ``make_physician()`` — an account linked to a physician of the directory working in a structure
  (what the report's CDA and the DMP need), ``make_mailbox(user)`` — that physician's hosted MSSanté box.
* ``act_in_state(status, ...)`` — an act driven to ``status`` through the real services (so its trace,
  times and expert are what the workflow writes), with ``requester`` / ``expert`` returned alongside.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, cast

import factory
from django.conf import settings
from django.utils import timezone

from annuaire.models import MailboxKind, Professional, Structure
from enrs.accounts.models import User
from enrs.patients.models import Patient
from telemedecine.models import (
    Act,
    ActStatus,
    ActType,
    ConsentStatus,
    Incident,
    Participant,
    ParticipantRole,
    Pool,
    Shift,
    Urgency,
)
from telemedecine.services import acts as act_services
from tests.annuaire.factories import ExerciceFactory, ProfessionalFactory, StructureFactory
from tests.factories import UserFactory
from tests.patients.factories import PatientFactory


class PoolFactory(factory.django.DjangoModelFactory[Pool]):
    class Meta:
        model = Pool
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Neurologues de garde - télé-AVC {n}")
    specialty = "Neurologie"
    structure = factory.SubFactory(StructureFactory)

    @factory.post_generation
    def members(self, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create and extracted:
            self.members.add(*extracted)


class ShiftFactory(factory.django.DjangoModelFactory[Shift]):
    class Meta:
        model = Shift

    pool = factory.SubFactory(PoolFactory)
    user = factory.SubFactory(UserFactory)
    starts_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(hours=4))
    ends_at = factory.LazyAttribute(lambda o: o.starts_at + dt.timedelta(hours=8))


class ActFactory(factory.django.DjangoModelFactory[Act]):
    """A draft request; its requested professional is set unless ``to_pool``."""

    class Meta:
        model = Act

    act_type = ActType.TELEEXPERTISE
    urgency = Urgency.URGENT
    patient = factory.SubFactory(PatientFactory)
    requester = factory.SubFactory(UserFactory)
    requester_structure = factory.SubFactory(StructureFactory)
    requested_professional = factory.SubFactory(UserFactory)
    pool = None
    clinical_question = "Scanner cérébral : hypodensité sylvienne gauche ? Indication de thrombolyse ?"

    class Params:
        to_pool = factory.Trait(requested_professional=None, pool=factory.SubFactory(PoolFactory))


class ParticipantFactory(factory.django.DjangoModelFactory[Participant]):
    class Meta:
        model = Participant

    act = factory.SubFactory(ActFactory)
    user = None
    name = "Infirmière de l'EHPAD"
    role = ParticipantRole.CARE_STAFF


class IncidentFactory(factory.django.DjangoModelFactory[Incident]):
    class Meta:
        model = Incident

    act = factory.SubFactory(ActFactory)
    code = Incident.Code.NETWORK
    description = "Coupure de 2 minutes"
    reported_by = factory.SubFactory(UserFactory)
    occurred_at = factory.LazyFunction(timezone.now)


def make_user(**fields: Any) -> User:
    return cast(User, UserFactory(**fields))


def make_structure(**fields: Any) -> Structure:
    return cast(Structure, StructureFactory(**fields))


def make_patient(**fields: Any) -> Patient:
    return cast(Patient, PatientFactory(**fields))


def make_pool(**fields: Any) -> Pool:
    return cast(Pool, PoolFactory(**fields))


@dataclass
class Physician:
    user: User
    professional: Professional
    structure: Structure


def make_physician(*, structure: Structure | None = None, **user_fields: Any) -> Physician:
    """An account linked (IdNat_PS) to an active physician of the directory working in ``structure``."""
    professional = cast(Professional, ProfessionalFactory(physician=True))
    structure = structure or cast(Structure, StructureFactory())
    ExerciceFactory(professional=professional, structure=structure)
    user = cast(User, UserFactory(idnat_ps=professional.idnat_ps, **user_fields))
    return Physician(user=user, professional=professional, structure=structure)


def make_mailbox(physician: Physician) -> Any:
    """The physician's personal MSSanté box on the hosted domain."""
    from messagerie.models import Mailbox

    domain = str(settings.MSSANTE_HOSTED_DOMAINS[0])
    return Mailbox.objects.create(
        address=f"dr.{physician.professional.pk}.{physician.user.pk}@{domain}",
        kind=MailboxKind.PERSONAL,
        display_name=str(physician.professional),
        owner=physician.user,
        professional=physician.professional,
        created_by=physician.user,
    )


@dataclass
class Scenario:
    act: Act
    requester: User
    expert: User | None


_PATH = [
    ActStatus.DRAFT,
    ActStatus.SENT,
    ActStatus.ACCEPTED,
    ActStatus.IN_PROGRESS,
    ActStatus.REPORT_SIGNED,
    ActStatus.CLOSED,
]


def act_in_state(
    status: str,
    *,
    requester: User | None = None,
    expert: User | None = None,
    pool: Pool | None = None,
    patient: Patient | None = None,
    **fields: Any,
) -> Scenario:
    """An act brought to ``status`` through the services (refused / cancelled / expired: from ``sent``)."""
    requester = requester or cast(User, UserFactory())
    expert = expert or (None if pool is not None else cast(User, UserFactory()))
    values: dict[str, Any] = {
        "actor": requester,
        "act_type": ActType.TELEEXPERTISE,
        "patient": patient or PatientFactory(),
        "requester_structure": StructureFactory(),
        "clinical_question": "Avis sur le scanner cérébral.",
        "urgency": Urgency.URGENT,
    }
    values.update(fields)
    if pool is not None:
        values["pool"] = pool
    else:
        values["requested_professional"] = expert
    act = act_services.act_create(**values)
    if status == ActStatus.DRAFT:
        return Scenario(act, requester, None)
    act = act_services.act_send(act=act, actor=requester)
    if status == ActStatus.REFUSED:
        answerer = expert if expert is not None else cast(Pool, pool).members.first()
        act = act_services.act_refuse(act=act, actor=answerer, reason="Hors de mon domaine.")
        return Scenario(act, requester, None)
    if status == ActStatus.CANCELLED:
        return Scenario(
            act_services.act_cancel(act=act, actor=requester, reason="Patient transféré."), requester, None
        )
    if status == ActStatus.EXPIRED:
        act_services.acts_expire(now=act.expires_at)
        act.refresh_from_db()
        return Scenario(act, requester, None)
    if status == ActStatus.SENT:
        return Scenario(act, requester, None)
    if expert is None:
        assert pool is not None
        expert = pool.members.first()
    act = act_services.act_accept(act=act, actor=expert)
    target = _PATH.index(ActStatus(status))
    if target >= _PATH.index(ActStatus.IN_PROGRESS):
        act = act_services.consent_record(act=act, status=ConsentStatus.GIVEN, collected_by=requester)
        act = act_services.act_start(act=act, actor=expert)
    if target >= _PATH.index(ActStatus.REPORT_SIGNED):
        act = act_services.act_sign_report(
            act=act,
            actor=expert,
            report_text="Pas de signe d'AVC ischémique constitué. Thrombolyse possible.",
            prescriptions="Altéplase 0,9 mg/kg.",
        )
    if target >= _PATH.index(ActStatus.CLOSED):
        act = act_services.act_close(act=act, actor=expert)
    return Scenario(act, requester, expert)
