"""The committed nomenclature file, its builder and the codes the demo relies on."""

from pathlib import Path

import pytest

from annuaire import demo
from annuaire.models import ExerciseMode
from annuaire.standards import build_nomenclatures, nomenclatures


def test_loader_reads_national_codes_with_their_labels() -> None:
    codes = nomenclatures.nomenclatures()
    assert codes.professions["10"] == "Médecin"
    assert codes.professions["60"] == "Infirmier"
    assert codes.professions["21"] == "Pharmacien"
    assert codes.specialty_label("10", "SM54") == "Médecine Générale"
    assert codes.specialty_label("40", "SCD01") == "Orthopédie dento-faciale"
    assert codes.specialty_label("10", "XX99") == ""
    assert codes.sectors["SA01"] == "Etablissement public de santé"
    assert codes.sectors["SA33"] == "Pharmacie d'officine"
    assert codes.structure_categories["355"] == "Centre hospitalier (CH)"
    assert codes.structure_categories["101"] == "Centre hospitalier régional (CHR)"
    assert set(codes.civilities) == {"M", "MME"}
    assert "JDV_J01" in codes.sources["professions"]


def test_the_data_file_lives_in_the_package_not_in_the_shared_kit() -> None:
    package = Path(nomenclatures.__file__).resolve().parent
    assert nomenclatures.DATA_FILE.is_relative_to(package)
    assert nomenclatures.DATA_FILE.exists()


def test_exercise_mode_choices_match_tre_r23() -> None:
    assert dict(ExerciseMode.choices) == dict(nomenclatures.nomenclatures().exercise_modes)


@pytest.mark.skipif(not build_nomenclatures.DEFAULT_KIT.exists(), reason="kit CDA de l'ANS absent")
def test_committed_file_is_what_the_builder_extracts_from_the_kit() -> None:
    expected = build_nomenclatures.render(build_nomenclatures.build(build_nomenclatures.DEFAULT_KIT))
    assert nomenclatures.DATA_FILE.read_text(encoding="utf-8") == expected
    assert build_nomenclatures.main(["--check"]) == 0


def test_builder_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    if not build_nomenclatures.DEFAULT_KIT.exists():
        pytest.skip("kit CDA de l'ANS absent")
    stale = tmp_path / "nomenclatures.json"
    stale.write_text("{}\n", encoding="utf-8")
    assert build_nomenclatures.main(["--check", "--output", str(stale)]) == 1
    assert build_nomenclatures.main(["--output", str(stale)]) == 0
    assert nomenclatures.load(stale) == nomenclatures.nomenclatures()


def test_every_code_the_demo_uses_exists_in_the_nomenclatures() -> None:
    codes = nomenclatures.nomenclatures()
    for spec in demo.STRUCTURE_SPECS.values():
        assert spec.sector in codes.sectors
        assert not spec.category or spec.category in codes.structure_categories
    for profession in demo.PROFESSION_SPECS:
        assert profession.code in codes.professions
        for specialty, _ in profession.specialties:
            assert codes.specialty_label(profession.code, specialty), (profession.code, specialty)
    used_roles = {
        "FON-01",
        "FON-03",
        "FON-05",
        "FON-15",
        "FON-17",
        "FON-22",
        "FON-33",
        "FON-41",
        "FON-43",
        "FON-AU",
    }
    assert used_roles <= set(codes.roles)
