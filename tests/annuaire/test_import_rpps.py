"""``import_rpps_file`` / ``manage.py import_rpps`` on the sample extractions of ``tests/data/annuaire``:
counts, rejections with line numbers, idempotency, update + deactivation + change log, encoding detection,
truncated and wrong-format files, audit."""

import csv
import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from annuaire.models import (
    ChangeKind,
    DirectoryChange,
    Exercice,
    ImportKind,
    ImportRejection,
    ImportRun,
    ImportStatus,
    Professional,
    Structure,
    StructureKind,
)
from annuaire.services import imports
from annuaire.services.imports import ImportFailed, import_finess_file, import_rpps_file, import_summary
from annuaire.standards.nomenclatures import nomenclatures
from enrs.accounts.models import User
from enrs.audit.models import AuditEvent
from tests.annuaire.factories import ProfessionalFactory
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

DATA = Path(__file__).resolve().parent.parent / "data" / "annuaire"
FIRST = DATA / "rpps_2025_01_utf8.txt"
NEWER = DATA / "rpps_2025_02_utf8.txt"
CP1252 = DATA / "rpps_2025_01_cp1252.txt"
TRUNCATED = DATA / "rpps_truncated.txt"
SPREADSHEET = DATA / "annuaire_export_tableur.csv"
FINESS = DATA / "finess_etalab_2025_01.csv"

LE_GALL, KERMARREC, MORVAN = "810600000011", "810600000029", "810600000037"
TEST_IDENTITY, ROUXEL, LE_BIHAN, TANGUY = "810003461033", "0351234567", "810600000045", "810600000052"
QUEMENER, GUILLOU, PERRIN, HAMON = "810600000060", "810600000078", "810600000086", "810600000094"
LE_ROUX, BOURHIS, JEGOU = "810600000102", "810600000284", "810600000110"
FIRST_FILE_PROFESSIONALS = {
    LE_GALL, KERMARREC, MORVAN, TEST_IDENTITY, ROUXEL, LE_BIHAN, TANGUY, QUEMENER, GUILLOU, PERRIN, HAMON,
    LE_ROUX, BOURHIS,
}  # fmt: skip
FIRST_FILE_REJECTIONS = [
    (16, "code secteur d'activité inconnu « SA99 » (TRE_R02)"),
    (17, "nombre de colonnes incorrect : 21 au lieu de 56"),
    (18, "numéro RPPS mal formé « 1060000012 » : 11 chiffres attendus"),
    (19, "identification nationale PP « 810600000136 » incohérente avec l'identifiant : "
         "« 810600000128 » attendu"),
    (20, "type d'identifiant PP inconnu « 3 » (8 = RPPS, 0 = ADELI)"),
    (21, "numéro FINESS site « 352000013 » : clé de contrôle (Luhn) fausse"),
    (22, "numéro SIRET site invalide « 21000005500018 » (14 chiffres, clé de Luhn)"),
    (23, "code profession inconnu « 99 » (TRE_G15)"),
    (24, "nom d'exercice vide"),
    (25, "code mode d'exercice inconnu « X » (TRE_R23)"),
    (26, "activité en structure sans mode d'exercice"),
    (27, "numéro ADELI mal formé « 35123456 » : 9 chiffres attendus"),
    (28, "code civilité inconnu « MLLE » (TRE_R81)"),
    (29, "code catégorie professionnelle inconnu « Z » (TRE_R09)"),
]  # fmt: skip
CH_BROCELIANDE, PHARMACIE_LICES, EHPAD_GLYCINES = "352000012", "352000038", "352000020"
CABINET_LE_GALL, MSP_BLOSNE, CABINET_TANNEURS = "C35100000101", "R10100000004567", "C35100000202"


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


def exercices(idnat_ps: str) -> set[tuple[str, str, str]]:
    """(structure key, role, mode) of the exercices of a professional; key: FINESS, technical id or SIRET."""
    return {
        (
            e.structure.finess_et or e.structure.rpps_structure_id or e.structure.siret,
            e.role_code,
            e.exercise_mode,
        )
        for e in Exercice.objects.filter(professional__idnat_ps=idnat_ps).select_related("structure")
    }


def directory_snapshot() -> dict[str, list[Any]]:
    return {
        "professionals": list(Professional.objects.order_by("id").values_list()),
        "structures": list(Structure.objects.order_by("id").values_list()),
        "exercices": list(Exercice.objects.order_by("id").values_list()),
    }


@pytest.fixture
def finess_loaded() -> ImportRun:
    """The FINESS sample: the Breton hospital, EHPAD and pharmacy exist before the RPPS import."""
    return import_finess_file(path=FINESS)


# --- First import ----------------------------------------------------------------------------------------


def test_first_import_counts_and_data(finess_loaded: ImportRun) -> None:
    hospital_before = Structure.objects.get(finess_et=CH_BROCELIANDE)

    run = import_rpps_file(path=FIRST)

    assert counts(run) == {
        "status": ImportStatus.SUCCEEDED, "read": 29, "rejected": 14, "created": 13, "updated": 0,
        "unchanged": 0, "deactivated": 0,
    }  # fmt: skip
    assert (run.kind, run.file_name, run.encoding) == (ImportKind.RPPS, FIRST.name, "utf-8")
    assert run.file_sha256 == hashlib.sha256(FIRST.read_bytes()).hexdigest()
    assert run.finished_at is not None
    assert run.finished_at >= run.started_at
    assert set(Professional.objects.values_list("idnat_ps", flat=True)) == FIRST_FILE_PROFESSIONALS
    assert not Professional.objects.exclude(last_import_run=run).exists()
    assert not Professional.objects.filter(is_active=False).exists()

    le_gall = Professional.objects.get(idnat_ps=LE_GALL)
    assert (le_gall.identifier_type, le_gall.rpps, le_gall.adeli, le_gall.civility_code) == (
        "RPPS", "10600000011", "", "MME",
    )  # fmt: skip
    assert (le_gall.last_name, le_gall.first_name, le_gall.profession_code, le_gall.profession_label) == (
        "LE GALL", "Anne-Sophie", "10", "Médecin",
    )  # fmt: skip
    # Her ordinal specialty wins over the "compétence exclusive" of her third line.
    assert (le_gall.specialty_code, le_gall.specialty_label, le_gall.category_code) == (
        "SM54",
        "Médecine Générale",
        "C",
    )
    assert le_gall.rpps_key_valid
    # Two activities; her third line repeats the cabinet (another savoir-faire): one exercice there.
    assert exercices(LE_GALL) == {(CABINET_LE_GALL, "FON-01", "L"), (CH_BROCELIANDE, "FON-22", "S")}
    assert Professional.objects.get(idnat_ps=TEST_IDENTITY).rpps_key_valid is False  # warned, imported
    rouxel = Professional.objects.get(idnat_ps=ROUXEL)
    assert (rouxel.identifier_type, rouxel.adeli, rouxel.rpps, rouxel.profession_label) == (
        "ADELI", "351234567", "", "Psychomotricien",
    )  # fmt: skip
    assert exercices(LE_BIHAN) == set()  # no activity: the professional only
    assert exercices(KERMARREC) == {(CH_BROCELIANDE, "FON-AU", "S")}  # no role in the file: FON-AU
    assert exercices(MORVAN) == {(PHARMACIE_LICES, "FON-03", "L")}
    assert exercices(PERRIN) == {(CABINET_TANNEURS, "FON-01", "L")}
    assert exercices(HAMON) == {(CABINET_TANNEURS, "FON-17", "L")}
    assert exercices(GUILLOU) == {("21000001400014", "FON-AU", "L")}  # a site known by its SIRET only
    # LE ROUX's second line is rejected: she is created with her first activity only.
    assert exercices(LE_ROUX) == {(MSP_BLOSNE, "FON-AU", "L")}
    assert Exercice.objects.count() == 13

    # Sites of the FINESS import are linked, never modified; unknown sites are created as minimal sites.
    hospital = Structure.objects.get(finess_et=CH_BROCELIANDE)
    assert (hospital.pk, hospital.name, hospital.updated_at) == (
        hospital_before.pk, hospital_before.name, hospital_before.updated_at,
    )  # fmt: skip
    assert (hospital.rpps_structure_id, hospital.last_import_run) == (None, finess_loaded)
    created = Structure.objects.filter(last_import_run=run)
    assert created.count() == 6
    assert set(created.values_list("kind", flat=True)) == {StructureKind.SITE}
    msp = Structure.objects.get(rpps_structure_id=MSP_BLOSNE)  # shared by two professionals: one row
    assert (msp.name, msp.siret, msp.siren, msp.address_line, msp.postal_code) == (
        "MAISON DE SANTE DU BLOSNE", "21000005500017", "210000055", "8 Boulevard DE YAOUNDE", "35200",
    )  # fmt: skip
    assert (msp.sector_code, msp.sector_label, msp.finess_et) == (
        "SA52",
        "Maison de santé ou Pôle de santé",
        None,
    )
    unknown_hospital = Structure.objects.get(finess_et="292000080")  # not in the FINESS file
    assert (unknown_hospital.name, unknown_hospital.rpps_structure_id) == (
        "CENTRE HOSPITALIER DES ABERS", "R10100000005678",
    )  # fmt: skip
    dentist = Structure.objects.get(siret="21000001400014")
    assert (dentist.rpps_structure_id, dentist.name) == (None, "CABINET DENTAIRE DU THABOR")

    # The change log: one "created" per professional and per structure.
    changes = DirectoryChange.objects.filter(run=run)
    assert changes.filter(kind=ChangeKind.CREATED, professional__isnull=False).count() == 13
    assert changes.filter(kind=ChangeKind.CREATED, structure__isnull=False).count() == 6
    assert changes.count() == 19
    summary = import_summary(run)
    assert (summary["structures_created"], summary["exercices_added"], summary["exercices_removed"]) == (
        6,
        13,
        0,
    )


def test_rejections_have_line_numbers_reasons_and_the_line() -> None:
    run = import_rpps_file(path=FIRST)

    rejections = list(ImportRejection.objects.filter(run=run).order_by("line_number"))
    assert [(r.line_number, r.reason) for r in rejections] == FIRST_FILE_REJECTIONS
    lines = FIRST.read_text("utf-8").splitlines()
    for rejection in rejections:
        assert rejection.raw == lines[rejection.line_number - 1][:500]
    # Good lines around bad ones are all there.
    assert Professional.objects.filter(idnat_ps__in=[LE_ROUX, BOURHIS]).count() == 2


def test_without_the_finess_import_every_site_is_created() -> None:
    run = import_rpps_file(path=FIRST)

    hospital = Structure.objects.get(finess_et=CH_BROCELIANDE)
    assert (hospital.kind, hospital.name, hospital.finess_ej, hospital.rpps_structure_id) == (
        StructureKind.SITE, "CENTRE HOSPITALIER DE BROCELIANDE", "352990014", "R10100000001234",
    )  # fmt: skip
    assert (hospital.address_line, hospital.postal_code, hospital.sector_code) == (
        "12 Rue DE L HOPITAL",
        "35000",
        "SA01",
    )
    assert Structure.objects.filter(last_import_run=run).count() == 8
    assert exercices(KERMARREC) == {(CH_BROCELIANDE, "FON-AU", "S")}


# --- Idempotency, newer file, change log -------------------------------------------------------------------


def test_the_same_file_twice_changes_nothing(finess_loaded: ImportRun) -> None:
    import_rpps_file(path=FIRST)
    before = directory_snapshot()
    changes_before = DirectoryChange.objects.count()

    again = import_rpps_file(path=FIRST)

    assert counts(again) == {
        "status": ImportStatus.SUCCEEDED, "read": 29, "rejected": 14, "created": 0, "updated": 0,
        "unchanged": 13, "deactivated": 0,
    }  # fmt: skip
    assert directory_snapshot() == before  # not even a timestamp
    assert DirectoryChange.objects.count() == changes_before
    assert ImportRejection.objects.filter(run=again).count() == 14  # each run has its own report
    summary = import_summary(again)
    assert (summary["structures_created"], summary["exercices_added"], summary["exercices_removed"]) == (
        0,
        0,
        0,
    )


def test_a_newer_file_updates_deactivates_and_records_what_changed(finess_loaded: ImportRun) -> None:
    first = import_rpps_file(path=FIRST)

    run = import_rpps_file(path=NEWER)

    assert counts(run) == {
        "status": ImportStatus.SUCCEEDED, "read": 14, "rejected": 2, "created": 1, "updated": 4,
        "unchanged": 6, "deactivated": 2,
    }  # fmt: skip
    assert [(r.line_number, r.reason) for r in ImportRejection.objects.filter(run=run)] == [
        (7, "code mode d'exercice inconnu « X » (TRE_R23)"),
        (12, "numéro SIRET site invalide « 21000005500018 » (14 chiffres, clé de Luhn)"),
    ]
    changes = {
        (c.professional.idnat_ps if c.professional else str(c.structure_id), c.kind): c.fields
        for c in DirectoryChange.objects.filter(run=run).select_related("professional")
    }
    hospital = Structure.objects.get(finess_et=CH_BROCELIANDE).pk
    ehpad = Structure.objects.get(finess_et=EHPAD_GLYCINES).pk
    dentist = Structure.objects.get(siret="21000001400014").pk
    msp = Structure.objects.get(rpps_structure_id=MSP_BLOSNE).pk
    assert changes == {
        (LE_GALL, ChangeKind.UPDATED): {"last_name": {"before": "LE GALL", "after": "LE GALL-MORVAN"}},
        (KERMARREC, ChangeKind.UPDATED): {
            "exercices": {
                "before": [{"structure": hospital, "role": "FON-AU", "mode": "S"}],
                "after": [{"structure": ehpad, "role": "FON-AU", "mode": "S"}],
            }
        },
        (GUILLOU, ChangeKind.UPDATED): {
            "exercices": {
                "before": [{"structure": dentist, "role": "FON-AU", "mode": "L"}],
                "after": [{"structure": dentist, "role": "FON-AU", "mode": "S"}],
            }
        },
        # A rejected line (bad SIRET at the MSP): her MSP exercice is kept, the EHPAD one is added.
        (LE_ROUX, ChangeKind.UPDATED): {
            "exercices": {
                "before": [{"structure": msp, "role": "FON-AU", "mode": "L"}],
                "after": sorted(
                    [
                        {"structure": msp, "role": "FON-AU", "mode": "L"},
                        {"structure": ehpad, "role": "FON-AU", "mode": "S"},
                    ],
                    key=lambda e: int(str(e["structure"])),
                ),
            }
        },
        (JEGOU, ChangeKind.CREATED): {},
        (ROUXEL, ChangeKind.DEACTIVATED): {"is_active": {"before": True, "after": False}},
        (LE_BIHAN, ChangeKind.DEACTIVATED): {"is_active": {"before": True, "after": False}},
    }  # fmt: skip

    assert Professional.objects.get(idnat_ps=LE_GALL).last_name == "LE GALL-MORVAN"
    assert exercices(KERMARREC) == {(EHPAD_GLYCINES, "FON-AU", "S")}
    assert exercices(GUILLOU) == {("21000001400014", "FON-AU", "S")}
    assert exercices(LE_ROUX) == {(MSP_BLOSNE, "FON-AU", "L"), (EHPAD_GLYCINES, "FON-AU", "S")}
    assert exercices(JEGOU) == {(CH_BROCELIANDE, "FON-AU", "S")}
    # Gone from the file: deactivated, not deleted, exercices kept as they were.
    gone = Professional.objects.filter(idnat_ps__in=[ROUXEL, LE_BIHAN])
    assert [(p.is_active, p.last_import_run_id) for p in gone] == [(False, run.pk)] * 2
    assert exercices(ROUXEL) == {("C35123456700", "FON-AU", "L")}
    # Seen only on a rejected line: still there, untouched.
    tanguy = Professional.objects.get(idnat_ps=TANGUY)
    assert (tanguy.is_active, tanguy.last_import_run_id) == (True, first.pk)
    assert exercices(TANGUY) == {(MSP_BLOSNE, "FON-01", "L")}
    summary = import_summary(run)
    assert (summary["exercices_added"], summary["exercices_removed"], summary["exercices_updated"]) == (
        3,
        1,
        1,
    )
    assert summary["structures_created"] == 0  # the EHPAD came from the FINESS import


def test_a_professional_who_comes_back_is_reactivated(finess_loaded: ImportRun) -> None:
    import_rpps_file(path=FIRST)
    import_rpps_file(path=NEWER)

    run = import_rpps_file(path=FIRST)

    assert counts(run) == {
        "status": ImportStatus.SUCCEEDED, "read": 29, "rejected": 14, "created": 0, "updated": 5,
        "unchanged": 8, "deactivated": 1,
    }  # fmt: skip
    kinds = {
        c.professional.idnat_ps if c.professional else "": c.kind
        for c in DirectoryChange.objects.filter(run=run).select_related("professional")
    }
    assert kinds == {
        ROUXEL: ChangeKind.REACTIVATED, LE_BIHAN: ChangeKind.REACTIVATED, LE_GALL: ChangeKind.UPDATED,
        KERMARREC: ChangeKind.UPDATED, GUILLOU: ChangeKind.UPDATED, JEGOU: ChangeKind.DEACTIVATED,
    }  # fmt: skip
    # LE ROUX has a rejected line in this file too: the EHPAD exercice she got in between is kept.
    assert exercices(LE_ROUX) == {(MSP_BLOSNE, "FON-AU", "L"), (EHPAD_GLYCINES, "FON-AU", "S")}
    assert DirectoryChange.objects.get(run=run, professional__idnat_ps=ROUXEL).fields == {
        "is_active": {"before": False, "after": True}
    }
    assert Professional.objects.filter(is_active=True).count() == 13


def test_professionals_entered_by_hand_are_never_deactivated_but_adopted_when_in_the_file() -> None:
    by_hand = ProfessionalFactory.create(last_name="SAISIE-MANUELLE")
    # Entered by hand before any import, with a civility the file corrects.
    morvan = ProfessionalFactory.create(
        rpps="10600000037", civility_code="", last_name="MORVAN", first_name="Gaëlle", profession_code="21",
        profession_label="Pharmacien", category_code="C",
    )  # fmt: skip
    # Entered by hand exactly as the file has it (no activity): unchanged, but adopted by the import.
    le_bihan = ProfessionalFactory.create(
        rpps="10600000045", civility_code="M", last_name="LE BIHAN", first_name="Hervé", profession_code="10",
        profession_label="Médecin", category_code="C", specialty_code="SM20",
        specialty_label=nomenclatures().specialty_label("10", "SM20"),
    )  # fmt: skip
    le_bihan_updated_at = le_bihan.updated_at

    first = import_rpps_file(path=FIRST)

    assert (first.rows_created, first.rows_updated, first.rows_unchanged) == (11, 1, 1)
    morvan.refresh_from_db()
    assert (morvan.civility_code, morvan.last_import_run) == ("MME", first)
    assert DirectoryChange.objects.get(professional=morvan).fields == {
        "civility_code": {"before": "", "after": "MME"},
        "exercices": {
            "before": [],
            "after": [
                {
                    "structure": Structure.objects.get(finess_et=PHARMACIE_LICES).pk,
                    "role": "FON-03",
                    "mode": "L",
                }
            ],
        },
    }
    le_bihan.refresh_from_db()
    assert (le_bihan.last_import_run, le_bihan.updated_at) == (first, le_bihan_updated_at)
    assert not DirectoryChange.objects.filter(professional=le_bihan).exists()

    second = import_rpps_file(path=NEWER)

    by_hand.refresh_from_db()
    assert by_hand.is_active  # never brought by an import: kept
    assert by_hand.last_import_run is None
    le_bihan.refresh_from_db()
    assert not le_bihan.is_active  # adopted by the first run, gone from the second file
    assert second.rows_deactivated == 2


def test_mass_deactivation_is_refused_unless_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    import_rpps_file(path=FIRST)
    monkeypatch.setattr(imports, "MASS_DEACTIVATION_FLOOR", 1)
    monkeypatch.setattr(imports, "MASS_DEACTIVATION_SHARE", 0.1)  # 2 of 13 is 15 %
    before = directory_snapshot()

    with pytest.raises(ImportFailed, match="ferait désactiver 2 professionnels sur 13") as refused:
        import_rpps_file(path=NEWER)

    assert directory_snapshot() == before
    assert refused.value.run is not None
    assert refused.value.run.status == ImportStatus.FAILED
    run = import_rpps_file(path=NEWER, allow_mass_deactivation=True)
    assert run.rows_deactivated == 2


def test_a_file_that_would_deactivate_everyone_is_refused(tmp_path: Path) -> None:
    import_rpps_file(path=FIRST)
    header_only = tmp_path / "header_only.txt"
    header_only.write_bytes(FIRST.read_bytes().split(b"\r\n", 1)[0] + b"\r\n")

    with pytest.raises(ImportFailed, match="ferait désactiver 13 professionnels sur 13"):
        import_rpps_file(path=header_only)

    assert Professional.objects.filter(is_active=True).count() == 13


# --- Encodings ------------------------------------------------------------------------------------------


def test_windows_1252_file_is_detected_and_read() -> None:
    run = import_rpps_file(path=CP1252)

    assert (run.encoding, run.rows_read, run.rows_created, run.rows_rejected) == ("windows-1252", 4, 3, 1)
    assert list(Professional.objects.order_by("idnat_ps").values_list("last_name", "first_name")) == [
        ("LE BRIS", "Françoise"), ("LE FLOC'H", "Gwénaël"), ("NOËL", "Joël"),
    ]  # fmt: skip
    centre = Structure.objects.get(finess_et="352000046")
    assert centre.name == "CENTRE DE SANTÉ INFIRMIER CŒUR DE VILLE"  # "œ" exists in Windows-1252 only
    assert centre.address_line == "9 Rue SAINT-HÉLIER"
    assert (
        Structure.objects.get(rpps_structure_id="C35100000303").address_line == "12 Rue DE LA ROCHE-AUX-FÉES"
    )
    rejection = ImportRejection.objects.get(run=run)
    assert (rejection.line_number, rejection.reason) == (5, "caractères illisibles en Windows-1252")
    assert "CO\ufffdRRE" in rejection.raw


def test_utf8_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "PS_LibreAcces_Personne_activite_bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + FIRST.read_bytes())

    run = import_rpps_file(path=path)

    assert (run.encoding, run.rows_read, run.rows_created, run.rows_rejected) == ("utf-8-sig", 29, 13, 14)
    assert Professional.objects.get(idnat_ps=BOURHIS).first_name == "Clémence"


# --- Refused files: nothing written ----------------------------------------------------------------------


def assert_nothing_imported() -> None:
    assert not Professional.objects.exists()
    assert not Structure.objects.exists()
    assert not Exercice.objects.exists()
    assert not DirectoryChange.objects.exists()
    assert not ImportRejection.objects.exists()


def test_a_truncated_file_is_refused_whole() -> None:
    with pytest.raises(ImportFailed) as failure:
        import_rpps_file(path=TRUNCATED)

    assert failure.value.message == (
        "Fichier tronqué : la dernière ligne (n° 30) est incomplète (caractères illisibles en UTF-8) et ne "
        "se termine pas par un saut de ligne. Le téléchargement a probablement été interrompu : rien n'a "
        "été importé."
    )
    assert_nothing_imported()
    run = ImportRun.objects.get()
    assert (run.status, run.error, run.encoding) == (ImportStatus.FAILED, failure.value.message, "utf-8")
    assert (run.rows_read, run.rows_created, run.rows_rejected) == (0, 0, 0)
    event = AuditEvent.objects.get(action="annuaire.import")
    assert (event.outcome, event.target_id, event.detail["error"]) == (
        "failure",
        str(run.pk),
        failure.value.message,
    )


def test_a_file_cut_between_two_columns_is_refused_too(tmp_path: Path) -> None:
    data = FIRST.read_bytes()
    path = tmp_path / "cut.txt"
    path.write_bytes(data[: data.rstrip(b"\r\n").rfind(b"|LE GALL|") + 5])  # inside line 4

    with pytest.raises(ImportFailed, match=r"la dernière ligne \(n° 4\) est incomplète \(nombre de colonnes"):
        import_rpps_file(path=path)
    assert_nothing_imported()


def test_a_complete_last_line_without_a_line_break_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "no-final-break.txt"
    path.write_bytes(FIRST.read_bytes().rstrip(b"\r\n"))

    assert import_rpps_file(path=path).rows_created == 13


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (SPREADSHEET, "n'est pas l'extraction RPPS PS_LibreAcces_Personne_activite"),
        (FINESS, "extraction FINESS .*utilisez la commande import_finess"),
    ],
)
def test_a_file_of_another_format_fails_fast_and_writes_nothing(path: Path, message: str) -> None:
    with pytest.raises(ImportFailed, match=message):
        import_rpps_file(path=path)

    assert_nothing_imported()
    assert ImportRun.objects.get().status == ImportStatus.FAILED


def test_a_missing_file() -> None:
    with pytest.raises(ImportFailed, match="Fichier introuvable"):
        import_rpps_file(path=DATA / "absent.txt")
    assert not ImportRun.objects.exists()


def test_postgresql_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connection, "vendor", "sqlite")
    with pytest.raises(ImportFailed, match="demandent PostgreSQL"):
        import_rpps_file(path=FIRST)
    assert not ImportRun.objects.exists()


# --- Audit -----------------------------------------------------------------------------------------------


def test_one_audit_event_per_run_with_the_counts() -> None:
    actor = UserFactory(username="gcs-import")
    assert isinstance(actor, User)

    run = import_rpps_file(path=FIRST, actor=actor)

    event = AuditEvent.objects.get(action="annuaire.import")
    assert (event.actor, event.outcome, event.target_type, event.target_id) == (
        actor, "success", "annuaire.importrun", str(run.pk),
    )  # fmt: skip
    assert run.actor == actor
    detail = event.detail
    assert {key: detail[key] for key in ("kind", "file_name", "encoding", "rows_read", "rows_rejected")} == {
        "kind": "rpps", "file_name": FIRST.name, "encoding": "utf-8", "rows_read": 29, "rows_rejected": 14,
    }  # fmt: skip
    assert (detail["created"], detail["updated"], detail["unchanged"], detail["deactivated"]) == (13, 0, 0, 0)
    assert detail["file_sha256"] == run.file_sha256
    assert detail["duration_s"] >= 0


# --- Command ----------------------------------------------------------------------------------------------


def test_command_prints_the_report_and_writes_the_rejections(tmp_path: Path) -> None:
    UserFactory(username="camille.legoff")
    report = tmp_path / "rejets.csv"
    out = io.StringIO()

    call_command(
        "import_rpps", str(FIRST), "--rejections-csv", str(report), "--actor", "camille.legoff", stdout=out
    )

    text = out.getvalue()
    run = ImportRun.objects.get()
    assert run.actor is not None
    assert run.actor.username == "camille.legoff"
    assert f"Import RPPS n° {run.pk} terminé" in text
    for label, value in [
        ("lignes lues", "29"), ("lignes rejetées", "14"), ("créés", "13"), ("mis à jour", "0"),
        ("inchangés", "0"), ("désactivés", "0"), ("structures créées", "8"),
    ]:  # fmt: skip
        line = next(line for line in text.splitlines() if line.strip().startswith(label))
        assert line.split()[-1] == value, line
    assert "lignes/s" in text
    with report.open(encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.reader(stream, delimiter=";"))
    assert rows[0] == ["ligne", "motif", "contenu"]
    assert [(int(r[0]), r[1]) for r in rows[1:]] == FIRST_FILE_REJECTIONS


def test_command_fails_with_a_french_message_and_a_non_zero_exit() -> None:
    with pytest.raises(CommandError, match="Fichier tronqué"):
        call_command("import_rpps", str(TRUNCATED), stdout=io.StringIO())
    with pytest.raises(CommandError, match="Utilisateur inconnu"):
        call_command("import_rpps", str(FIRST), "--actor", "personne", stdout=io.StringIO())
    assert not Professional.objects.exists()
