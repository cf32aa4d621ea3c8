"""Services of the GCS members: onboarding (directory structure and ORG mailbox created or linked), edits,
the membership state machine, fees, representatives, services used, convention files, and the audit
row written with each change (in the same transaction)."""

import datetime
from collections.abc import Callable
from decimal import Decimal
from typing import Any, cast

import pytest
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from annuaire.models import (
    Adherent,
    AdherentFee,
    AdherentRepresentative,
    AdherentService,
    AdherentStatus,
    College,
    FeeStatus,
    GoverningBody,
    MailboxAddress,
    MailboxKind,
    Professional,
    RepresentativeRole,
    Structure,
    StructureKind,
)
from annuaire.services import members as member_services
from annuaire.services.members import (
    StructureData,
    adherent_admit,
    adherent_exclude,
    adherent_fee_mark_paid,
    adherent_fee_record,
    adherent_onboard,
    adherent_representative_remove,
    adherent_representative_set,
    adherent_resign,
    adherent_services_set,
    adherent_transitions,
    adherent_update,
)
from annuaire.standards import identifiers
from enrs.accounts.models import User
from enrs.audit.models import AuditEvent
from tests.annuaire.factories import (
    AdherentFactory,
    CommuneFactory,
    MailboxAddressFactory,
    ProfessionalFactory,
    StructureFactory,
)
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def new_structure(**kwargs: Any) -> Structure:
    return cast(Structure, StructureFactory(**kwargs))


def new_professional(**kwargs: Any) -> Professional:
    return cast(Professional, ProfessionalFactory(**kwargs))


def new_mailbox(**kwargs: Any) -> MailboxAddress:
    return cast(MailboxAddress, MailboxAddressFactory(**kwargs))


DOMAIN = "gcs-test.mssante.fr"
TODAY = datetime.date(2025, 6, 15)
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"


@pytest.fixture(autouse=True)
def _settings(settings: Any) -> None:
    """Conventions in memory (no file left behind), a known MSSanté domain."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    }
    settings.ENRS_MSSANTE_DOMAIN = DOMAIN


@pytest.fixture
def staff() -> User:
    return cast(User, UserFactory(gcs_staff=True, username="equipe.gcs"))


def pdf(name: str = "convention.pdf", content: bytes = PDF) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/pdf")


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def errors_of(error: pytest.ExceptionInfo[ValidationError]) -> dict[str, list[str]]:
    return error.value.message_dict


def new_finess(serial: int) -> str:
    return identifiers.finess_generate("35", 900_000 + serial)


def new_siret(serial: int) -> str:
    return identifiers.siret_generate(identifiers.siren_generate(9_000_000 + serial), 1)


def member(status: str = AdherentStatus.MEMBER, **kwargs: Any) -> Adherent:
    defaults: dict[str, Any] = {"membership_start": datetime.date(2020, 3, 1), "convention_signed_on": None}
    if status == AdherentStatus.CANDIDATE:
        defaults["membership_start"] = None
    if status in (AdherentStatus.RESIGNED, AdherentStatus.EXCLUDED):
        defaults["membership_end"] = datetime.date(2023, 12, 31)
    defaults.update(kwargs)
    return cast(Adherent, AdherentFactory(status=status, **defaults))


def candidate(**kwargs: Any) -> Adherent:
    kwargs.setdefault("convention_signed_on", datetime.date(2025, 1, 10))
    return member(AdherentStatus.CANDIDATE, **kwargs)


# --- Onboarding a structure ---------------------------------------------------------------------------


def test_onboarding_a_new_structure_creates_it_with_its_org_mailbox_as_a_candidate(staff: User) -> None:
    commune = CommuneFactory(insee_code="35238", name="Rennes", postal_code="35000")
    finess = new_finess(1)
    siret = new_siret(1)

    adherent = adherent_onboard(
        actor=staff,
        college=College.PUBLIC_ESTABLISHMENTS,
        structure_data=StructureData(
            name="  Centre  hospitalier de   Vitré ",
            finess_et=f"{finess[:3]} {finess[3:]}",
            siret=siret,
            commune_insee_code="35238",
            address_line="30 route de Rennes",
        ),
        mailbox_local_part="Secretariat.Direction",
        services=["messagerie", "annuaire", "messagerie"],
        convention_signed_on=datetime.date(2025, 1, 10),
    )

    adherent.refresh_from_db()
    assert adherent.status == AdherentStatus.CANDIDATE
    assert adherent.college == College.PUBLIC_ESTABLISHMENTS
    assert adherent.membership_start is None
    assert adherent.convention_signed_on == datetime.date(2025, 1, 10)
    assert adherent.status_changed_at is not None
    structure = adherent.structure
    assert structure is not None
    assert structure.kind == StructureKind.SITE
    assert structure.finess_et == finess
    assert structure.name == "Centre hospitalier de Vitré"
    assert (structure.siret, structure.siren) == (siret, siret[:9])
    assert structure.commune == commune
    assert structure.postal_code == "35000"
    mailbox = MailboxAddress.objects.get(structure=structure)
    assert mailbox.address == f"secretariat.direction@{DOMAIN}"
    assert mailbox.kind == MailboxKind.ORGANIZATIONAL
    services = list(adherent.services.order_by("service").values_list("service", "since"))
    assert services == [("annuaire", timezone.localdate()), ("messagerie", timezone.localdate())]

    [event] = events("annuaire.adherent.onboard")
    assert event.actor == staff
    assert (event.target_type, event.target_id) == ("annuaire.adherent", str(adherent.pk))
    assert event.detail["member"] == {
        "type": "structure",
        "id": structure.pk,
        "name": "Centre hospitalier de Vitré",
        "finess_et": finess,
        "finess_ej": "",
        "siret": siret,
        "created": True,
    }
    assert event.detail["mailbox"] == {"id": mailbox.pk, "address": mailbox.address, "created": True}
    assert event.detail["services"] == ["annuaire", "messagerie"]
    assert event.detail["changes"] == {
        "status": {"before": None, "after": "candidate"},
        "college": {"before": None, "after": 1},
        "convention_signed_on": {"before": None, "after": "2025-01-10"},
    }


def test_onboarding_links_the_directory_structure_and_its_existing_org_mailbox(staff: User) -> None:
    structure = new_structure()
    mailbox = new_mailbox(organizational=True, structure=structure)
    structures_before = Structure.objects.count()

    adherent = adherent_onboard(
        actor=staff,
        college=College.PUBLIC_ESTABLISHMENTS,
        structure_data=StructureData(name="Nom saisi ignoré", finess_et=structure.finess_et or ""),
    )

    assert adherent.structure == structure
    assert Structure.objects.count() == structures_before
    structure.refresh_from_db()
    assert structure.name != "Nom saisi ignoré"  # the directory's data is not overwritten
    assert list(MailboxAddress.objects.filter(structure=structure)) == [mailbox]
    [event] = events("annuaire.adherent.onboard")
    assert event.detail["member"]["created"] is False
    assert event.detail["mailbox"] == {"id": mailbox.pk, "address": mailbox.address, "created": False}


def test_onboarding_an_existing_structure_without_org_mailbox_creates_one(staff: User) -> None:
    structure = new_structure()
    new_mailbox(professional=new_professional())  # someone's personal address: not the structure's

    adherent = adherent_onboard(
        actor=staff,
        college=College.HOME_HOSPITALISATION,
        structure=structure,
        mailbox_local_part="had",
    )

    assert adherent.structure == structure
    assert MailboxAddress.objects.get(structure=structure).address == f"had@{DOMAIN}"


def test_onboarding_finds_a_legal_entity_by_its_finess_ej_and_a_cabinet_by_its_siret(staff: User) -> None:
    legal_entity = new_structure(legal_entity=True)
    cabinet = new_structure(without_finess=True)
    new_mailbox(organizational=True, structure=legal_entity)
    new_mailbox(organizational=True, structure=cabinet)

    first = adherent_onboard(
        actor=staff,
        college=College.PRIVATE_ESTABLISHMENTS,
        structure_data=StructureData(finess_ej=legal_entity.finess_ej),
    )
    second = adherent_onboard(
        actor=staff,
        college=College.HEALTH_SERVICES_AND_NETWORKS,
        structure_data=StructureData(siret=cabinet.siret),
    )

    assert (first.structure, second.structure) == (legal_entity, cabinet)


def test_onboarding_creates_a_legal_entity_when_only_a_finess_ej_is_given(staff: User) -> None:
    finess_ej = new_finess(2)
    adherent = adherent_onboard(
        actor=staff,
        college=College.MEDICO_SOCIAL_ESTABLISHMENTS,
        structure_data=StructureData(name="Association Les Ajoncs", finess_ej=finess_ej),
        mailbox_address="Accueil@Ajoncs.MSSANTE.fr",
    )
    structure = adherent.structure
    assert structure is not None
    assert (structure.kind, structure.finess_ej, structure.finess_et) == (
        StructureKind.LEGAL_ENTITY,
        finess_ej,
        None,
    )
    assert MailboxAddress.objects.get(structure=structure).address == "accueil@ajoncs.mssante.fr"


def test_a_new_site_is_attached_to_its_legal_entity_when_the_directory_has_it(staff: User) -> None:
    legal_entity = new_structure(legal_entity=True)
    adherent = adherent_onboard(
        actor=staff,
        college=College.PUBLIC_ESTABLISHMENTS,
        structure_data=StructureData(
            name="Site de Redon", finess_et=new_finess(3), finess_ej=legal_entity.finess_ej
        ),
        mailbox_local_part="redon",
    )
    assert adherent.structure is not None
    assert adherent.structure.legal_entity == legal_entity


def test_a_wrong_finess_key_is_refused_in_french_and_nothing_is_written(staff: User) -> None:
    good = new_finess(4)
    wrong = good[:-1] + str((int(good[-1]) + 1) % 10)
    structures = Structure.objects.count()

    with pytest.raises(ValidationError) as error:
        adherent_onboard(
            actor=staff,
            college=College.PUBLIC_ESTABLISHMENTS,
            structure_data=StructureData(name="CH", finess_et=wrong),
            mailbox_local_part="accueil",
        )

    assert errors_of(error) == {
        "finess_et": [
            "Numéro FINESS invalide : 9 caractères dont la clé de contrôle (Luhn) en dernière position."
        ]
    }
    assert Structure.objects.count() == structures
    assert not Adherent.objects.exists()
    assert not MailboxAddress.objects.exists()
    assert not events("annuaire.adherent.onboard")


def test_every_shape_error_is_reported_at_once_next_to_its_field(staff: User) -> None:
    with pytest.raises(ValidationError) as error:
        adherent_onboard(
            actor=staff,
            college=9,
            structure_data=StructureData(
                name="CH", finess_et="35000000X", finess_ej="350000001", siret="1234"
            ),
            mailbox_local_part="accueil..général",
            services=["annuaire", "bitcoin"],
            convention_signed_on=timezone.localdate() + datetime.timedelta(days=1),
        )
    messages = errors_of(error)
    assert set(messages) == {
        "finess_et",
        "finess_ej",
        "siret",
        "college",
        "mailbox_local_part",
        "services",
        "convention_signed_on",
    }
    assert messages["siret"] == ["Numéro SIRET invalide : 14 chiffres dont la clé de Luhn."]
    assert messages["college"] == ["Collège inconnu : choisissez un collège de 1 à 8."]
    assert messages["services"] == ["Service inconnu : bitcoin."]
    assert "Partie locale invalide" in messages["mailbox_local_part"][0]
    assert messages["convention_signed_on"] == [
        "La date de signature de la convention ne peut pas être dans le futur."
    ]


def test_a_structure_needs_an_identifier_and_a_new_one_a_name(staff: User) -> None:
    with pytest.raises(ValidationError) as error:
        adherent_onboard(actor=staff, college=1, structure_data=StructureData(name="Sans numéro"))
    assert errors_of(error) == {
        NON_FIELD_ERRORS: [
            "Indiquez au moins un identifiant de la structure : FINESS géographique, "
            "FINESS juridique ou SIRET."
        ]
    }

    with pytest.raises(ValidationError) as error:
        adherent_onboard(
            actor=staff,
            college=1,
            structure_data=StructureData(finess_et=new_finess(5)),
            mailbox_local_part="a",
        )
    assert list(errors_of(error)) == ["name"]
    assert "raison sociale" in errors_of(error)["name"][0]

    with pytest.raises(ValidationError) as error:
        adherent_onboard(
            actor=staff,
            college=1,
            structure_data=StructureData(name="CH", finess_et=new_finess(5), commune_insee_code="99999"),
            mailbox_local_part="a",
        )
    assert errors_of(error) == {"commune_insee_code": ["Aucune commune n'a le code INSEE « 99999 »."]}


def test_an_address_owned_by_someone_else_is_refused_and_the_new_structure_rolls_back(staff: User) -> None:
    owner = new_structure()
    new_mailbox(organizational=True, structure=owner, address=f"accueil@{DOMAIN}")
    structures = Structure.objects.count()

    with pytest.raises(ValidationError) as error:
        adherent_onboard(
            actor=staff,
            college=1,
            structure_data=StructureData(name="CH neuf", finess_et=new_finess(6)),
            mailbox_local_part="accueil",
        )

    assert errors_of(error) == {
        "mailbox_local_part": [
            f"L'adresse accueil@{DOMAIN} appartient déjà à la structure « {owner.name} » (organisationnelle)."
        ]
    }
    assert Structure.objects.count() == structures  # created inside the transaction, rolled back with it
    assert not Adherent.objects.exists()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"mailbox_address": "146026322000196@patient.mssante.fr"}, "mailbox_address"),
        ({"mailbox_address": "accueil@gmail.com"}, "mailbox_address"),
        ({"mailbox_address": "pas-une-adresse"}, "mailbox_address"),
        ({"mailbox_address": "a@b.mssante.fr", "mailbox_local_part": "a"}, "mailbox_address"),
        ({}, "mailbox_local_part"),  # a structure without ORG address must get one
    ],
)
def test_org_mailbox_rules(staff: User, kwargs: dict[str, Any], field: str) -> None:
    structure = new_structure()
    with pytest.raises(ValidationError) as error:
        adherent_onboard(actor=staff, college=1, structure=structure, **kwargs)
    assert list(errors_of(error)) == [field]
    assert not Adherent.objects.exists()


def test_a_structure_has_one_ongoing_membership_at_a_time(staff: User) -> None:
    current = member()
    assert current.structure is not None
    new_mailbox(organizational=True, structure=current.structure)

    with pytest.raises(ValidationError) as error:
        adherent_onboard(actor=staff, college=1, structure=current.structure)
    assert errors_of(error)[NON_FIELD_ERRORS] == [
        f"La structure « {current.structure.name} » a déjà une adhésion en cours au GCS "
        f"(adhérent n° {current.pk}, statut « Membre »)."
    ]

    adherent_resign(adherent=current, actor=staff)
    again = adherent_onboard(actor=staff, college=1, structure=current.structure)
    assert again.status == AdherentStatus.CANDIDATE
    assert again.pk != current.pk


def test_a_closed_structure_cannot_join(staff: User) -> None:
    structure = new_structure(is_active=False)
    new_mailbox(organizational=True, structure=structure)
    with pytest.raises(ValidationError) as error:
        adherent_onboard(actor=staff, college=1, structure=structure)
    assert "fermée" in errors_of(error)[NON_FIELD_ERRORS][0]


def test_onboarding_needs_exactly_one_member(staff: User) -> None:
    with pytest.raises(ValidationError, match="soit une structure, soit un professionnel"):
        adherent_onboard(actor=staff, college=1)
    with pytest.raises(ValidationError, match="soit une structure, soit un professionnel"):
        adherent_onboard(
            actor=staff,
            college=4,
            structure=new_structure(),
            professional=new_professional(physician=True),
        )


# --- Onboarding a professional --------------------------------------------------------------------------


def test_a_liberal_physician_joins_college_4_without_org_mailbox(staff: User) -> None:
    physician = new_professional(physician=True)
    adherent = adherent_onboard(actor=staff, college=College.LIBERAL_PHYSICIANS, professional=physician)
    assert (adherent.professional, adherent.structure, adherent.status) == (
        physician,
        None,
        AdherentStatus.CANDIDATE,
    )
    assert not MailboxAddress.objects.exists()
    [event] = events("annuaire.adherent.onboard")
    assert event.detail["member"] == {
        "type": "professional",
        "id": physician.pk,
        "idnat_ps": physician.idnat_ps,
    }
    assert "mailbox" not in event.detail


@pytest.mark.parametrize(
    ("physician", "college", "message"),
    [
        (True, College.PUBLIC_ESTABLISHMENTS, "Un professionnel adhère en son nom dans le collège 4"),
        (False, College.LIBERAL_PHYSICIANS, "ce professionnel n'est pas médecin"),
        (True, College.OTHER_LIBERAL_PROFESSIONALS, "Un médecin libéral adhère dans le collège 4"),
    ],
)
def test_a_professional_joins_the_liberal_college_of_their_profession(
    staff: User, physician: bool, college: College, message: str
) -> None:
    professional = new_professional(physician=True) if physician else new_professional()
    with pytest.raises(ValidationError) as error:
        adherent_onboard(actor=staff, college=college, professional=professional)
    assert message in errors_of(error)["college"][0]


def test_a_nurse_joins_college_5_and_gets_no_org_mailbox(staff: User) -> None:
    nurse = new_professional()
    with pytest.raises(ValidationError) as error:
        adherent_onboard(actor=staff, college=5, professional=nurse, mailbox_local_part="cabinet")
    assert list(errors_of(error)) == ["mailbox_local_part"]
    assert adherent_onboard(actor=staff, college=5, professional=nurse).college == 5


# --- Convention documents --------------------------------------------------------------------------------


def test_a_signed_convention_is_stored_through_the_storage_api_under_our_name(staff: User) -> None:
    structure = new_structure()
    new_mailbox(organizational=True, structure=structure)
    adherent = adherent_onboard(
        actor=staff,
        college=1,
        structure=structure,
        convention_signed_on=datetime.date(2025, 1, 10),
        convention_document=pdf("../../etc/passwd.pdf"),
    )
    name = adherent.convention_document.name or ""
    year = timezone.localdate().year
    assert name.startswith(f"annuaire/conventions/{year}/convention-adherent-{adherent.pk}-")
    assert name.endswith(".pdf")
    assert default_storage.exists(name)
    with default_storage.open(name, "rb") as handle:
        assert handle.read() == PDF
    assert events("annuaire.adherent.onboard")[0].detail["changes"]["convention_document"] == {
        "before": None,
        "after": name,
    }


@pytest.mark.parametrize(
    ("upload", "message"),
    [
        (pdf("convention.docx"), "La convention doit être un fichier PDF (extension .pdf)."),
        (pdf(content=b"MZ\x90\x00 not a pdf"), "Le contenu du fichier n'est pas celui d'un PDF"),
        (pdf(content=b"<html>%PDF-1.4"), "Le contenu du fichier n'est pas celui d'un PDF"),
        (pdf(content=b""), "Le fichier de la convention est vide."),
        (pdf(content=PDF + b"x" * 2048), "Le fichier dépasse la taille maximale autorisée (2\xa0Ko)."),
    ],
)
def test_convention_upload_is_checked(
    staff: User, settings: Any, upload: SimpleUploadedFile, message: str
) -> None:
    settings.ENRS_MEMBER_CONVENTION_MAX_BYTES = 2048
    adherent = candidate()
    with pytest.raises(ValidationError) as error:
        adherent_update(adherent=adherent, actor=staff, data={}, convention_document=upload)
    assert list(errors_of(error)) == ["convention_document"]
    assert errors_of(error)["convention_document"][0].startswith(message)
    adherent.refresh_from_db()
    assert not adherent.convention_document
    assert not events("annuaire.adherent.update")


def test_a_stored_convention_is_deleted_when_the_transaction_fails(staff: User, monkeypatch: Any) -> None:
    structure = new_structure()
    new_mailbox(organizational=True, structure=structure)
    saved: list[str] = []
    real_store = member_services._convention_store

    def spy(adherent: Adherent, document: Any, stored: Any) -> str:
        saved.append(real_store(adherent, document, stored))
        return saved[-1]

    def broken_audit(**kwargs: Any) -> None:
        raise RuntimeError("audit down")

    monkeypatch.setattr(member_services, "_convention_store", spy)
    monkeypatch.setattr(member_services, "audit_record", broken_audit)
    with pytest.raises(RuntimeError):
        adherent_onboard(actor=staff, college=1, structure=structure, convention_document=pdf())
    assert saved
    assert not default_storage.exists(saved[0])
    assert not Adherent.objects.exists()  # no business write without its audit row


def test_replacing_the_convention_keeps_the_signed_original(staff: User) -> None:
    adherent = candidate()
    adherent_update(adherent=adherent, actor=staff, data={}, convention_document=pdf())
    first = adherent.convention_document.name or ""
    adherent_update(adherent=adherent, actor=staff, data={}, convention_document=pdf(content=PDF + b"v2"))
    second = adherent.convention_document.name or ""
    assert first != second
    assert default_storage.exists(first)
    assert default_storage.exists(second)
    last = events("annuaire.adherent.update")[-1]
    assert last.detail["changes"] == {"convention_document": {"before": first, "after": second}}


# --- Transitions -----------------------------------------------------------------------------------------


def test_admission_makes_a_candidate_a_member(staff: User) -> None:
    adherent = candidate(convention_signed_on=datetime.date(2025, 1, 10))
    adherent_admit(
        adherent=adherent,
        actor=staff,
        membership_start=datetime.date(2025, 2, 1),
        reason=" AG du 1er février ",
    )
    adherent.refresh_from_db()
    assert adherent.status == AdherentStatus.MEMBER
    assert adherent.membership_start == datetime.date(2025, 2, 1)
    assert adherent.status_reason == "AG du 1er février"
    assert adherent.status_changed_at is not None
    [event] = events("annuaire.adherent.admit")
    assert event.actor == staff
    assert event.target_id == str(adherent.pk)
    assert event.detail == {
        "changes": {
            "status": {"before": "candidate", "after": "member"},
            "membership_start": {"before": None, "after": "2025-02-01"},
            "status_reason": {"before": "", "after": "AG du 1er février"},
        }
    }
    assert [t.name for t in adherent_transitions(adherent)] == ["resign", "exclude"]


def test_admission_starts_today_by_default() -> None:
    adherent = candidate(convention_signed_on=datetime.date(2020, 1, 1))
    adherent_admit(adherent=adherent, actor=None)
    assert adherent.membership_start == timezone.localdate()


def test_admission_needs_a_signed_convention_and_cannot_start_before_it(staff: User) -> None:
    unsigned = candidate(convention_signed_on=None)
    with pytest.raises(ValidationError) as error:
        adherent_admit(adherent=unsigned, actor=staff)
    assert errors_of(error)[NON_FIELD_ERRORS][0].startswith("La convention n'est pas signée")

    signed = candidate(convention_signed_on=datetime.date(2025, 1, 10))
    with pytest.raises(ValidationError) as error:
        adherent_admit(adherent=signed, actor=staff, membership_start=datetime.date(2025, 1, 9))
    assert errors_of(error) == {
        "membership_start": [
            "L'adhésion ne peut pas commencer avant la signature de la convention (le 10/01/2025)."
        ]
    }
    for adherent in (unsigned, signed):
        adherent.refresh_from_db()
        assert adherent.status == AdherentStatus.CANDIDATE
    assert not events("annuaire.adherent.admit")


def test_resignation_ends_the_membership(staff: User) -> None:
    adherent = member(membership_start=datetime.date(2020, 3, 1))
    adherent_resign(
        adherent=adherent, actor=staff, membership_end=datetime.date(2024, 12, 31), reason="Fusion"
    )
    adherent.refresh_from_db()
    assert (adherent.status, adherent.membership_end, adherent.status_reason) == (
        AdherentStatus.RESIGNED,
        datetime.date(2024, 12, 31),
        "Fusion",
    )
    [event] = events("annuaire.adherent.resign")
    assert event.detail["changes"]["status"] == {"before": "member", "after": "resigned"}
    assert event.detail["changes"]["membership_end"] == {"before": None, "after": "2024-12-31"}
    assert adherent_transitions(adherent) == []


def test_a_membership_cannot_end_before_it_started(staff: User) -> None:
    adherent = member(membership_start=datetime.date(2020, 3, 1))
    with pytest.raises(ValidationError) as error:
        adherent_resign(adherent=adherent, actor=staff, membership_end=datetime.date(2020, 2, 28))
    assert errors_of(error) == {
        "membership_end": ["La fin d'adhésion ne peut pas précéder son début (le 01/03/2020)."]
    }


def test_exclusion_needs_a_reason(staff: User) -> None:
    adherent = member()
    with pytest.raises(ValidationError) as error:
        adherent_exclude(adherent=adherent, actor=staff, reason="   ")
    assert errors_of(error) == {"reason": ["Le motif de l'exclusion est obligatoire."]}
    adherent_exclude(adherent=adherent, actor=staff, reason="Cotisations impayées depuis trois ans")
    adherent.refresh_from_db()
    assert adherent.status == AdherentStatus.EXCLUDED
    assert adherent.membership_end == timezone.localdate()
    assert adherent.status_reason == "Cotisations impayées depuis trois ans"
    [event] = events("annuaire.adherent.exclude")
    assert event.detail["changes"]["status_reason"]["after"] == "Cotisations impayées depuis trois ans"


INVALID_TRANSITIONS = [
    (
        AdherentStatus.MEMBER,
        "admit",
        "Seul un candidat peut être admis : cet adhérent est au statut « Membre ».",
    ),
    (
        AdherentStatus.RESIGNED,
        "admit",
        "Seul un candidat peut être admis : cet adhérent est au statut « Démissionnaire ».",
    ),
    (
        AdherentStatus.EXCLUDED,
        "admit",
        "Seul un candidat peut être admis : cet adhérent est au statut « Exclu ».",
    ),
    (
        AdherentStatus.CANDIDATE,
        "resign",
        "Seul un membre peut démissionner : cet adhérent est au statut « Candidat ».",
    ),
    (
        AdherentStatus.RESIGNED,
        "resign",
        "Seul un membre peut démissionner : cet adhérent est au statut « Démissionnaire ».",
    ),
    (
        AdherentStatus.EXCLUDED,
        "resign",
        "Seul un membre peut démissionner : cet adhérent est au statut « Exclu ».",
    ),
    (
        AdherentStatus.CANDIDATE,
        "exclude",
        "Seul un membre peut être exclu : cet adhérent est au statut « Candidat ».",
    ),
    (
        AdherentStatus.RESIGNED,
        "exclude",
        "Seul un membre peut être exclu : cet adhérent est au statut « Démissionnaire ».",
    ),
    (
        AdherentStatus.EXCLUDED,
        "exclude",
        "Seul un membre peut être exclu : cet adhérent est au statut « Exclu ».",
    ),
]


@pytest.mark.parametrize(("status", "transition", "message"), INVALID_TRANSITIONS)
def test_invalid_transitions_are_refused_in_french(
    staff: User, status: str, transition: str, message: str
) -> None:
    adherent = member(status, convention_signed_on=datetime.date(2019, 1, 1))
    before = (adherent.status, adherent.membership_start, adherent.membership_end)
    services: dict[str, Callable[..., Adherent]] = {
        "admit": adherent_admit,
        "resign": adherent_resign,
        "exclude": adherent_exclude,
    }
    service = services[transition]
    kwargs: dict[str, Any] = {"reason": "motif"} if transition == "exclude" else {}
    with pytest.raises(ValidationError) as error:
        service(adherent=adherent, actor=staff, **kwargs)
    assert error.value.messages == [message]
    assert error.value.code == "invalid_transition"
    adherent.refresh_from_db()
    assert (adherent.status, adherent.membership_start, adherent.membership_end) == before
    assert not AuditEvent.objects.filter(action__startswith="annuaire.adherent.").exists()


def test_a_stale_copy_cannot_transition_twice(staff: User) -> None:
    adherent = member()
    stale = Adherent.objects.get(pk=adherent.pk)
    adherent_resign(adherent=adherent, actor=staff)
    with pytest.raises(ValidationError, match="Seul un membre peut être exclu"):
        adherent_exclude(adherent=stale, actor=staff, reason="trop tard")  # reloaded under lock: now resigned


# --- Edits -------------------------------------------------------------------------------------------------


def test_update_records_before_and_after_of_the_changed_fields(staff: User) -> None:
    adherent = member(college=College.PUBLIC_ESTABLISHMENTS, convention_signed_on=datetime.date(2020, 1, 1))
    adherent_update(
        adherent=adherent,
        actor=staff,
        data={
            "college": 2,
            "convention_signed_on": datetime.date(2020, 1, 1),
            "membership_start": datetime.date(2020, 3, 1),
        },
    )
    adherent.refresh_from_db()
    assert adherent.college == College.PRIVATE_ESTABLISHMENTS
    [event] = events("annuaire.adherent.update")
    assert event.detail == {"changes": {"college": {"before": 1, "after": 2}}}


def test_an_update_that_changes_nothing_writes_nothing(staff: User) -> None:
    adherent = member(college=College.PUBLIC_ESTABLISHMENTS)
    adherent_update(adherent=adherent, actor=staff, data={"college": 1})
    assert not events("annuaire.adherent.update")


def test_the_status_only_moves_by_transitions(staff: User) -> None:
    adherent = candidate()
    with pytest.raises(ValidationError, match="Le statut change par l'admission"):
        adherent_update(adherent=adherent, actor=staff, data={"status": AdherentStatus.MEMBER})


@pytest.mark.parametrize(
    ("status", "data", "field"),
    [
        (AdherentStatus.CANDIDATE, {"membership_start": datetime.date(2024, 1, 1)}, "membership_start"),
        (AdherentStatus.MEMBER, {"membership_start": None}, "membership_start"),
        (AdherentStatus.MEMBER, {"membership_end": datetime.date(2024, 1, 1)}, "membership_end"),
        (AdherentStatus.RESIGNED, {"membership_end": None}, "membership_end"),
        (AdherentStatus.RESIGNED, {"membership_end": datetime.date(2019, 1, 1)}, "membership_end"),
    ],
)
def test_dates_must_agree_with_the_status(staff: User, status: str, data: dict[str, Any], field: str) -> None:
    adherent = member(status)
    with pytest.raises(ValidationError) as error:
        adherent_update(adherent=adherent, actor=staff, data=data)
    assert list(errors_of(error)) == [field]


def test_a_professional_member_stays_in_a_liberal_college(staff: User) -> None:
    adherent = member(liberal_physician=True)
    with pytest.raises(ValidationError) as error:
        adherent_update(adherent=adherent, actor=staff, data={"college": College.PUBLIC_ESTABLISHMENTS})
    assert list(errors_of(error)) == ["college"]


def test_a_member_convention_date_cannot_be_erased(staff: User) -> None:
    adherent = member(convention_signed_on=datetime.date(2020, 1, 1))
    with pytest.raises(ValidationError) as error:
        adherent_update(adherent=adherent, actor=staff, data={"convention_signed_on": None})
    assert list(errors_of(error)) == ["convention_signed_on"]


# --- Fees --------------------------------------------------------------------------------------------------


def test_a_fee_is_called_then_paid(staff: User) -> None:
    adherent = member(membership_start=datetime.date(2020, 3, 1))
    fee = adherent_fee_record(adherent=adherent, actor=staff, year=2024, amount="150.00")
    assert (fee.year, fee.amount, fee.status, fee.paid_on) == (2024, Decimal("150.00"), FeeStatus.DUE, None)

    adherent_fee_record(
        adherent=adherent, actor=staff, year=2024, amount=Decimal("175"), status=FeeStatus.LATE
    )
    adherent_fee_mark_paid(fee=fee, actor=staff, paid_on=datetime.date(2025, 1, 20))
    fee.refresh_from_db()
    assert (fee.amount, fee.status, fee.paid_on) == (
        Decimal("175.00"),
        FeeStatus.PAID,
        datetime.date(2025, 1, 20),
    )
    assert AdherentFee.objects.count() == 1

    created, updated, paid = events("annuaire.adherent.fee")
    assert created.detail == {
        "fee_id": fee.pk,
        "year": 2024,
        "operation": "create",
        "changes": {
            "year": {"before": None, "after": 2024},
            "amount": {"before": None, "after": "150.00"},
            "status": {"before": None, "after": "due"},
        },
    }
    assert updated.detail["changes"] == {
        "amount": {"before": "150.00", "after": "175.00"},
        "status": {"before": "due", "after": "late"},
    }
    assert paid.detail["operation"] == "paid"
    assert paid.detail["changes"] == {
        "status": {"before": "late", "after": "paid"},
        "paid_on": {"before": None, "after": "2025-01-20"},
    }
    assert all(e.target_id == str(adherent.pk) for e in (created, updated, paid))


def test_recording_the_same_fee_again_writes_nothing(staff: User) -> None:
    adherent = member()
    adherent_fee_record(adherent=adherent, actor=staff, year=2024, amount="150.00")
    adherent_fee_record(adherent=adherent, actor=staff, year=2024, amount=Decimal("150"))
    assert len(events("annuaire.adherent.fee")) == 1


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"amount": "-1"}, "amount", "Le montant ne peut pas être négatif."),
        ({"amount": "10.005"}, "amount", "Le montant a deux décimales au plus (centimes)."),
        ({"amount": "dix"}, "amount", "Montant invalide."),
        ({"amount": "NaN"}, "amount", "Montant invalide."),
        ({"year": 1999}, "year", "Année invalide : entre 2000 et 2100."),
        ({"year": 2019}, "year", "L'adhésion a commencé en 2020 : pas de cotisation pour 2019."),
        ({"status": FeeStatus.PAID}, "status", "Un paiement s'enregistre avec « Marquer comme payée »"),
    ],
)
def test_fee_rules(staff: User, kwargs: dict[str, Any], field: str, message: str) -> None:
    adherent = member(membership_start=datetime.date(2020, 3, 1))
    arguments: dict[str, Any] = {"year": 2024, "amount": "100", **kwargs}
    with pytest.raises(ValidationError) as error:
        adherent_fee_record(adherent=adherent, actor=staff, **arguments)
    assert list(errors_of(error)) == [field]
    assert errors_of(error)[field][0].startswith(message)
    assert not AdherentFee.objects.exists()


def test_candidates_pay_no_fee_and_former_members_none_after_they_left(staff: User) -> None:
    with pytest.raises(ValidationError, match="Un candidat ne cotise pas"):
        adherent_fee_record(adherent=candidate(), actor=staff, year=2024, amount=100)
    former = member(AdherentStatus.RESIGNED, membership_end=datetime.date(2023, 12, 31))
    with pytest.raises(ValidationError, match="L'adhésion a pris fin en 2023"):
        adherent_fee_record(adherent=former, actor=staff, year=2024, amount=100)
    # Arrears of the years of membership can still be called.
    assert adherent_fee_record(adherent=former, actor=staff, year=2023, amount=100).status == FeeStatus.DUE


def test_a_paid_fee_no_longer_changes(staff: User) -> None:
    adherent = member()
    fee = adherent_fee_record(adherent=adherent, actor=staff, year=2024, amount=100)
    adherent_fee_mark_paid(fee=fee, actor=staff)
    assert fee.paid_on == timezone.localdate()
    with pytest.raises(
        ValidationError, match=r"La cotisation 2024 est déjà payée : elle ne se modifie plus\."
    ):
        adherent_fee_record(adherent=adherent, actor=staff, year=2024, amount=200)
    with pytest.raises(ValidationError, match="La cotisation 2024 est déjà payée"):
        adherent_fee_mark_paid(fee=fee, actor=staff)


def test_a_waived_fee_is_not_paid_and_payment_is_not_in_the_future(staff: User) -> None:
    adherent = member()
    waived = adherent_fee_record(adherent=adherent, actor=staff, year=2023, amount=0, status=FeeStatus.WAIVED)
    with pytest.raises(ValidationError, match="exonérée"):
        adherent_fee_mark_paid(fee=waived, actor=staff)
    due = adherent_fee_record(adherent=adherent, actor=staff, year=2024, amount=100)
    with pytest.raises(ValidationError) as error:
        adherent_fee_mark_paid(
            fee=due, actor=staff, paid_on=timezone.localdate() + datetime.timedelta(days=1)
        )
    assert errors_of(error) == {"paid_on": ["La date de paiement ne peut pas être dans le futur."]}
    due.refresh_from_db()
    assert due.status == FeeStatus.DUE


# --- Representatives ---------------------------------------------------------------------------------------


def test_holder_then_substitute_per_body(staff: User) -> None:
    adherent = member()
    holder = adherent_representative_set(
        adherent=adherent,
        actor=staff,
        body=GoverningBody.GENERAL_ASSEMBLY,
        role=RepresentativeRole.HOLDER,
        last_name="Durand",
        first_name="Marie",
        email="Marie.Durand@CH-Exemple.fr",
        function="Directrice",
    )
    substitute = adherent_representative_set(
        adherent=adherent,
        actor=staff,
        body=GoverningBody.GENERAL_ASSEMBLY,
        role=RepresentativeRole.SUBSTITUTE,
        last_name="Martin",
        first_name="Paul",
    )
    committee = adherent_representative_set(
        adherent=adherent,
        actor=staff,
        body=GoverningBody.RESTRICTED_COMMITTEE,
        role=RepresentativeRole.HOLDER,
        last_name="Durand",
        first_name="Marie",
    )
    assert holder.email == "marie.durand@ch-exemple.fr"
    assert AdherentRepresentative.objects.filter(adherent=adherent).count() == 3
    assert {(r.body, r.role) for r in (holder, substitute, committee)} == {
        ("ag", "holder"),
        ("ag", "substitute"),
        ("comite", "holder"),
    }
    first = events("annuaire.adherent.representative")[0]
    assert first.detail == {
        "representative_id": holder.pk,
        "body": "ag",
        "role": "holder",
        "operation": "create",
        "changes": {
            "last_name": {"before": None, "after": "Durand"},
            "first_name": {"before": None, "after": "Marie"},
            "email": {"before": None, "after": "marie.durand@ch-exemple.fr"},
            "function": {"before": None, "after": "Directrice"},
        },
    }


def test_naming_a_holder_again_replaces_the_person(staff: User) -> None:
    adherent = member()
    common: dict[str, Any] = {"adherent": adherent, "actor": staff, "body": "ag", "role": "holder"}
    first = adherent_representative_set(**common, last_name="Durand", first_name="Marie")
    second = adherent_representative_set(**common, last_name="Leroy", first_name="Anne")
    assert first.pk == second.pk
    assert AdherentRepresentative.objects.get().last_name == "Leroy"
    replaced = events("annuaire.adherent.representative")[-1]
    assert replaced.detail["operation"] == "update"
    assert replaced.detail["changes"] == {
        "last_name": {"before": "Durand", "after": "Leroy"},
        "first_name": {"before": "Marie", "after": "Anne"},
    }


def test_representative_rules(staff: User) -> None:
    adherent = member()
    with pytest.raises(ValidationError) as error:
        adherent_representative_set(
            adherent=adherent,
            actor=staff,
            body="ag",
            role="substitute",
            last_name="Martin",
            first_name="Paul",
        )
    assert errors_of(error)["role"][0].startswith("Désignez d'abord le titulaire")

    adherent_representative_set(
        adherent=adherent, actor=staff, body="ag", role="holder", last_name="Durand", first_name="Marie"
    )
    with pytest.raises(ValidationError) as error:
        adherent_representative_set(
            adherent=adherent,
            actor=staff,
            body="ag",
            role="substitute",
            last_name="DURAND",
            first_name="marie",
        )
    assert "deux personnes différentes" in errors_of(error)["last_name"][0]

    with pytest.raises(ValidationError) as error:
        adherent_representative_set(adherent=adherent, actor=staff, body="ca", role="boss")
    assert set(errors_of(error)) == {"body", "role", "last_name", "first_name"}

    with pytest.raises(ValidationError) as error:
        adherent_representative_set(
            adherent=adherent,
            actor=staff,
            body="comite",
            role="holder",
            last_name="A",
            first_name="B",
            email="pas-un-courriel",
        )
    assert list(errors_of(error)) == ["email"]


def test_former_members_have_no_representatives(staff: User) -> None:
    former = member(AdherentStatus.EXCLUDED)
    with pytest.raises(ValidationError, match="n'est plus représenté"):
        adherent_representative_set(
            adherent=former, actor=staff, body="ag", role="holder", last_name="A", first_name="B"
        )


def test_a_directory_professional_gives_the_representative_name(staff: User) -> None:
    physician = new_professional(physician=True, first_name="Hélène", last_name="Bernard")
    representative = adherent_representative_set(
        adherent=member(), actor=staff, body="comite", role="holder", professional=physician
    )
    assert (representative.first_name, representative.last_name, representative.professional) == (
        "Hélène",
        "Bernard",
        physician,
    )


def test_removing_representatives(staff: User) -> None:
    adherent = member()
    holder = adherent_representative_set(
        adherent=adherent, actor=staff, body="ag", role="holder", last_name="A", first_name="B"
    )
    substitute = adherent_representative_set(
        adherent=adherent, actor=staff, body="ag", role="substitute", last_name="C", first_name="D"
    )
    with pytest.raises(ValidationError, match="Cette instance a un suppléant"):
        adherent_representative_remove(representative=holder, actor=staff)
    adherent_representative_remove(representative=substitute, actor=staff)
    adherent_representative_remove(representative=holder, actor=staff)
    assert not AdherentRepresentative.objects.exists()
    removed = events("annuaire.adherent.representative")[-1]
    assert removed.detail["operation"] == "remove"
    assert removed.detail["changes"]["last_name"] == {"before": "A", "after": None}


# --- Services used -----------------------------------------------------------------------------------------


def test_services_are_replaced_and_audited(staff: User) -> None:
    adherent = member()
    AdherentService.objects.create(adherent=adherent, service="annuaire", since=datetime.date(2021, 1, 1))
    result = adherent_services_set(adherent=adherent, actor=staff, services=["dmp", "messagerie"])
    assert [s.service for s in result] == ["dmp", "messagerie"]
    assert all(s.since == timezone.localdate() for s in result)
    [event] = events("annuaire.adherent.services")
    assert event.detail == {
        "changes": {"services": {"before": ["annuaire"], "after": ["messagerie", "dmp"]}},
        "added": ["messagerie", "dmp"],
        "removed": ["annuaire"],
    }
    adherent_services_set(adherent=adherent, actor=staff, services=["messagerie", "dmp"])
    assert len(events("annuaire.adherent.services")) == 1  # no change, no event


def test_a_former_member_gets_no_new_service_but_loses_them(staff: User) -> None:
    former = member(AdherentStatus.RESIGNED)
    AdherentService.objects.create(adherent=former, service="ror")
    with pytest.raises(ValidationError) as error:
        adherent_services_set(adherent=former, actor=staff, services=["ror", "dmp"])
    assert list(errors_of(error)) == ["services"]
    assert adherent_services_set(adherent=former, actor=staff, services=[]) == []
    with pytest.raises(ValidationError, match=r"Service inconnu : fax\."):
        adherent_services_set(adherent=former, actor=staff, services=["fax"])
