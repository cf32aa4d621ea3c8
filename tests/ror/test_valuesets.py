"""ROR value sets: the committed JSON is what build_valuesets produces from the ANS files."""

from pathlib import Path

import pytest

from ror.standards import build_valuesets
from ror.standards.valuesets import DATA_FILE, load, valuesets

KIT = build_valuesets.DEFAULT_KIT


def test_published_codes_are_there() -> None:
    sets = valuesets()
    assert sets.activity_fields["01"] == "Médecine, Chirurgie, Obstétrique (MCO)"
    assert sets.care_modes["28"] == "Hospitalisation complète (HC)"
    assert sets.reception_types == {"01": "Temporaire", "02": "Permanent"}
    assert sets.capacity_types == {"01": "Lit", "02": "Place"}
    assert [sets.capacity_statuses[c] for c in ("01", "02", "03", "04", "05", "06")] == [
        "Installé",
        "Disponible",
        "Occupé",
        "Réservé",
        "Fermé",
        "Supplémentaire",
    ]
    assert sorted(sets.capacity_statuses) == [f"0{i}" for i in range(1, 10)]
    assert sets.deprecated_capacity_statuses == frozenset({"07"})
    assert sets.operational_activities["127"] == "Réanimation polyvalente"
    assert sets.specialised_care["01"] == "Troubles des conduites alimentaires (TCA)"
    assert sets.label("capacity_genders", "01") == "Femme"
    assert sets.label("capacity_genders", "zz") == ""


def test_every_table_cites_its_source() -> None:
    sources = valuesets().sources
    assert "JDV_J19_ModePriseEnCharge_ROR.xml" in sources["care_modes"]
    assert "TRE_R330" in sources["capacity_statuses"]
    assert all(sources[name] for name in ("activity_fields", "offer_types", "operational_activities"))


@pytest.mark.skipif(not (KIT / "jeuxDeValeurs").is_dir(), reason="kit ANS absent de cette machine")
def test_the_committed_file_is_up_to_date_with_the_kit() -> None:
    assert build_valuesets.main(["--check"]) == 0


def test_build_writes_a_file_the_loader_reads(tmp_path: Path) -> None:
    if not (KIT / "jeuxDeValeurs").is_dir():
        pytest.skip("kit ANS absent de cette machine")
    out = tmp_path / "valuesets.json"
    assert build_valuesets.main(["--output", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == DATA_FILE.read_text(encoding="utf-8")
    assert load(out).care_modes == valuesets().care_modes


def test_the_loader_has_no_django_import() -> None:
    source = (Path(build_valuesets.__file__).parent / "valuesets.py").read_text(encoding="utf-8")
    assert "django" not in source
