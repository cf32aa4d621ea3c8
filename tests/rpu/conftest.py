from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from enrs.rpu.models import EmergencyDepartment

DATA = Path(__file__).resolve().parent.parent / "data" / "rpu"
PARIS = ZoneInfo("Europe/Paris")
FINESS = "350000014"  # fictitious, valid Luhn key
OTHER_FINESS = "290000025"


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


def paris(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=PARIS)


def oscour_xml(
    patients: list[dict[str, str]],
    *,
    finess: str = FINESS,
    start: str | None = "10/03/2026",
    end: str | None = "10/03/2026",
) -> bytes:
    """A small OSCOUR file: one <PATIENT> per dict (element name → text)."""
    period = f"<DATEDEBUT>{start}</DATEDEBUT><DATEFIN>{end}</DATEFIN>" if start and end else ""
    body = "".join(
        "<PATIENT>" + "".join(f"<{tag}>{value}</{tag}>" for tag, value in patient.items()) + "</PATIENT>"
        for patient in patients
    )
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<OSCOUR><ETABLISSEMENT>'
        f"<FINESS>{finess}</FINESS>{period}</ETABLISSEMENT><PASSAGES>{body}</PASSAGES></OSCOUR>"
    )
    return xml.encode()


def full_patient(entry: str = "10/03/2026 10:00", **overrides: str) -> dict[str, str]:
    patient = {
        "CP": "35000",
        "COMMUNE": "RENNES",
        "NAISSANCE": "01/01/1980",
        "SEXE": "F",
        "ENTREE": entry,
        "MODE_ENTREE": "8",
        "PROVENANCE": "5",
        "TRANSPORT": "PERSO",
        "TRANSPORT_PEC": "AUCUN",
        "MOTIF": "DIVERS23",
        "GRAVITE": "2",
        "DP": "R104",
        "SORTIE": entry[:11] + "12:00",
        "MODE_SORTIE": "8",
    }
    patient.update(overrides)
    return {key: value for key, value in patient.items() if value != ""}


@pytest.fixture
def emergency_department(db: None) -> EmergencyDepartment:
    return EmergencyDepartment.objects.create(
        finess=FINESS,
        name="Urgences adultes et pédiatriques de Fictiville",
        establishment_finess="350000006",
        establishment_name="CH de Fictiville",
        department="35",
        contact_email="urgences@ch-fictiville.example",
    )


@pytest.fixture
def other_department(db: None) -> EmergencyDepartment:
    return EmergencyDepartment.objects.create(
        finess=OTHER_FINESS, name="Urgences de Bourg-Exemple", department="29", contact_email=""
    )


@pytest.fixture
def freeze(monkeypatch: pytest.MonkeyPatch) -> Callable[[datetime], None]:
    """Freeze `django.utils.timezone.now` (what the services and selectors read) at a given instant."""
    from django.utils import timezone

    def set_now(moment: datetime) -> None:
        monkeypatch.setattr(timezone, "now", lambda: moment)

    return set_now
