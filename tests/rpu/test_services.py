"""RPU import (upload and drop directory), idempotent re-import, feed supervision with frozen time."""

from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from django.core import mail
from django.test import override_settings

from enrs.audit.models import AuditEvent
from enrs.rpu import services
from enrs.rpu.models import (
    AgeBand,
    EmergencyDepartment,
    FeedCheck,
    FeedState,
    FileSource,
    FileStatus,
    NoticeState,
    RpuFile,
    RpuPassage,
    RpuRejection,
)
from tests.rpu.conftest import OTHER_FINESS, full_patient, oscour_xml, paris, sample

pytestmark = pytest.mark.django_db

DAY = date(2026, 3, 10)


def test_valid_file_is_imported_without_birth_dates(emergency_department: EmergencyDepartment) -> None:
    received = paris(2026, 3, 11, 2, 30)
    rpu_file = services.rpu_file_import(
        data=sample("valide.xml"), source=FileSource.DROP, original_name="valide.xml", received_at=received
    )
    assert rpu_file.status == FileStatus.IMPORTED
    assert rpu_file.emergency_department == emergency_department
    assert (rpu_file.record_count, rpu_file.accepted_count, rpu_file.rejected_count) == (5, 5, 0)
    assert (rpu_file.period_start, rpu_file.period_end) == (DAY, DAY)
    assert rpu_file.extracted_at == paris(2026, 3, 11, 2, 10)
    passages = list(RpuPassage.objects.order_by("record_index"))
    assert [p.age_years for p in passages] == [0, 14, 85, 40, 76]
    assert [p.age_months for p in passages] == [5, None, None, None, None]
    assert [p.age_band for p in passages] == [
        AgeBand.UNDER_1,
        AgeBand.UNDER_18,
        AgeBand.ELDERLY,
        AgeBand.ADULT,
        AgeBand.ELDERLY,
    ]
    first, _second, third, fourth, fifth = passages
    assert first.entry_at == paris(2026, 3, 10, 8, 15)
    assert first.length_minutes == 110
    assert fifth.length_minutes == 6 * 60 + 5  # exit the next morning
    assert fifth.entry_day == DAY
    assert (third.da_count, third.actes_count, third.dp) == (2, 2, "I219")
    assert (fourth.motif, fourth.motif_filled) == ("", True)
    assert not hasattr(first, "birth_date")
    assert AuditEvent.objects.filter(action="rpu.file.import", target_id=str(rpu_file.pk)).exists()


def test_bad_records_are_rejected_and_the_rest_kept(emergency_department: EmergencyDepartment) -> None:
    rpu_file = services.rpu_file_import(data=sample("passages_invalides.xml"), source="upload")
    assert (rpu_file.accepted_count, rpu_file.rejected_count) == (2, 4)
    assert list(rpu_file.passages.order_by("record_index").values_list("record_index", flat=True)) == [1, 6]
    rejections = list(RpuRejection.objects.filter(file=rpu_file).order_by("record_index"))
    assert [r.record_index for r in rejections] == [2, 3, 4, 5]
    assert rejections[3].reasons == ["ENTREE : date et heure d'entrée absentes (obligatoires)."]
    assert all(r.line for r in rejections)


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("mal_forme.xml", "XML mal formé"),
        ("bombe.xml", "DOCTYPE ou ENTITY"),
        ("finess_errone.xml", "clé de contrôle"),
    ],
)
def test_malformed_file_is_refused_whole(
    emergency_department: EmergencyDepartment, name: str, fragment: str
) -> None:
    with pytest.raises(services.RpuFileRefused, match=fragment) as caught:
        services.rpu_file_import(data=sample(name), source="upload", original_name=name)
    refused = caught.value.rpu_file
    assert refused.status == FileStatus.REFUSED
    assert fragment in refused.refusal_reason
    assert RpuPassage.objects.count() == 0
    assert RpuRejection.objects.count() == 0
    assert RpuFile.objects.filter(status=FileStatus.IMPORTED).count() == 0
    assert AuditEvent.objects.filter(action="rpu.file.refuse", outcome="failure").count() == 1


def test_unknown_finess_is_refused(db: None) -> None:
    with pytest.raises(services.RpuFileRefused, match="aucune structure des urgences"):
        services.rpu_file_import(data=sample("valide.xml"), source="upload")
    assert RpuPassage.objects.count() == 0


def test_file_of_another_department_is_refused_on_upload(
    emergency_department: EmergencyDepartment, other_department: EmergencyDepartment
) -> None:
    with pytest.raises(services.RpuFileRefused, match="pas celui de") as caught:
        services.rpu_file_import(
            data=sample("valide.xml"), source="upload", expected_department=other_department
        )
    assert caught.value.rpu_file.emergency_department == other_department
    assert RpuPassage.objects.count() == 0


def test_reimport_of_the_same_day_replaces_it(emergency_department: EmergencyDepartment) -> None:
    first = services.rpu_file_import(data=sample("valide.xml"), source="drop")
    second = services.rpu_file_import(data=sample("valide.xml"), source="drop")
    first.refresh_from_db()
    assert first.status == FileStatus.REPLACED
    assert second.status == FileStatus.IMPORTED
    assert RpuPassage.objects.count() == 5
    assert set(RpuPassage.objects.values_list("file_id", flat=True)) == {second.pk}
    # A corrected file with fewer passages for that day replaces the day, not just adds.
    third = services.rpu_file_import(data=oscour_xml([full_patient(), full_patient()]), source="upload")
    assert RpuPassage.objects.count() == 2
    assert set(RpuPassage.objects.values_list("file_id", flat=True)) == {third.pk}


def test_a_file_for_another_day_keeps_the_first(emergency_department: EmergencyDepartment) -> None:
    services.rpu_file_import(data=sample("valide.xml"), source="drop")
    services.rpu_file_import(
        data=oscour_xml([full_patient("11/03/2026 10:00")], start="11/03/2026", end="11/03/2026"),
        source="drop",
    )
    assert RpuPassage.objects.filter(entry_day=DAY).count() == 5
    assert RpuPassage.objects.filter(entry_day=DAY + timedelta(days=1)).count() == 1


def test_period_is_taken_from_entries_when_absent(emergency_department: EmergencyDepartment) -> None:
    rpu_file = services.rpu_file_import(
        data=oscour_xml(
            [full_patient("09/03/2026 10:00"), full_patient("10/03/2026 10:00")], start=None, end=None
        ),
        source="drop",
    )
    assert (rpu_file.period_start, rpu_file.period_end) == (date(2026, 3, 9), DAY)
    with pytest.raises(services.RpuFileRefused, match="Période inconnue"):
        services.rpu_file_import(data=oscour_xml([], start=None, end=None), source="drop")


# --- drop directory -----------------------------------------------------------------------------------


def test_drop_directory_imports_and_sorts_files(
    emergency_department: EmergencyDepartment, tmp_path: Path
) -> None:
    (tmp_path / "a-valide.xml").write_bytes(sample("valide.xml"))
    (tmp_path / "b-bombe.xml").write_bytes(sample("bombe.xml"))
    (tmp_path / "notes.txt").write_text("ignored")
    outcomes = services.drop_dir_scan(directory=tmp_path, now=paris(2026, 3, 11, 3, 0))
    assert [(o.name, o.refused) for o in outcomes] == [("a-valide.xml", False), ("b-bombe.xml", True)]
    assert [p.name for p in (tmp_path / "done").iterdir()] == ["20260311T030000-a-valide.xml"]
    assert [p.name for p in (tmp_path / "refused").iterdir()] == ["20260311T030000-b-bombe.xml"]
    assert list((tmp_path / "processing").iterdir()) == []
    assert (tmp_path / "notes.txt").exists()
    assert RpuFile.objects.get(original_name="a-valide.xml").source == FileSource.DROP
    assert RpuPassage.objects.count() == 5
    # A second scan finds nothing new.
    assert services.drop_dir_scan(directory=tmp_path) == []


@override_settings(RPU_MAX_FILE_BYTES=100)
def test_drop_directory_refuses_a_file_over_the_limit_without_reading_it(
    emergency_department: EmergencyDepartment, tmp_path: Path
) -> None:
    (tmp_path / "gros.xml").write_bytes(sample("valide.xml"))
    [outcome] = services.drop_dir_scan(directory=tmp_path)
    assert outcome.refused
    assert "trop volumineux" in outcome.rpu_file.refusal_reason
    assert outcome.rpu_file.size == 101


def test_drop_directory_missing_is_a_no_op(tmp_path: Path) -> None:
    assert services.drop_dir_scan(directory=tmp_path / "absent") == []


# --- supervision ----------------------------------------------------------------------------------------


def _import_day(day: date, count: int, *, received: datetime, **overrides: str) -> RpuFile:
    text = day.strftime("%d/%m/%Y")
    return services.rpu_file_import(
        data=oscour_xml([full_patient(f"{text} 10:00", **overrides)] * count, start=text, end=text),
        source="drop",
        received_at=received,
    )


def test_missing_late_incomplete_and_ok_feeds_with_frozen_time(
    emergency_department: EmergencyDepartment,
    other_department: EmergencyDepartment,
    freeze: Callable[[datetime], None],
    django_capture_on_commit_callbacks: Callable,
) -> None:
    third = EmergencyDepartment.objects.create(
        finess="560000036", name="Urgences de Port-Exemple", department="56", contact_email="u@port.example"
    )
    fourth = EmergencyDepartment.objects.create(
        finess="220000046",
        name="Urgences de Saint-Modèle",
        department="22",
        expected_daily=20,
        contact_email="u@modele.example",
    )
    # Usual volume of the first ED: 10 a day over the previous week, on time.
    for offset in range(1, 8):
        day = DAY - timedelta(days=offset)
        _import_day(day, 10, received=paris(day.year, day.month, day.day, 23, 0) + timedelta(hours=3))
    # The day under check: first ED on time and complete; third ED after 4 a.m.; fourth ED 5 passages of
    # the 20 expected and no diagnosis; second ED nothing.
    _import_day(DAY, 10, received=paris(2026, 3, 11, 3, 59))
    services.rpu_file_import(
        data=oscour_xml([full_patient()] * 8, finess=third.finess),
        source="drop",
        received_at=paris(2026, 3, 11, 5, 30),
    )
    services.rpu_file_import(
        data=oscour_xml([full_patient(DP="")] * 5, finess=fourth.finess),
        source="drop",
        received_at=paris(2026, 3, 11, 1, 0),
    )
    freeze(paris(2026, 3, 11, 7, 0))
    from enrs.rpu.selectors import yesterday

    assert yesterday() == DAY
    with django_capture_on_commit_callbacks(execute=True):
        checks = {c.emergency_department_id: c for c in services.feed_check_run(day=yesterday())}

    ok = checks[emergency_department.pk]
    assert (ok.state, ok.passages, ok.usual, ok.problems) == (FeedState.OK, 10, 10, [])
    assert ok.notice_state == NoticeState.NONE

    missing = checks[other_department.pk]
    assert missing.state == FeedState.MISSING
    assert missing.problems == ["Aucun fichier reçu pour le 10/03/2026."]
    assert missing.notice_state == NoticeState.NO_ADDRESS  # no contact e-mail

    late = checks[third.pk]
    assert late.state == FeedState.LATE
    assert late.problems == ["Fichier reçu le 11/03/2026 à 05:30, après l'heure limite (4 h)."]

    incomplete = checks[fourth.pk]
    assert incomplete.state == FeedState.INCOMPLETE
    assert incomplete.problems == [
        "5 passage(s) reçu(s) pour un volume habituel de 20 par jour.",
        "Diagnostic principal renseigné(e) pour 0 % des passages seulement.",
    ]

    # One e-mail to each establishment with an address and a problem.
    assert sorted(message.to[0] for message in mail.outbox) == ["u@modele.example", "u@port.example"]
    late_mail = next(m for m in mail.outbox if m.to == ["u@port.example"])
    assert "RPU du 10/03/2026" in late_mail.subject
    assert "après l'heure limite" in late_mail.body
    assert FeedCheck.objects.get(pk=late.pk).notice_state == NoticeState.SENT

    # A re-run (e.g. after the second ED sent its file) updates the state and does not e-mail again.
    services.rpu_file_import(
        data=oscour_xml([full_patient()] * 10, finess=OTHER_FINESS),
        source="upload",
        received_at=paris(2026, 3, 11, 9, 0),
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.feed_check_run(day=DAY)
    assert FeedCheck.objects.get(emergency_department=other_department, day=DAY).state == FeedState.LATE
    assert FeedCheck.objects.filter(day=DAY).count() == 4
    assert len(mail.outbox) == 2
    assert AuditEvent.objects.filter(action="rpu.feed.check", target_id="2026-03-10").count() == 2


def test_supervise_task_checks_yesterday(
    emergency_department: EmergencyDepartment, freeze: Callable[[datetime], None]
) -> None:
    from enrs.rpu.tasks import supervise

    freeze(paris(2026, 3, 11, 0, 30))  # just after midnight local time (23:30 UTC the day before)
    assert supervise() == {"missing": 1}
    assert FeedCheck.objects.get().day == DAY


def test_feed_notice_failure_is_recorded_then_retried(
    emergency_department: EmergencyDepartment, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ConnectionRefusedError("relais injoignable")

    monkeypatch.setattr(services, "send_mail", broken)
    monkeypatch.setattr(services.transaction, "on_commit", lambda callback: None)
    [check] = services.feed_check_run(day=DAY)
    assert check.notice_state == NoticeState.PENDING
    for _attempt in range(services.NOTICE_MAX_ATTEMPTS - 1):
        with pytest.raises(ConnectionRefusedError):
            services.feed_notice_send(check_id=check.pk)
    check.refresh_from_db()
    assert (check.notice_state, check.notice_attempts) == (
        NoticeState.PENDING,
        services.NOTICE_MAX_ATTEMPTS - 1,
    )
    assert "relais injoignable" in check.notice_error
    assert services.feed_notice_send(check_id=check.pk) == NoticeState.FAILED
    assert services.feed_notice_send(check_id=check.pk) == "skipped"


def test_drop_directory_takes_back_a_file_left_by_a_dead_worker(
    emergency_department: EmergencyDepartment, tmp_path: Path
) -> None:
    import os
    import time

    (tmp_path / "processing").mkdir()
    left = tmp_path / "processing" / "rpu.xml"
    left.write_bytes(sample("valide.xml"))
    fresh = tmp_path / "processing" / "en-cours.xml"
    fresh.write_bytes(sample("valide.xml"))
    old = time.time() - services.STALE_CLAIM_SECONDS - 10
    os.utime(left, (old, old))
    [outcome] = services.drop_dir_scan(directory=tmp_path)
    assert (outcome.name, outcome.refused) == ("rpu.xml", False)
    assert fresh.exists()  # still being imported by another worker


def test_length_of_stay_across_the_autumn_clock_change(emergency_department: EmergencyDepartment) -> None:
    # 25/10/2026: clocks go back at 3:00 → 2:00 in France, so 01:00 → 05:00 lasts 5 hours.
    data = oscour_xml(
        [full_patient("25/10/2026 01:00", SORTIE="25/10/2026 05:00")], start="25/10/2026", end="25/10/2026"
    )
    services.rpu_file_import(data=data, source="drop")
    assert RpuPassage.objects.get().length_minutes == 5 * 60
