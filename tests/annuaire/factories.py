"""Factories of the annuaire app: valid identifiers by default (FINESS, SIREN/SIRET, RPPS keys)."""

import factory

from annuaire.models import (
    Adherent,
    AdherentStatus,
    College,
    Commune,
    Department,
    Exercice,
    ExerciseMode,
    IdentifierType,
    MailboxAddress,
    MailboxKind,
    Professional,
    Structure,
    StructureKind,
)
from annuaire.standards import identifiers

# Serials away from those of seed_demo, so that factories and demo data never collide.
_FINESS_SERIAL = 600_000
_SIREN_SERIAL = 5_000_000
_RPPS_SERIAL = 70_000_000


class DepartmentFactory(factory.django.DjangoModelFactory[Department]):
    class Meta:
        model = Department
        django_get_or_create = ("code",)

    code = "35"
    name = "Ille-et-Vilaine"
    region_code = "53"


class CommuneFactory(factory.django.DjangoModelFactory[Commune]):
    class Meta:
        model = Commune
        django_get_or_create = ("insee_code",)

    insee_code = factory.Sequence(lambda n: f"35{n % 1000:03d}")
    name = factory.Sequence(lambda n: f"Commune {n}")
    department = factory.SubFactory(DepartmentFactory)
    postal_code = "35000"
    latitude = 48.11
    longitude = -1.68


class StructureFactory(factory.django.DjangoModelFactory[Structure]):
    """A geographic site (ET) with its FINESS; traits: ``legal_entity``, ``without_finess``."""

    class Meta:
        model = Structure

    kind = StructureKind.SITE
    finess_et = factory.Sequence(lambda n: identifiers.finess_generate("35", _FINESS_SERIAL + n))
    finess_ej = ""
    siren = factory.Sequence(lambda n: identifiers.siren_generate(_SIREN_SERIAL + n))
    siret = factory.LazyAttribute(lambda o: identifiers.siret_generate(o.siren, 1) if o.siren else "")
    name = factory.Sequence(lambda n: f"Centre hospitalier {n}")
    category_code = "355"
    category_label = "Centre hospitalier (CH)"
    sector_code = "SA01"
    sector_label = "Etablissement public de santé"
    address_line = "1 rue de l'Hôpital"
    commune = factory.SubFactory(CommuneFactory)
    postal_code = factory.LazyAttribute(lambda o: o.commune.postal_code if o.commune else "")

    class Params:
        legal_entity = factory.Trait(
            kind=StructureKind.LEGAL_ENTITY,
            finess_et=None,
            finess_ej=factory.Sequence(
                lambda n: identifiers.finess_generate("35", _FINESS_SERIAL + 100_000 + n)
            ),
            siret="",
        )
        without_finess = factory.Trait(
            finess_et=None,
            category_code="",
            category_label="",
            sector_code="SA08",
            sector_label="Cabinet de groupe",
            name=factory.Sequence(lambda n: f"Cabinet médical {n}"),
        )


class ProfessionalFactory(factory.django.DjangoModelFactory[Professional]):
    """A nurse with an RPPS (valid key); traits: ``physician``, ``with_adeli``."""

    class Meta:
        model = Professional

    identifier_type = IdentifierType.RPPS
    rpps = factory.Sequence(lambda n: identifiers.rpps_generate(_RPPS_SERIAL + n))
    adeli = ""
    idnat_ps = factory.LazyAttribute(
        lambda o: "8" + o.rpps if o.identifier_type == IdentifierType.RPPS else "0" + o.adeli
    )
    civility_code = "MME"
    last_name = factory.Faker("last_name", locale="fr_FR")
    first_name = factory.Faker("first_name_female", locale="fr_FR")
    profession_code = "60"
    profession_label = "Infirmier"
    category_code = "C"

    class Params:
        physician = factory.Trait(
            profession_code="10",
            profession_label="Médecin",
            specialty_code="SM54",
            specialty_label="Médecine Générale",
        )
        with_adeli = factory.Trait(
            identifier_type=IdentifierType.ADELI,
            rpps="",
            adeli=factory.Sequence(lambda n: f"35{n % 10_000_000:07d}"),
            rpps_key_valid=True,
        )


class ExerciceFactory(factory.django.DjangoModelFactory[Exercice]):
    class Meta:
        model = Exercice

    professional = factory.SubFactory(ProfessionalFactory)
    structure = factory.SubFactory(StructureFactory)
    role_code = "FON-33"
    exercise_mode = ExerciseMode.SALARIED


class MailboxAddressFactory(factory.django.DjangoModelFactory[MailboxAddress]):
    """A personal (PER) address; trait ``organizational`` for a structure's address."""

    class Meta:
        model = MailboxAddress

    kind = MailboxKind.PERSONAL
    professional = factory.SubFactory(ProfessionalFactory)
    structure = None
    address = factory.Sequence(lambda n: f"pro.{n}@medecin.mssante.fr")

    class Params:
        organizational = factory.Trait(
            kind=MailboxKind.ORGANIZATIONAL,
            professional=None,
            structure=factory.SubFactory(StructureFactory),
            address=factory.Sequence(lambda n: f"secretariat@structure-{n}.mssante.fr"),
        )


class AdherentFactory(factory.django.DjangoModelFactory[Adherent]):
    """A member structure in collège 1; trait ``liberal_physician`` for a professional in collège 4."""

    class Meta:
        model = Adherent

    structure = factory.SubFactory(StructureFactory, legal_entity=True)
    professional = None
    college = College.PUBLIC_ESTABLISHMENTS
    status = AdherentStatus.MEMBER
    membership_start = factory.Faker("date_between", start_date="-10y", end_date="-1y")

    class Params:
        liberal_physician = factory.Trait(
            structure=None,
            professional=factory.SubFactory(ProfessionalFactory, physician=True),
            college=College.LIBERAL_PHYSICIANS,
        )
