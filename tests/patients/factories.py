"""Factories of patient identities: provisional by default; traits ``with_ins``, ``retrieved``,
``validated``, ``qualified``. Matricules are generated with a correct mod-97 key (test OID)."""

import datetime as dt
from typing import Any, cast

import factory

from enrs.accounts.models import User
from enrs.patients import ins
from enrs.patients.models import (
    Consent,
    ConsentKind,
    EvidenceKind,
    IdentityStatus,
    InsOid,
    Patient,
    Sex,
)
from tests.factories import UserFactory


def matricule(n: int) -> str:
    """A valid 15-character matricule: a woman born in March 1979 in the Marne, serial `n`."""
    body = f"2790351{(215_000 + n) % 1_000_000:06d}"
    return body + ins.mod97_key(body)


class PatientFactory(factory.django.DjangoModelFactory[Patient]):
    class Meta:
        model = Patient

    birth_family_name = factory.Sequence(lambda n: f"MARTIN{chr(65 + n % 26)}{n}")
    birth_given_names = "CLAIRE MARIE"
    first_given_name = "CLAIRE"
    sex = Sex.FEMALE
    birth_date = dt.date(1979, 3, 28)
    birth_place_insee = "51215"
    identity_status = IdentityStatus.PROVISIONAL
    created_by = factory.SubFactory(UserFactory)

    class Params:
        with_ins = factory.Trait(
            ins=factory.Sequence(matricule),
            ins_oid=InsOid.NIR_TEST,
        )
        retrieved = factory.Trait(
            with_ins=True,
            identity_status=IdentityStatus.RETRIEVED,
            insi_checked_at=factory.LazyFunction(lambda: dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)),
        )
        validated = factory.Trait(identity_status=IdentityStatus.VALIDATED, evidence=EvidenceKind.ID_CARD)
        qualified = factory.Trait(
            with_ins=True,
            identity_status=IdentityStatus.QUALIFIED,
            evidence=EvidenceKind.ID_CARD,
            insi_checked_at=factory.LazyFunction(lambda: dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)),
        )


class ConsentFactory(factory.django.DjangoModelFactory[Consent]):
    class Meta:
        model = Consent

    patient = factory.SubFactory(PatientFactory)
    kind = ConsentKind.DMP_FEEDING_OPPOSITION
    recorded_by = factory.SubFactory(UserFactory)


def make_patient(**kwargs: Any) -> Patient:
    """`PatientFactory(...)` typed as what it returns (factory_boy's stubs say Factory)."""
    return cast(Patient, PatientFactory(**kwargs))


def make_consent(**kwargs: Any) -> Consent:
    return cast(Consent, ConsentFactory(**kwargs))


def make_user(**kwargs: Any) -> User:
    return cast(User, UserFactory(**kwargs))
