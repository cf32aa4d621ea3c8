"""The GCS staff's member pages: who may open them, what they show, forms with errors next to the fields,
transitions behind a confirmation step (POST + CSRF), the CSV export, and locked query counts."""

import csv
import datetime
import io
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any, cast

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from annuaire.models import (
    Adherent,
    AdherentFee,
    AdherentRepresentative,
    AdherentService,
    AdherentStatus,
    College,
    FeeStatus,
    MailboxAddress,
    Professional,
    Structure,
)
from annuaire.services.members import (
    adherent_admit,
    adherent_fee_record,
    adherent_representative_set,
    adherent_update,
)
from annuaire.standards import identifiers
from enrs.accounts.models import User
from enrs.accounts.roles import Role
from enrs.audit.models import AuditEvent
from tests.annuaire.factories import (
    AdherentFactory,
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
PDF = b"%PDF-1.4\n1 0 obj << >> endobj\n%%EOF\n"
LIST_URL = "/annuaire/adherents/"
EXPORT_URL = "/annuaire/adherents/export.csv"
CREATE_URL = "/annuaire/adherents/nouveau/"


@pytest.fixture(autouse=True)
def _settings(settings: Any) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    }
    settings.ENRS_MSSANTE_DOMAIN = DOMAIN


@pytest.fixture
def system() -> User:
    return cast(User, UserFactory(gcs_staff=True, username="gcs.setup"))


@pytest.fixture
def staff_client(client: Client) -> Client:
    client.force_login(cast(User, UserFactory(gcs_staff=True, username="equipe.gcs")))
    return client


def adherent(**kwargs: Any) -> Adherent:
    kwargs.setdefault("membership_start", datetime.date(2020, 3, 1))
    return cast(Adherent, AdherentFactory(**kwargs))


def candidate(**kwargs: Any) -> Adherent:
    kwargs.setdefault("convention_signed_on", datetime.date(2024, 11, 5))
    return adherent(status=AdherentStatus.CANDIDATE, membership_start=None, **kwargs)


def detail_url(member: Adherent, suffix: str = "") -> str:
    return f"/annuaire/adherents/{member.pk}/{suffix}"


def html_of(response: Any) -> str:
    return cast(str, response.content.decode())


def field_errors(html: str, field: str) -> list[str]:
    """The error messages shown right under a field (the block its aria-describedby points to)."""
    match = re.search(rf'<div[^>]*id="id_{field}_error"[^>]*>(.*?)</div>', html, re.S)
    if match is None:
        return []
    return [re.sub(r"\s+", " ", m).strip() for m in re.findall(r"<p[^>]*>(.*?)</p>", match.group(1), re.S)]


def read_csv(response: Any) -> tuple[str, list[list[str]]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    return body, list(csv.reader(io.StringIO(body.removeprefix("\ufeff")), delimiter=";"))


@pytest.fixture
def full_member(system: User) -> Adherent:
    """A member with everything its pages show: convention PDF, ORG address, fee, representative, service."""
    member = candidate()
    assert member.structure is not None
    new_mailbox(organizational=True, structure=member.structure, address=f"direction@{DOMAIN}")
    adherent_update(
        adherent=member,
        actor=system,
        data={},
        convention_document=SimpleUploadedFile("c.pdf", PDF, content_type="application/pdf"),
    )
    adherent_admit(adherent=member, actor=system, membership_start=datetime.date(2024, 12, 1))
    adherent_fee_record(adherent=member, actor=system, year=2025, amount=Decimal("150"))
    adherent_representative_set(
        adherent=member, actor=system, body="ag", role="holder", last_name="Durand", first_name="Marie"
    )
    AdherentService.objects.create(adherent=member, service="messagerie")
    return member


def member_urls(member: Adherent) -> list[str]:
    fee = member.fees.get()
    representative = member.representatives.get()
    return [
        LIST_URL,
        EXPORT_URL,
        CREATE_URL,
        detail_url(member),
        detail_url(member, "modifier/"),
        detail_url(member, "convention.pdf"),
        detail_url(member, "admission/"),
        detail_url(member, "demission/"),
        detail_url(member, "exclusion/"),
        detail_url(member, "cotisations/"),
        detail_url(member, f"cotisations/{fee.pk}/paiement/"),
        detail_url(member, "representants/"),
        detail_url(member, f"representants/{representative.pk}/retrait/"),
        detail_url(member, "services/"),
    ]


# --- Permissions ------------------------------------------------------------------------------------------


def test_urls() -> None:
    assert reverse("annuaire:member_list") == LIST_URL
    assert reverse("annuaire:member_export") == EXPORT_URL
    assert reverse("annuaire:member_create") == CREATE_URL
    assert reverse("annuaire:member_admit", args=[7]) == "/annuaire/adherents/7/admission/"


@pytest.mark.parametrize("role", [Role.GCS_STAFF, Role.ADMIN])
def test_gcs_staff_and_administrators_open_every_member_page(
    client_as: Callable[[Role], Client], full_member: Adherent, role: Role
) -> None:
    client = client_as(role)
    for url in member_urls(full_member):
        response = client.get(url)
        assert response.status_code == 200, url


@pytest.mark.parametrize("role", [Role.CLINICIAN, Role.ARS_ANALYST])
def test_clinicians_and_ars_analysts_get_403_on_every_member_page_and_write(
    strong_client_as: Callable[[Role], Client], full_member: Adherent, role: Role
) -> None:
    client = strong_client_as(role)  # even with a strong session: the role closes the door
    for url in member_urls(full_member):
        assert client.get(url).status_code == 403, url
        assert (
            client.post(url, {"reason": "x", "services": [], "year": 2025, "amount": "1"}).status_code == 403
        ), url
    full_member.refresh_from_db()
    assert full_member.status == AdherentStatus.MEMBER
    assert full_member.representatives.count() == 1
    assert list(full_member.services.values_list("service", flat=True)) == ["messagerie"]
    assert not AuditEvent.objects.filter(action="annuaire.adherent.export").exists()
    html = html_of(client.get(LIST_URL))
    assert "Votre rôle ne donne pas accès à cette page." in html
    assert "Durand" not in html


def test_anonymous_visitors_are_sent_to_the_sign_in_page(client: Client, full_member: Adherent) -> None:
    for url in member_urls(full_member):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/compte/connexion/?next="), url


# --- List ---------------------------------------------------------------------------------------------------


def test_the_list_shows_members_with_their_status_services_and_fee(
    staff_client: Client, system: User
) -> None:
    member = adherent(structure=new_structure(legal_entity=True, name="CHU de Rennes"))
    AdherentService.objects.create(adherent=member, service="dmp")
    adherent_fee_record(adherent=member, actor=system, year=2025, amount=100, status=FeeStatus.LATE)
    other = candidate(structure=new_structure(legal_entity=True, name="Clinique Saint-Yves"))

    html = html_of(staff_client.get(LIST_URL, {"year": 2025}))
    row = html.split(f'id="adherent-{member.pk}"', 1)[1].split("</tr>", 1)[0]
    assert "CHU de Rennes" in row
    assert f'href="{detail_url(member)}"' in row
    assert "Alimentation du DMP" in row
    assert ">En retard<" in row
    assert "fr-badge--success" in row
    assert ">Membre<" in row
    other_row = html.split(f'id="adherent-{other.pk}"', 1)[1].split("</tr>", 1)[0]
    assert ">Candidat<" in other_row
    assert "Non appelée" in other_row
    assert "2 adhérents" in html
    assert 'href="/annuaire/adherents/export.csv?year=2025"' in html


def test_the_list_filters(staff_client: Client) -> None:
    public = adherent(college=College.PUBLIC_ESTABLISHMENTS)
    private = adherent(college=College.PRIVATE_ESTABLISHMENTS)
    html = html_of(staff_client.get(LIST_URL, {"college": "2", "status": "member"}))
    assert f'id="adherent-{private.pk}"' in html
    assert f'id="adherent-{public.pk}"' not in html
    assert "1 adhérent correspondant aux filtres" in html
    assert '<option value="2" selected>' in html

    html = html_of(staff_client.get(LIST_URL, {"status": "excluded"}))
    assert 'id="aucun-adherent"' in html


def test_invalid_filters_are_shown_next_to_their_field(staff_client: Client) -> None:
    response = staff_client.get(LIST_URL, {"year": "1800", "college": "12"})
    assert response.status_code == 400
    html = html_of(response)
    assert field_errors(html, "year") == ["Assurez-vous que cette valeur est supérieure ou égale à 2000."]
    assert field_errors(html, "college")
    assert 'aria-invalid="true"' in html


def test_the_list_is_paginated(staff_client: Client) -> None:
    for index in range(26):
        adherent(structure=new_structure(legal_entity=True, name=f"Structure {index:02d}"))
    first = html_of(staff_client.get(LIST_URL))
    second = html_of(staff_client.get(LIST_URL, {"page": 2}))
    assert first.count('id="adherent-') == 25
    assert second.count('id="adherent-') == 1
    assert "Structure 25" in second
    assert 'href="?page=2"' in first
    assert "page 2 sur 2" in second


def list_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(LIST_URL, {"year": 2025}).status_code == 200
    return len(queries)


def test_the_list_page_costs_a_fixed_number_of_queries(
    staff_client: Client, system: User, django_assert_num_queries: Any
) -> None:
    def add_members(count: int) -> None:
        for _ in range(count):
            member = adherent()
            AdherentService.objects.create(adherent=member, service="annuaire")
            adherent_fee_record(adherent=member, actor=system, year=2025, amount=10)
            adherent(liberal_physician=True)

    add_members(2)
    few = list_queries(staff_client)
    add_members(8)
    # Session, user, departments of the filter, count, rows, services, fees, session save (in a savepoint).
    with django_assert_num_queries(few):
        assert staff_client.get(LIST_URL, {"year": 2025}).status_code == 200
    assert few == 10


# --- Detail -------------------------------------------------------------------------------------------------


def test_the_detail_page_shows_the_whole_member(staff_client: Client, full_member: Adherent) -> None:
    assert full_member.structure is not None
    html = html_of(staff_client.get(detail_url(full_member)))
    assert f"<h1>{full_member.structure.name}</h1>" in html
    assert full_member.structure.finess_ej in html
    assert f"direction@{DOMAIN}" in html
    assert "01/12/2024" in html  # membership start
    assert f'href="{detail_url(full_member, "convention.pdf")}"' in html
    fee_row = html.split('id="cotisation-2025"', 1)[1].split("</tr>", 1)[0]
    assert "150,00 €" in fee_row
    assert "Marquer comme payée" in fee_row
    holder = html.split('id="representant-ag-holder"', 1)[1].split("</tr>", 1)[0]
    assert "Marie Durand" in holder
    assert "Messagerie sécurisée" in html
    # Transitions open to a member, behind their confirmation pages.
    assert f'href="{detail_url(full_member, "demission/")}"' in html
    assert f'href="{detail_url(full_member, "exclusion/")}"' in html
    assert 'id="action-admit"' not in html
    # Status history, from the audit trail.
    history = html.split('id="historique"', 1)[1]
    assert "Admission" in history
    assert "statut : Candidat → Membre" in history
    assert "début d&#x27;adhésion : — → 01/12/2024" in history
    assert "Cotisation 2025" in history
    assert "Représentant — Assemblée générale, titulaire" in history


def test_the_detail_page_costs_a_fixed_number_of_queries(
    staff_client: Client, full_member: Adherent, system: User, django_assert_num_queries: Any
) -> None:
    url = detail_url(full_member)
    with CaptureQueriesContext(connection) as before:
        staff_client.get(url)
    for year in (2024, 2026, 2027):
        adherent_fee_record(adherent=full_member, actor=system, year=year, amount=10)
    adherent_representative_set(
        adherent=full_member, actor=system, body="comite", role="holder", last_name="Leroy", first_name="Anne"
    )
    # Session, user, adherent, services, fees, representatives, ORG addresses, history, session save
    # (savepoint, update, release).
    with django_assert_num_queries(len(before)):
        assert staff_client.get(url).status_code == 200
    assert len(before) == 11


def test_the_detail_page_of_a_professional_member(staff_client: Client) -> None:
    physician = new_professional(physician=True, first_name="Yann", last_name="Le Goff")
    new_mailbox(professional=physician, address="yann.legoff@medecin.mssante.fr")
    member = adherent(liberal_physician=True, professional=physician)
    html = html_of(staff_client.get(detail_url(member)))
    assert "<h1>Yann Le Goff</h1>" in html
    assert physician.idnat_ps in html
    assert "yann.legoff@medecin.mssante.fr" in html
    assert "Collège 4 — Médecins libéraux" in html


def test_an_unknown_member_is_a_404(staff_client: Client) -> None:
    assert staff_client.get("/annuaire/adherents/999999/").status_code == 404


def test_the_convention_is_downloaded_as_an_attachment(staff_client: Client, full_member: Adherent) -> None:
    response: Any = staff_client.get(detail_url(full_member, "convention.pdf"))
    assert response["Content-Type"] == "application/pdf"
    assert (
        response["Content-Disposition"] == f'attachment; filename="convention-adherent-{full_member.pk}.pdf"'
    )
    assert b"".join(response.streaming_content) == PDF
    assert staff_client.get(detail_url(candidate(), "convention.pdf")).status_code == 404


# --- Onboarding and edits ---------------------------------------------------------------------------------


def onboarding(**fields: Any) -> dict[str, Any]:
    data = {"member_kind": "structure", "college": "1", "services": ["annuaire"]}
    data.update(fields)
    return data


def test_onboarding_a_structure_from_the_form(staff_client: Client) -> None:
    finess = identifiers.finess_generate("35", 812_345)
    response = staff_client.post(
        CREATE_URL,
        onboarding(
            finess_et=finess,
            name="EHPAD Les Tilleuls",
            mailbox_local_part="accueil.tilleuls",
            college="7",
            services=["annuaire", "messagerie"],
            convention_signed_on="2025-01-15",
            convention_document=SimpleUploadedFile(
                "convention signée.pdf", PDF, content_type="application/pdf"
            ),
        ),
    )
    member = Adherent.objects.get()
    assert response.status_code == 302
    assert response["Location"] == detail_url(member)
    assert member.status == AdherentStatus.CANDIDATE
    assert member.college == College.MEDICO_SOCIAL_ESTABLISHMENTS
    assert member.convention_signed_on == datetime.date(2025, 1, 15)
    assert default_storage.exists(member.convention_document.name or "")
    structure = Structure.objects.get(finess_et=finess)
    assert member.structure == structure
    assert MailboxAddress.objects.get(structure=structure).address == f"accueil.tilleuls@{DOMAIN}"
    assert sorted(member.services.values_list("service", flat=True)) == ["annuaire", "messagerie"]
    event = AuditEvent.objects.get(action="annuaire.adherent.onboard")
    assert event.actor is not None
    assert event.actor.username == "equipe.gcs"
    assert event.ip == "127.0.0.1"  # the request's context reached the audit row
    page = html_of(staff_client.get(response["Location"]))
    assert "« EHPAD Les Tilleuls » est inscrit comme candidat." in page


def test_a_wrong_finess_key_is_shown_in_french_next_to_its_field(staff_client: Client) -> None:
    good = identifiers.finess_generate("35", 812_346)
    wrong = good[:-1] + str((int(good[-1]) + 1) % 10)
    response = staff_client.post(
        CREATE_URL, onboarding(finess_et=wrong, name="CH", mailbox_local_part="Accueil Général")
    )
    assert response.status_code == 200
    html = html_of(response)
    assert field_errors(html, "finess_et") == [
        "Numéro FINESS invalide : 9 caractères dont la clé de contrôle (Luhn) en dernière position."
    ]
    assert field_errors(html, "mailbox_local_part")[0].startswith("Partie locale invalide")
    finess_input = re.search(r'<input[^>]*name="finess_et"[^>]*>', html)
    assert finess_input is not None
    assert 'aria-invalid="true"' in finess_input.group(0)
    assert 'aria-describedby="id_finess_et_error"' in finess_input.group(0)
    assert f'value="{wrong}"' in finess_input.group(0)  # what was typed is kept
    assert '<a href="#id_finess_et">FINESS géographique (ET)</a>' in html  # summary links to the field
    assert not Adherent.objects.exists()


def test_onboarding_a_liberal_physician_by_rpps(staff_client: Client) -> None:
    physician = new_professional(physician=True)
    response = staff_client.post(
        CREATE_URL, {"member_kind": "professional", "college": "4", "professional": physician.rpps}
    )
    assert response.status_code == 302
    assert Adherent.objects.get().professional == physician

    response = staff_client.post(
        CREATE_URL, {"member_kind": "professional", "college": "4", "professional": "12345"}
    )
    assert field_errors(html_of(response), "professional") == [
        "Aucun professionnel de l&#x27;annuaire n&#x27;a cet identifiant (RPPS, ADELI ou IdNat_PS)."
    ]


def test_a_convention_that_is_not_a_pdf_is_refused_next_to_its_field(staff_client: Client) -> None:
    structure = new_structure()
    new_mailbox(organizational=True, structure=structure)
    fake = SimpleUploadedFile("convention.pdf", b"GIF89a...", content_type="application/pdf")
    response = staff_client.post(
        CREATE_URL, onboarding(finess_et=structure.finess_et, convention_document=fake)
    )
    assert field_errors(html_of(response), "convention_document") == [
        "Le contenu du fichier n&#x27;est pas celui d&#x27;un PDF : enregistrez la convention au format PDF."
    ]
    assert not Adherent.objects.exists()


def test_the_edit_form_follows_the_status(staff_client: Client, system: User) -> None:
    waiting = candidate()
    html = html_of(staff_client.get(detail_url(waiting, "modifier/")))
    assert 'name="college"' in html
    assert 'name="membership_start"' not in html

    member = adherent(college=College.PUBLIC_ESTABLISHMENTS)
    html = html_of(staff_client.get(detail_url(member, "modifier/")))
    assert 'name="membership_start" value="2020-03-01"' in html
    assert 'name="membership_end"' not in html

    response = staff_client.post(
        detail_url(member, "modifier/"),
        {"college": "2", "convention_signed_on": "2020-01-01", "membership_start": "2020-03-01"},
    )
    assert response.status_code == 302
    member.refresh_from_db()
    assert (member.college, member.convention_signed_on) == (2, datetime.date(2020, 1, 1))
    event = AuditEvent.objects.get(action="annuaire.adherent.update")
    assert event.detail["changes"]["college"] == {"before": 1, "after": 2}

    response = staff_client.post(
        detail_url(member, "modifier/"),
        {"college": "2", "convention_signed_on": "2020-01-01", "membership_start": ""},
    )
    assert field_errors(html_of(response), "membership_start") == ["Ce champ est obligatoire."]


# --- Transitions -------------------------------------------------------------------------------------------


def test_a_transition_asks_for_confirmation_then_runs_on_post(staff_client: Client) -> None:
    member = candidate(convention_signed_on=datetime.date(2025, 1, 10))
    url = detail_url(member, "admission/")
    html = html_of(staff_client.get(url))
    assert 'name="csrfmiddlewaretoken"' in html
    assert 'method="post"' in html
    assert "Confirmer : admettre comme membre" in html
    member.refresh_from_db()
    assert member.status == AdherentStatus.CANDIDATE  # a GET changes nothing

    response = staff_client.post(url, {"effective_on": "2025-02-01", "reason": "AG du 1er février"})
    assert response.status_code == 302
    member.refresh_from_db()
    assert (member.status, member.membership_start) == (AdherentStatus.MEMBER, datetime.date(2025, 2, 1))
    assert AuditEvent.objects.filter(action="annuaire.adherent.admit", target_id=str(member.pk)).count() == 1


def test_a_post_without_csrf_token_is_refused(full_member: Adherent) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(cast(User, UserFactory(gcs_staff=True)))
    response = client.post(detail_url(full_member, "demission/"), {"effective_on": "2025-06-01"})
    assert response.status_code == 403
    full_member.refresh_from_db()
    assert full_member.status == AdherentStatus.MEMBER


def test_service_errors_come_back_on_the_confirmation_page(staff_client: Client) -> None:
    unsigned = candidate(convention_signed_on=None)
    html = html_of(staff_client.post(detail_url(unsigned, "admission/"), {"effective_on": "2025-02-01"}))
    assert "La convention n&#x27;est pas signée" in html.split('id="erreurs-formulaire"', 1)[1]

    signed = candidate(convention_signed_on=datetime.date(2025, 1, 10))
    html = html_of(staff_client.post(detail_url(signed, "admission/"), {"effective_on": "2025-01-01"}))
    assert field_errors(html, "effective_on") == [
        "L&#x27;adhésion ne peut pas commencer avant la signature de la convention (le 10/01/2025)."
    ]
    for member in (unsigned, signed):
        member.refresh_from_db()
        assert member.status == AdherentStatus.CANDIDATE


def test_exclusion_needs_a_reason_typed_next_to_its_field(staff_client: Client) -> None:
    member = adherent()
    url = detail_url(member, "exclusion/")
    html = html_of(staff_client.post(url, {"effective_on": "2025-06-01", "reason": ""}))
    assert field_errors(html, "reason") == ["Ce champ est obligatoire."]
    response = staff_client.post(url, {"effective_on": "2025-06-01", "reason": "Manquements répétés"})
    assert response.status_code == 302
    member.refresh_from_db()
    assert (member.status, member.membership_end, member.status_reason) == (
        AdherentStatus.EXCLUDED,
        datetime.date(2025, 6, 1),
        "Manquements répétés",
    )


def test_an_impossible_transition_offers_no_button_and_is_refused(staff_client: Client) -> None:
    member = candidate()
    url = detail_url(member, "demission/")
    html = html_of(staff_client.get(url))
    assert 'id="transition-impossible"' in html
    assert "Confirmer" not in html
    html = html_of(staff_client.post(url, {"effective_on": "2025-06-01"}))
    assert "Seul un membre peut démissionner : cet adhérent est au statut « Candidat »." in html
    member.refresh_from_db()
    assert member.status == AdherentStatus.CANDIDATE


# --- Fees, representatives, services ---------------------------------------------------------------------


def test_recording_a_fee_and_its_payment(staff_client: Client) -> None:
    member = adherent()
    response = staff_client.post(
        detail_url(member, "cotisations/"), {"year": "2025", "amount": "1 250,50", "status": "due"}
    )
    assert response.status_code == 302
    fee = AdherentFee.objects.get(adherent=member)
    assert (fee.year, fee.amount, fee.status) == (2025, Decimal("1250.50"), FeeStatus.DUE)

    response = staff_client.post(
        detail_url(member, f"cotisations/{fee.pk}/paiement/"), {"paid_on": "2025-03-02"}
    )
    assert response.status_code == 302
    fee.refresh_from_db()
    assert (fee.status, fee.paid_on) == (FeeStatus.PAID, datetime.date(2025, 3, 2))

    html = html_of(
        staff_client.post(
            detail_url(member, "cotisations/"), {"year": "2025", "amount": "10", "status": "due"}
        )
    )
    assert field_errors(html, "year") == ["La cotisation 2025 est déjà payée : elle ne se modifie plus."]


def test_a_fee_of_another_member_is_not_reachable(staff_client: Client, full_member: Adherent) -> None:
    fee = full_member.fees.get()
    other = adherent()
    assert staff_client.get(detail_url(other, f"cotisations/{fee.pk}/paiement/")).status_code == 404


def test_naming_and_removing_representatives(staff_client: Client, full_member: Adherent) -> None:
    url = detail_url(full_member, "representants/")
    html = html_of(staff_client.get(url, {"instance": "ag", "role": "holder"}))
    assert 'value="Durand"' in html  # the current holder, to be replaced

    html = html_of(
        staff_client.post(
            url, {"body": "comite", "role": "substitute", "last_name": "Martin", "first_name": "Paul"}
        )
    )
    assert field_errors(html, "role")[0].startswith("Désignez d&#x27;abord le titulaire")

    response = staff_client.post(
        url,
        {
            "body": "ag",
            "role": "substitute",
            "last_name": "Martin",
            "first_name": "Paul",
            "email": "p.martin@example.org",
        },
    )
    assert response.status_code == 302
    substitute = AdherentRepresentative.objects.get(adherent=full_member, role="substitute")
    assert (substitute.body, substitute.email) == ("ag", "p.martin@example.org")

    response = staff_client.post(detail_url(full_member, f"representants/{substitute.pk}/retrait/"))
    assert response.status_code == 302
    assert not AdherentRepresentative.objects.filter(pk=substitute.pk).exists()


def test_setting_the_services_used(staff_client: Client, full_member: Adherent) -> None:
    url = detail_url(full_member, "services/")
    html = html_of(staff_client.get(url))
    assert re.search(r'<input[^>]*value="messagerie"[^>]*checked', html)
    response = staff_client.post(url, {"services": ["dmp", "telemedecine"]})
    assert response.status_code == 302
    assert sorted(full_member.services.values_list("service", flat=True)) == ["dmp", "telemedecine"]
    response = staff_client.post(url, {"services": ["fax"]})
    assert field_errors(html_of(response), "services") == [
        "Sélectionnez un choix valide. fax n\N{RIGHT SINGLE QUOTATION MARK}en fait pas partie."
    ]
    response = staff_client.post(url, {})  # nothing ticked: every service is removed
    assert response.status_code == 302
    assert not full_member.services.exists()


# --- CSV export -------------------------------------------------------------------------------------------


def test_the_export_is_a_csv_for_excel_with_the_filtered_members(
    staff_client: Client, full_member: Adherent
) -> None:
    adherent(college=College.PRIVATE_ESTABLISHMENTS)
    response = staff_client.get(EXPORT_URL, {"college": "1", "year": "2025"})
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(
        r'attachment; filename="adherents-gcs-\d{8}-\d{6}\.csv"', response["Content-Disposition"]
    )
    body, rows = read_csv(response)
    assert body.startswith("\ufeffN° adhérent;Adhérent;Type;")
    assert "\r\n" in body
    header, *lines = rows
    assert len(lines) == 1
    line = dict(zip(header, lines[0], strict=True))
    assert full_member.structure is not None
    assert line["N° adhérent"] == str(full_member.pk)
    assert line["Adhérent"] == full_member.structure.name
    assert line["Type"] == "Structure"
    assert line["FINESS géographique"] == ""
    assert line["FINESS juridique"] == full_member.structure.finess_ej
    assert line["Collège"] == "1"
    assert line["Libellé du collège"] == "Établissements publics et ESPIC"
    assert line["Statut"] == "Membre"
    assert line["Début d'adhésion"] == "01/12/2024"
    assert line["Adresses MSSanté organisationnelles"] == f"direction@{DOMAIN}"
    assert line["Services utilisés"] == "Messagerie sécurisée"
    assert line["Cotisation 2025 (€)"] == "150,00"
    assert line["Statut de la cotisation 2025"] == "À payer"
    assert line["AG — titulaire"] == "Marie Durand"
    assert line["Comité restreint — titulaire"] == ""
    event = AuditEvent.objects.get(action="annuaire.adherent.export")
    assert event.detail == {"filters": {"college": "1", "year": "2025"}}


def test_export_cells_cannot_be_formulas(staff_client: Client, system: User) -> None:
    member = adherent(
        structure=new_structure(legal_entity=True, name='=HYPERLINK("http://x.example","clic")')
    )
    adherent_representative_set(
        adherent=member, actor=system, body="ag", role="holder", last_name="+33 1 23", first_name="@SUM(A1)"
    )
    _, rows = read_csv(staff_client.get(EXPORT_URL))
    line = dict(zip(rows[0], rows[1], strict=True))
    assert line["Adhérent"] == '\'=HYPERLINK("http://x.example","clic")'
    assert line["AG — titulaire"] == "'@SUM(A1) +33 1 23"


def test_the_export_costs_a_fixed_number_of_queries(
    staff_client: Client, system: User, django_assert_num_queries: Any
) -> None:
    def export_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            read_csv(staff_client.get(EXPORT_URL))
        return len(queries)

    adherent()
    few = export_queries()
    for index in range(6):
        member = adherent()
        assert member.structure is not None
        new_mailbox(organizational=True, structure=member.structure)
        adherent_representative_set(
            adherent=member, actor=system, body="ag", role="holder", last_name=f"N{index}", first_name="P"
        )
    with django_assert_num_queries(few):
        read_csv(staff_client.get(EXPORT_URL))


# --- Landing page -----------------------------------------------------------------------------------------


def test_the_annuaire_page_links_to_the_members_for_gcs_staff_only(
    client_as: Callable[[Role], Client],
) -> None:
    assert 'href="/annuaire/adherents/"' in html_of(client_as(Role.GCS_STAFF).get("/annuaire/"))
    assert 'href="/annuaire/adherents/"' not in html_of(client_as(Role.CLINICIAN).get("/annuaire/"))


def test_dates_shown_are_today_based(staff_client: Client) -> None:
    html = html_of(staff_client.get(detail_url(adherent(), "demission/")))
    assert f'value="{timezone.localdate():%Y-%m-%d}"' in html
