"""``import_finess_file`` / ``manage.py import_finess`` on the sample FINESS extractions: counts, rejections,
coordinates, idempotency, update + closure + change log, ownership of sites created by the RPPS import."""

import io
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from annuaire.models import (
    ChangeKind,
    DirectoryChange,
    Exercice,
    ImportKind,
    ImportRejection,
    ImportRun,
    ImportStatus,
    Structure,
    StructureKind,
)
from annuaire.services.imports import ImportFailed, import_finess_file, import_rpps_file, import_summary
from enrs.audit.models import AuditEvent
from tests.annuaire.factories import CommuneFactory, DepartmentFactory, StructureFactory

pytestmark = pytest.mark.django_db

DATA = Path(__file__).resolve().parent.parent / "data" / "annuaire"
FIRST = DATA / "finess_etalab_2025_01.csv"
NEWER = DATA / "finess_etalab_2025_02.csv"
RPPS = DATA / "rpps_2025_01_utf8.txt"

HOSPITAL, EHPAD, PHARMACY, HEALTH_CENTRE = "352000012", "352000020", "352000038", "352000046"
FLEYRIAT, FELIX_GUYON, AJACCIO, TY_GLAZ, USLD = (
    "010000024",
    "970400024",
    "2A2000071",
    "352000061",
    "352000053",
)
FIRST_FILE_SITES = {HOSPITAL, EHPAD, PHARMACY, HEALTH_CENTRE, FLEYRIAT, FELIX_GUYON, AJACCIO, TY_GLAZ}
FIRST_FILE_REJECTIONS = [
    (10, "numéro FINESS ET « 352000013 » : clé de contrôle (Luhn) fausse"),
    (11, "numéro SIRET invalide « 21000003000011 » (14 chiffres, clé de Luhn)"),
    (12, "raison sociale vide"),
    (13, "nombre de colonnes incorrect : 20 au lieu de 32"),
    (14, "type de ligne inconnu « structurej »"),
    (15, "FINESS ET 352000012 en double (déjà ligne 2)"),
    (19, "coordonnées illisibles"),
    (20, "coordonnées Lambert-93 hors de la France métropolitaine"),
    (21, "numéro FINESS ET « 352000014 » : clé de contrôle (Luhn) fausse"),
]


def counts(run: ImportRun) -> dict[str, Any]:
    return {
        "status": run.status,
        "read": run.rows_read,
        "rejected": run.rows_rejected,
        "created": run.rows_created,
        "updated": run.rows_updated,
        "unchanged": run.rows_unchanged,
        "deactivated": run.rows_deactivated,
    }


def test_first_import_counts_data_and_coordinates() -> None:
    # The legal entity of the hospital is known; Rennes is a commune of the directory.
    legal_entity = StructureFactory.create(
        legal_entity=True, finess_ej="352990014", name="CHU DE BROCELIANDE"
    )
    rennes = CommuneFactory.create(
        insee_code="35238", name="Rennes", department=DepartmentFactory.create(code="35")
    )

    run = import_finess_file(path=FIRST)

    assert counts(run) == {
        "status": ImportStatus.SUCCEEDED, "read": 21, "rejected": 9, "created": 8, "updated": 0,
        "unchanged": 0, "deactivated": 0,
    }  # fmt: skip
    assert (run.kind, run.encoding) == (ImportKind.FINESS, "windows-1252")
    assert (
        set(Structure.objects.filter(last_import_run=run).values_list("finess_et", flat=True))
        == FIRST_FILE_SITES
    )
    assert set(Structure.objects.filter(last_import_run=run).values_list("kind", flat=True)) == {
        StructureKind.SITE
    }

    hospital = Structure.objects.get(finess_et=HOSPITAL)
    assert (hospital.name, hospital.finess_ej, hospital.legal_entity, hospital.siret, hospital.siren) == (
        "CENTRE HOSPITALIER DE BROCELIANDE", "352990014", legal_entity, "21000002200017", "210000022",
    )  # fmt: skip
    assert (hospital.address_line, hospital.postal_code, hospital.commune) == (
        "12 R DE L HOPITAL, CS 70001", "35033", rennes,
    )  # fmt: skip
    assert (hospital.category_code, hospital.category_label, hospital.sector_code) == (
        "355", "Centre Hospitalier (C.H.)", "",
    )  # fmt: skip
    assert hospital.latitude == pytest.approx(48.1205, abs=1e-5)  # Lambert-93 (350 828.6, 6 790 398.8)
    assert hospital.longitude == pytest.approx(-1.6953, abs=1e-5)
    fleyriat = Structure.objects.get(finess_et=FLEYRIAT)  # a real line and its real geolocation
    assert (fleyriat.name, fleyriat.postal_code, fleyriat.latitude, fleyriat.longitude) == (
        "CENTRE HOSPITALIER DE BOURG-EN-BRESSE FLEYRIAT", "01440", 46.222745, 5.208596,
    )  # fmt: skip
    assert fleyriat.commune is None  # Viriat is not a commune of this directory
    overseas = Structure.objects.get(finess_et=FELIX_GUYON)  # UTM coordinates: not converted
    assert (overseas.latitude, overseas.longitude, overseas.category_label) == (
        None, None, "Centre Hospitalier Régional (C.H.R.)",
    )  # fmt: skip
    assert Structure.objects.get(finess_et=HEALTH_CENTRE).name == "CENTRE DE SANTÉ INFIRMIER CŒUR DE VILLE"
    assert Structure.objects.get(finess_et=AJACCIO).name == "CENTRE MÉDICO-PSYCHOLOGIQUE D'AJACCIO"
    assert Structure.objects.get(finess_et=TY_GLAZ).name == 'LIEU DE VIE ET D\'ACCUEIL "TY GLAZ"'
    assert Structure.objects.get(finess_et=PHARMACY).name == "PHARMACIE DES LICES"  # short name only

    assert [
        (r.line_number, r.reason) for r in ImportRejection.objects.filter(run=run)
    ] == FIRST_FILE_REJECTIONS
    assert (
        DirectoryChange.objects.filter(run=run, kind=ChangeKind.CREATED, structure__isnull=False).count() == 8
    )
    assert import_summary(run)["geolocated"] == 2


def test_the_same_file_twice_changes_nothing() -> None:
    import_finess_file(path=FIRST)
    before = list(Structure.objects.order_by("id").values_list())

    again = import_finess_file(path=FIRST)

    assert counts(again) == {
        "status": ImportStatus.SUCCEEDED, "read": 21, "rejected": 9, "created": 0, "updated": 0,
        "unchanged": 8, "deactivated": 0,
    }  # fmt: skip
    assert list(Structure.objects.order_by("id").values_list()) == before
    assert not DirectoryChange.objects.filter(run=again).exists()


def test_a_newer_file_updates_closes_and_records_what_changed() -> None:
    import_finess_file(path=FIRST)
    hospital = Structure.objects.get(finess_et=HOSPITAL)

    run = import_finess_file(path=NEWER)

    assert counts(run) == {
        "status": ImportStatus.SUCCEEDED, "read": 12, "rejected": 0, "created": 1, "updated": 2,
        "unchanged": 5, "deactivated": 1,
    }  # fmt: skip
    assert run.encoding == "utf-8"  # the publisher changed encoding between the two files
    changes = {
        (c.structure.finess_et if c.structure else "", c.kind): c.fields
        for c in DirectoryChange.objects.filter(run=run).select_related("structure")
    }
    assert changes == {
        (HOSPITAL, ChangeKind.UPDATED): {
            "name": {
                "before": "CENTRE HOSPITALIER DE BROCELIANDE",
                "after": "CENTRE HOSPITALIER DE BROCELIANDE - SITE DE PONTCHAILLOU",
            },
            "address_line": {
                "before": "12 R DE L HOPITAL, CS 70001",
                "after": "2 RUE HENRI LE GUILLOUX, CS 70001",
            },
        },
        (HEALTH_CENTRE, ChangeKind.UPDATED): {
            "category_code": {"before": "124", "after": "130"},
            "category_label": {"before": "Centre de Santé", "after": "Centre de Soins Infirmiers"},
        },
        (USLD, ChangeKind.CREATED): {},
        (EHPAD, ChangeKind.DEACTIVATED): {"is_active": {"before": True, "after": False}},
    }
    hospital.refresh_from_db()
    assert hospital.latitude == pytest.approx(48.1205, abs=1e-5)  # unchanged coordinates: not in the change
    ehpad = Structure.objects.get(finess_et=EHPAD)
    assert (ehpad.is_active, ehpad.last_import_run) == (False, run)
    usld = Structure.objects.get(finess_et=USLD)
    assert (usld.name, usld.finess_ej, usld.is_active, usld.latitude is not None) == (
        "UNITE DE SOINS DE LONGUE DUREE DE BROCELIANDE", "352990014", True, True,
    )  # fmt: skip
    # Back in a later file: reactivated.
    back = import_finess_file(path=FIRST)
    assert DirectoryChange.objects.get(run=back, structure=ehpad).kind == ChangeKind.REACTIVATED


def test_structures_entered_by_hand_are_never_closed_by_an_import() -> None:
    by_hand = StructureFactory.create(name="Structure saisie à la main")
    import_finess_file(path=FIRST)

    import_finess_file(path=NEWER)

    by_hand.refresh_from_db()
    assert by_hand.is_active
    assert by_hand.last_import_run is None


def test_sites_created_by_the_rpps_import_are_taken_over_by_the_finess_import() -> None:
    rpps_run = import_rpps_file(path=RPPS)  # creates the hospital as a minimal site (name, technical id)
    minimal = Structure.objects.get(finess_et=HOSPITAL)
    assert (minimal.last_import_run, minimal.rpps_structure_id) == (rpps_run, "R10100000001234")
    exercices = set(Exercice.objects.filter(structure=minimal).values_list("pk", flat=True))

    run = import_finess_file(path=FIRST)

    hospital = Structure.objects.get(finess_et=HOSPITAL)
    assert hospital.pk == minimal.pk
    assert (hospital.last_import_run, hospital.rpps_structure_id) == (run, "R10100000001234")
    assert (hospital.address_line, hospital.sector_code) == (
        "12 R DE L HOPITAL, CS 70001",
        "SA01",
    )  # sector kept
    assert DirectoryChange.objects.get(run=run, structure=hospital).kind == ChangeKind.UPDATED
    assert set(Exercice.objects.filter(structure=hospital).values_list("pk", flat=True)) == exercices
    # The RPPS file again: the site it now links by FINESS stays the FINESS import's.
    import_rpps_file(path=RPPS)
    hospital.refresh_from_db()
    assert hospital.last_import_run == run


def test_an_rpps_file_is_refused_and_nothing_is_written() -> None:
    with pytest.raises(ImportFailed, match=r"l'extraction RPPS .*utilisez la commande import_rpps"):
        import_finess_file(path=RPPS)

    assert not Structure.objects.exists()
    assert not ImportRejection.objects.exists()
    run = ImportRun.objects.get()
    assert (run.kind, run.status) == (ImportKind.FINESS, ImportStatus.FAILED)
    assert AuditEvent.objects.get(action="annuaire.import").outcome == "failure"


def test_a_truncated_finess_file_is_refused(tmp_path: Path) -> None:
    data = FIRST.read_bytes()
    path = tmp_path / "etalab_cs1100507_stock_cut.csv"
    path.write_bytes(data[: data.index(b"DE PARIS")])  # inside line 6 (Fleyriat)

    with pytest.raises(ImportFailed, match=r"Fichier tronqué : la dernière ligne \(n° 6\)"):
        import_finess_file(path=path)
    assert not Structure.objects.exists()


def test_command_report(tmp_path: Path) -> None:
    out = io.StringIO()
    call_command("import_finess", str(FIRST), "--rejections-csv", str(tmp_path / "rejets.csv"), stdout=out)

    text = out.getvalue()
    assert "Import FINESS n°" in text
    for label, value in [
        ("lignes lues", "21"),
        ("lignes rejetées", "9"),
        ("créés", "8"),
        ("géolocalisés", "2"),
    ]:
        line = next(line for line in text.splitlines() if line.strip().startswith(label))
        assert line.split()[-1] == value, line
    assert (tmp_path / "rejets.csv").read_text("utf-8-sig").count("\n") == 10
    with pytest.raises(CommandError, match="pas l'extraction FINESS"):
        call_command("import_finess", str(DATA / "annuaire_export_tableur.csv"), stdout=io.StringIO())
