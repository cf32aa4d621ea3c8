"""XDS / CDA value sets: the committed JSON is what build_valuesets extracts from the ANS kit."""

from pathlib import Path

import pytest

from enrs.standards import build_valuesets, valuesets
from enrs.standards.valuesets import DATA_FILE, Code, class_for_type, codes, lookup

KIT = build_valuesets.DEFAULT_KIT
HAS_KIT = (KIT / "jeuxDeValeurs").is_dir()


def test_kit_value_sets_keep_code_system_and_label() -> None:
    assert lookup("type_code", "85208-7") == Code("85208-7", valuesets.LOINC, "CR de télémédecine")
    assert lookup("type_code", "IMG-KOS") == Code(
        "IMG-KOS", "1.2.250.1.213.1.1.4.12", "Reference d'objets d'un examen d'imagerie"
    )
    assert {c.code for c in codes("confidentiality").values() if c.system == "2.16.840.1.113883.5.25"} == {
        "N",
        "R",
        "V",
    }
    assert lookup("confidentiality", "MASQUE_PS") == Code(
        "MASQUE_PS", "1.2.250.1.213.1.1.4.13", "Masqué aux professionnels de santé"
    )
    assert lookup("facility_type", "SA01") == Code(
        "SA01", "1.2.250.1.71.4.2.4", "Etablissement public de santé"
    )
    assert lookup("facility_type", "EXP_PATIENT") is not None
    assert lookup("practice_setting", "ETABLISSEMENT") == Code(
        "ETABLISSEMENT", "1.2.250.1.213.1.1.4.9", "Etablissement de santé"
    )
    specialty = lookup("author_specialty", "G15_10/SM26")
    assert specialty is not None
    assert specialty.system == "1.2.250.1.213.1.1.4.5"
    assert lookup("type_code", "00000-0") is None


def test_hand_kept_tables() -> None:
    assert lookup("class_code", "31") == Code("31", "1.2.250.1.213.1.1.4.1", "Imagerie médicale")
    assert lookup("format_code", "urn:ihe:iti:xds-sd:pdf:2008") == Code(
        "urn:ihe:iti:xds-sd:pdf:2008", "1.3.6.1.4.1.19376.1.2.3", "Document à corps non structuré en Pdf/A-1"
    )
    assert set(codes("content_type")) == {"03", "07", "19", "97"}
    assert valuesets.format_for_media_type("application/pdf").code == "urn:ihe:iti:xds-sd:pdf:2008"
    assert "TRE_A03" in valuesets.source("class_code")
    assert "JDV_J07_XdsTypeCode_CISIS.xml" in valuesets.source("type_code")


def test_class_is_derived_from_type() -> None:
    report = Code("10", "1.2.250.1.213.1.1.4.1", "Compte rendu")
    assert class_for_type("85208-7") == report
    assert class_for_type("11488-4") == report
    assert class_for_type("75496-0") == report
    assert class_for_type("18748-4").code == "31"
    assert class_for_type("60591-5").code == "11"
    assert class_for_type("87273-9").code == "52"
    assert class_for_type("EXPPAT_3").code == "90"
    with pytest.raises(KeyError):
        class_for_type("11369-6")  # in J07 but no mapping kept for it
    with pytest.raises(KeyError):
        class_for_type("nope")


def test_every_mapped_type_and_class_exist() -> None:
    types = codes("type_code")
    for type_code in build_valuesets.TYPE_TO_CLASS:
        assert type_code in types
        assert class_for_type(type_code).code in codes("class_code")


def test_unknown_table_and_copies() -> None:
    with pytest.raises(KeyError):
        codes("nope")
    table = codes("confidentiality")
    table.clear()
    assert lookup("confidentiality", "N") is not None


@pytest.mark.skipif(not HAS_KIT, reason="kit CDA de l'ANS absent")
def test_the_committed_file_is_up_to_date_with_the_kit() -> None:
    assert build_valuesets.main(["--check"]) == 0


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    if not HAS_KIT:
        pytest.skip("kit CDA de l'ANS absent")
    stale = tmp_path / "valuesets.json"
    stale.write_text("{}\n", encoding="utf-8")
    assert build_valuesets.main(["--check", "--output", str(stale)]) == 1
    assert build_valuesets.main(["--output", str(stale)]) == 0
    assert stale.read_text(encoding="utf-8") == DATA_FILE.read_text(encoding="utf-8")


def test_the_loader_has_no_django_import() -> None:
    assert "django" not in Path(valuesets.__file__).read_text(encoding="utf-8")
