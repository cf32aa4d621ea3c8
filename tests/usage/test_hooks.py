"""The directory's resolver, the daily snapshots of annuaire and ror, and the events apps emit."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, cast

import pytest
from django.utils import timezone

from annuaire.models import AdherentStatus, College, Structure
from enrs.accounts.models import User
from enrs.usage import rollups
from enrs.usage.models import UsageEvent
from enrs.usage.resolver import StructureContext, resolve_structure, structure_directory
from enrs.usage.selectors import indicator_breakdown, indicator_total
from enrs.usage.services import actor_key, usage_emit
from tests.annuaire.factories import (
    AdherentFactory,
    CommuneFactory,
    DepartmentFactory,
    ExerciceFactory,
    MailboxAddressFactory,
    StructureFactory,
)
from tests.factories import UserFactory
from tests.ror.factories import StructureMembershipFactory, offer_with_location

pytestmark = pytest.mark.django_db


def test_annuaire_registers_the_structure_directory() -> None:
    assert type(structure_directory()).__name__ == "AnnuaireStructureDirectory"
    structure = cast(Structure, StructureFactory(category_code="355"))
    AdherentFactory(structure=structure, college=College.PRIVATE_ESTABLISHMENTS, status=AdherentStatus.MEMBER)
    assert resolve_structure(structure.pk) == StructureContext(department="35", category="355", college=2)
    assert resolve_structure(999_999_999) is None


def test_usage_emit_fills_the_structure_context_from_the_directory() -> None:
    finistere = DepartmentFactory(code="29", name="Finistère")
    structure = cast(
        Structure,
        StructureFactory(
            category_code="124", commune=CommuneFactory(insee_code="29019", department=finistere)
        ),
    )

    event = usage_emit("messagerie.message_sent", structure_id=structure.pk)
    assert (event.department, event.category, event.college) == ("29", "124", None)
    given = usage_emit("messagerie.message_sent", structure_id=structure.pk, department="56", college=3)
    assert (given.department, given.category, given.college) == ("56", "124", 3)


def test_actor_is_stored_only_as_a_keyed_pseudonym(settings: Any) -> None:
    user = cast(User, UserFactory())
    event = usage_emit("dmp.document_submitted", actor=user)
    stored = UsageEvent.objects.get(pk=event.pk)
    assert stored.actor_key == actor_key(user)
    assert len(stored.actor_key) == 32
    assert stored.actor_key != str(user.pk)
    assert user.username not in stored.actor_key
    assert stored.dims == {}
    # Keyed: another SECRET_KEY gives another pseudonym (no dictionary attack on small ids without it).
    settings.SECRET_KEY = "another-secret-key-for-this-test-only-0123456789"
    assert actor_key(user) != stored.actor_key


def test_sign_in_records_the_actor_pseudonym(client: Any, django_user_model: Any) -> None:
    user = django_user_model.objects.create_user(username="u2", password="Correct-Horse-42-battery")
    client.post("/compte/connexion/", {"username": "u2", "password": "Correct-Horse-42-battery"})
    event = UsageEvent.objects.get(kind="auth.sign_in")
    assert event.actor_key == actor_key(user)


def test_mssante_coverage_snapshot_per_department() -> None:
    from annuaire.usage_hooks import mssante_coverage_snapshot

    structure = StructureFactory()
    covered = [ExerciceFactory(structure=structure).professional for _ in range(3)]
    for professional in covered:
        MailboxAddressFactory(professional=professional)
    for _ in range(2):
        ExerciceFactory(structure=structure)
    day = timezone.localdate()
    assert mssante_coverage_snapshot(day=day) == 1
    assert mssante_coverage_snapshot(day=day) == 1  # idempotent: replaces the day's snapshot
    rollups.rollup_run()
    total = indicator_total("annuaire.mssante_coverage", start=day, end=day)
    assert (total.value, total.suppressed) == (60.0, False)  # small cells do not apply to directory facts
    rows = indicator_breakdown("annuaire.mssante_coverage", start=day, end=day, by="department")
    assert [(r.key, r.label, r.value) for r in rows] == [("35", "Ille-et-Vilaine", 60.0)]


def test_ror_capacity_update_emits_and_snapshots() -> None:
    from ror.services import capacity_update
    from ror.usage_hooks import usage_snapshots

    fresh, location = offer_with_location(capacities={"01": 20, "02": 4})
    offer_with_location(
        structure=fresh.structure,
        capacities={"01": 10, "02": 3},
        updated_at=timezone.now() - dt.timedelta(days=3),
    )
    user = cast(User, UserFactory())
    StructureMembershipFactory(user=user, structure=fresh.structure)
    capacity_update(
        offer=fresh,
        location=location,
        values=[{"capacity_type": "01", "status": "02", "count": 5}],
        actor=user,
        source="form",
    )
    event = UsageEvent.objects.get(kind="ror.capacity_update")
    assert (event.structure_id, event.department, event.dims["source"]) == (fresh.structure_id, "35", "form")
    assert event.actor_key == actor_key(user)
    assert usage_snapshots() == {"freshness": 1, "beds": 1}
    rollups.rollup_run()
    today = timezone.localdate()
    assert indicator_total("ror.freshness", start=today, end=today).value == 50.0
    assert indicator_total("ror.beds_available", start=today, end=today).value == 8.0  # 5 + 3 available


def test_snapshot_tasks_are_thin_wrappers() -> None:
    from annuaire.tasks import usage_snapshot as annuaire_snapshot
    from ror.tasks import usage_snapshot as ror_snapshot

    ExerciceFactory()
    assert annuaire_snapshot.delay().get() == 1
    assert ror_snapshot.delay().get() == {"freshness": 0, "beds": 0}
    assert UsageEvent.objects.filter(kind="ror.freshness.empty").exists()


def test_a_directory_import_emits_one_usage_event() -> None:
    from annuaire.services.imports import import_finess_file

    data = Path(__file__).resolve().parent.parent / "data" / "annuaire" / "finess_etalab_2025_01.csv"
    run = import_finess_file(path=data)
    event = UsageEvent.objects.get(kind="annuaire.import")
    assert event.value == float(run.rows_read)
    assert event.dims == {"import_kind": run.kind, "status": "succeeded", "rejected": run.rows_rejected}
