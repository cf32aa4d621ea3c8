"""``seed_demo``: counts per scale, valid keys, determinism, --if-empty, --reset, demo accounts policy."""

import io
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth import password_validation
from django.core.management import CommandError, call_command
from django.db.models import Count
from pytest_django.fixtures import Settings as SettingsWrapper

from annuaire import demo
from annuaire.models import (
    Adherent,
    AdherentStatus,
    College,
    Commune,
    Department,
    Exercice,
    MailboxAddress,
    MailboxKind,
    Professional,
    Structure,
    StructureKind,
)
from annuaire.standards import identifiers
from enrs.accounts.models import User
from enrs.accounts.roles import Role
from enrs.core import geo
from tests.annuaire.factories import ProfessionalFactory

pytestmark = pytest.mark.django_db

DEMO_USERNAMES = [account.username for account in demo.DEMO_ACCOUNTS]


@pytest.fixture
def demo_mode(settings: SettingsWrapper) -> SettingsWrapper:
    settings.ENRS_DEMO_MODE = True
    settings.ENRS_REGION_CODE = "53"
    return settings


@pytest.fixture
def seed() -> Callable[..., str]:
    def run(*args: str, **options: Any) -> str:
        out = io.StringIO()
        call_command("seed_demo", *args, stdout=out, stderr=io.StringIO(), **options)
        return out.getvalue()

    return run


def _snapshot() -> dict[str, list[Any]]:
    """Everything the demo identifies, in id order: equal snapshots mean equal data."""
    return {
        "communes": list(
            Commune.objects.order_by("id").values_list("insee_code", "name", "postal_code", "latitude")
        ),
        "structures": list(
            Structure.objects.order_by("id").values_list(
                "kind", "finess_ej", "finess_et", "siret", "name", "legal_entity"
            )
        ),
        "professionals": list(
            Professional.objects.order_by("id").values_list(
                "idnat_ps", "last_name", "first_name", "specialty_code"
            )
        ),
        "exercices": list(
            Exercice.objects.order_by("id").values_list("professional__idnat_ps", "structure_id", "role_code")
        ),
        "mailboxes": list(MailboxAddress.objects.order_by("id").values_list("address", "kind")),
        "adherents": list(
            Adherent.objects.order_by("id").values_list("college", "status", "membership_start")
        ),
    }


def test_small_scale_counts_and_shape(demo_mode: SettingsWrapper, seed: Callable[..., str]) -> None:
    output = seed("--scale", "small")

    bretagne = {d.code for d in geo.departments_of("53")}
    assert set(Department.objects.values_list("code", flat=True)) == bretagne
    assert Commune.objects.count() == 6 * len(bretagne)
    assert Structure.objects.count() == 30
    assert Professional.objects.count() == 500
    summary_line = next(line for line in output.splitlines() if "professionnels de santé" in line)
    assert summary_line.split()[-1] == "500"
    # Every professional works somewhere, and only at geographic sites.
    assert not Professional.objects.filter(exercices__isnull=True).exists()
    assert not Exercice.objects.filter(structure__kind=StructureKind.LEGAL_ENTITY).exists()
    # Legal entities with several sites, sites linked to their legal entity's FINESS.
    assert Structure.objects.annotate(n=Count("sites")).filter(n__gte=2).exists()
    for site in Structure.objects.filter(legal_entity__isnull=False).select_related("legal_entity"):
        assert site.legal_entity is not None
        assert site.finess_ej == site.legal_entity.finess_ej
        assert site.siren == site.legal_entity.siren
    # Structures without FINESS (cabinets, associations) have a SIRET.
    without_finess = Structure.objects.filter(finess_et__isnull=True, kind=StructureKind.SITE)
    assert without_finess.exists()
    assert all(identifiers.siret_is_valid(s) for s in without_finess.values_list("siret", flat=True))
    # GCS members in each of the 8 collèges, with consistent dates.
    assert set(Adherent.objects.values_list("college", flat=True)) == set(College.values)
    for adherent in Adherent.objects.all():
        assert (adherent.membership_start is None) == (adherent.status == AdherentStatus.CANDIDATE)
        if adherent.membership_end is not None:
            assert adherent.membership_start is not None
            assert adherent.membership_start <= adherent.membership_end
            assert adherent.status in (AdherentStatus.RESIGNED, AdherentStatus.EXCLUDED)
    # Physicians carry a real specialty code (G15_10/SMxx) with its label.
    physicians = Professional.objects.filter(profession_code="10")
    assert physicians.exists()
    assert not physicians.filter(specialty_code="").exists()
    assert set(physicians.values_list("specialty_code", flat=True)) <= {
        code for code, _ in demo._PHYSICIAN_SPECIALTIES
    }


def test_region_scale_counts_and_every_key_is_valid(
    demo_mode: SettingsWrapper, seed: Callable[..., str]
) -> None:
    seed("--scale", "region")

    assert Structure.objects.count() == 300
    assert Professional.objects.count() == 20_000
    assert Exercice.objects.count() >= 20_000
    departments = set(Department.objects.values_list("code", flat=True))
    assert departments == {d.code for d in geo.departments_of("53")}

    rpps_numbers = list(Professional.objects.values_list("rpps", "idnat_ps", "rpps_key_valid"))
    assert len({rpps for rpps, _, _ in rpps_numbers}) == 20_000
    for rpps, idnat_ps, key_valid in rpps_numbers:
        assert rpps.startswith("10")
        assert identifiers.rpps_key_is_valid(rpps), rpps
        assert idnat_ps == identifiers.idnat_ps_from_rpps(rpps)
        assert key_valid is True

    for finess_ej, finess_et, siren, siret, department in Structure.objects.values_list(
        "finess_ej", "finess_et", "siren", "siret", "commune__department__code"
    ):
        for finess in filter(None, (finess_ej, finess_et)):
            assert identifiers.finess_is_valid(finess), finess
            assert identifiers.finess_department(finess) == department
        assert identifiers.siren_is_valid(siren), siren
        if siret:
            assert identifiers.siret_is_valid(siret), siret
            assert siret.startswith(siren)

    addresses = list(MailboxAddress.objects.values_list("address", "kind", "professional_id"))
    assert len({address for address, _, _ in addresses}) == len(addresses)
    assert all(address.endswith(".mssante.fr") for address, _, _ in addresses)
    assert {kind for _, kind, _ in addresses} == {
        MailboxKind.PERSONAL,
        MailboxKind.ORGANIZATIONAL,
        MailboxKind.APPLICATION,
    }
    # Professions follow a realistic mix: nurses first, then physicians.
    top = list(
        Professional.objects.values("profession_code")
        .annotate(n=Count("id"))
        .order_by("-n")
        .values_list("profession_code", flat=True)[:2]
    )
    assert top == ["60", "10"]


def test_national_scale_finess_numbers_are_valid_in_every_department() -> None:
    """National structures (all departments, Corsica and overseas included), produced without a database."""
    data = demo.DemoData(
        scale=demo.SCALES["national"], seed=demo.DEFAULT_SEED, departments=list(geo.DEPARTMENTS.values())
    )
    structures = []
    for table, row in data.rows():
        if table is demo.PROFESSIONALS:
            break
        if table is demo.STRUCTURES:
            structures.append(row)
    assert len(structures) == 30_000
    fields = demo.STRUCTURES.fields
    ej, et, siren, siret = (fields.index(name) for name in ("finess_ej", "finess_et", "siren", "siret"))
    finess_numbers = [r[et] for r in structures if r[et]] + [r[ej] for r in structures if r[ej]]
    assert all(identifiers.finess_is_valid(number) for number in finess_numbers)
    assert {identifiers.finess_department(number) for number in finess_numbers} == set(geo.DEPARTMENTS)
    assert len({r[et] for r in structures if r[et]}) == sum(1 for r in structures if r[et])
    assert all(identifiers.siren_is_valid(r[siren]) for r in structures)
    assert all(identifiers.siret_is_valid(r[siret]) for r in structures if r[siret])


def test_same_seed_same_data_whichever_writer(demo_mode: SettingsWrapper, seed: Callable[..., str]) -> None:
    seed("--scale", "small", "--seed", "7", "--writer", "copy")
    first = _snapshot()
    seed("--scale", "small", "--seed", "7", "--reset", "--writer", "orm")
    assert _snapshot() == first

    seed("--scale", "small", "--seed", "8", "--reset")
    other = _snapshot()
    assert other["professionals"] != first["professionals"]
    assert other["structures"] != first["structures"]


def test_ids_restart_and_sequences_follow_after_a_seed(
    demo_mode: SettingsWrapper, seed: Callable[..., str]
) -> None:
    seed("--scale", "small")
    seed("--scale", "small", "--reset")
    assert Professional.objects.order_by("id").values_list("id", flat=True).first() == 1
    # The sequence was moved past the ids written by COPY: a normal insert does not collide.
    assert ProfessionalFactory.create().pk == 501


def test_if_empty_seeds_an_empty_directory(demo_mode: SettingsWrapper, seed: Callable[..., str]) -> None:
    seed("--scale", "small", "--if-empty")
    assert Professional.objects.count() == 500


def test_if_empty_does_nothing_when_data_exists(demo_mode: SettingsWrapper, seed: Callable[..., str]) -> None:
    seed("--scale", "small")
    before = _snapshot()
    output = seed("--scale", "region", "--if-empty")
    assert "rien à charger" in output
    assert _snapshot() == before
    assert Professional.objects.count() == 500
    # make run prints the accounts again: the passwords of this seed still open them.
    for username in DEMO_USERNAMES:
        password = demo.demo_password(demo.DEFAULT_SEED, username)
        assert f"{username}" in output
        assert password in output


def test_existing_data_is_not_replaced_without_reset(
    demo_mode: SettingsWrapper, seed: Callable[..., str]
) -> None:
    seed("--scale", "small")
    with pytest.raises(CommandError, match="--reset"):
        seed("--scale", "small", "--seed", "9")
    assert Professional.objects.count() == 500
    with pytest.raises(CommandError, match="s'excluent"):
        seed("--if-empty", "--reset")


def test_one_demo_account_per_role_with_printed_passwords(
    demo_mode: SettingsWrapper, seed: Callable[..., str]
) -> None:
    output = seed("--scale", "small")

    users = {user.username: user for user in User.objects.filter(username__in=DEMO_USERNAMES)}
    assert {user.role for user in users.values()} == set(Role)
    for username, user in users.items():
        password = demo.demo_password(demo.DEFAULT_SEED, username)
        line = next(line for line in output.splitlines() if line.strip().startswith(username))
        assert line.split()[-1] == password
        assert user.check_password(password)
        password_validation.validate_password(password, user)
    clinician = users["demo-clinicien"]
    professional = Professional.objects.get(idnat_ps=clinician.idnat_ps)
    assert professional.profession_code == "10"
    assert professional.mailboxes.filter(address=clinician.email).exists()
    assert users["demo-admin"].is_superuser
    assert not users["demo-ars"].is_staff


def test_demo_accounts_are_refused_outside_demo_mode(
    settings: SettingsWrapper, seed: Callable[..., str]
) -> None:
    settings.ENRS_DEMO_MODE = False
    with pytest.raises(CommandError, match="ENRS_DEMO_MODE"):
        seed("--scale", "small")
    assert demo.annuaire_is_empty()
    assert not User.objects.filter(username__in=DEMO_USERNAMES).exists()

    # The directory alone may be loaded; accounts only with --force.
    seed("--scale", "small", "--no-users")
    assert Professional.objects.count() == 500
    assert not User.objects.filter(username__in=DEMO_USERNAMES).exists()
    output = seed("--scale", "small", "--reset", "--force")
    assert User.objects.filter(username__in=DEMO_USERNAMES).count() == 4
    assert demo.demo_password(demo.DEFAULT_SEED, "demo-admin") in output

    # --if-empty on a loaded directory prints no password outside demo mode.
    output = seed("--scale", "small", "--if-empty")
    assert demo.demo_password(demo.DEFAULT_SEED, "demo-admin") not in output


def test_existing_demo_account_is_kept_and_its_changed_password_not_shown(
    demo_mode: SettingsWrapper, seed: Callable[..., str]
) -> None:
    seed("--scale", "small")
    admin = User.objects.get(username="demo-admin")
    admin.set_password("un-autre-mot-de-passe-solide")
    admin.save()
    output = seed("--scale", "small", "--if-empty")
    line = next(line for line in output.splitlines() if line.strip().startswith("demo-admin"))
    assert "mot de passe modifié" in line
    assert demo.demo_password(demo.DEFAULT_SEED, "demo-admin") not in output


def test_unknown_region_is_refused(demo_mode: SettingsWrapper, seed: Callable[..., str]) -> None:
    with pytest.raises(CommandError, match="Région inconnue"):
        seed("--scale", "small", "--region", "99")
    assert demo.annuaire_is_empty()


@pytest.mark.django_db
def test_seeding_is_audited_and_reset_keeps_audited_demo_accounts(settings) -> None:
    from django.core.management import call_command

    from enrs.accounts.models import User
    from enrs.audit.models import AuditEvent
    from enrs.audit.services import audit_record

    settings.ENRS_DEMO_MODE = True
    call_command("seed_demo", "--scale", "small", stdout=io.StringIO())
    [event] = AuditEvent.objects.filter(action="annuaire.seed_demo")
    assert event.detail["scale"] == "small"
    assert event.detail["counts"]["annuaire.Professional"] == 500

    clinician = User.objects.get(username="demo-clinicien")
    audit_record(action="auth.login", actor=clinician, detail={"method": "password"})
    call_command("seed_demo", "--scale", "small", "--reset", stdout=io.StringIO())
    assert User.objects.filter(pk=clinician.pk).exists()
    assert AuditEvent.objects.filter(action="annuaire.seed_demo").count() == 2
