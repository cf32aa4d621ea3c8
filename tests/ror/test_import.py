"""``import_ror_offers``: documented CSV, rejection report with line numbers, idempotent."""

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from enrs.audit.models import AuditEvent
from ror.importer import ImportFormatError, read_offer_file
from ror.models import Capacity, CapacityUpdate, Offer, OfferLocation, UpdateSource
from tests.annuaire.factories import CommuneFactory, StructureFactory
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "ror" / "offres_exemple.csv"
FINESS = "358901239"  # the site of the sample file


@pytest.fixture
def site():
    commune = CommuneFactory(insee_code="35238", name="Rennes")
    structure = StructureFactory(finess_et=FINESS, commune=commune)
    UserFactory(username="import-gcs", gcs_staff=True)
    return structure


def run(path: Path, *args: str) -> str:
    out = StringIO()
    call_command("import_ror_offers", str(path), "--user", "import-gcs", *args, stdout=out)
    return out.getvalue()


def test_the_sample_file_is_loaded_and_bad_lines_are_reported_with_their_number(site) -> None:
    output = run(SAMPLE)

    assert set(Offer.objects.values_list("identifier", flat=True)) == {
        "IMP-REA-01",
        "IMP-PSY-01",
        "IMP-HDJ-01",
    }
    rea = Offer.objects.get(identifier="IMP-REA-01")
    assert (rea.structure, rea.activity_field_code, rea.operational_activity_code, rea.age_min) == (
        site,
        "01",
        "127",
        18,
    )
    psy = Offer.objects.get(identifier="IMP-PSY-01")
    assert psy.specialised_care_codes == ["07", "08"]
    location = OfferLocation.objects.get(identifier="IMP-LOC-A")
    assert location.commune is not None
    assert (location.commune.insee_code, location.latitude, location.longitude) == ("35238", 48.112, -1.68)
    assert set(location.offers.values_list("identifier", flat=True)) == {"IMP-REA-01", "IMP-HDJ-01"}
    assert {(c.status, c.count) for c in Capacity.objects.filter(offer=rea)} == {
        ("01", 12),
        ("02", 3),
        ("03", 9),
    }
    update = CapacityUpdate.objects.get(offer=rea)
    assert update.source == UpdateSource.IMPORT
    assert update.created_at.isoformat() == "2026-11-23T07:00:00+00:00"

    assert "3 créées" in output
    assert "lignes refusées" in output
    assert "ligne 8 (IMP-BAD-01) : Code inconnu pour le champ d'activité (J20) : « 99 »." in output
    assert "ligne 9 (IMP-BAD-02)" in output
    assert "ligne 10 (IMP-BAD-02)" in output
    assert "ne peuvent pas dépasser les installés" in output
    assert "ligne 11 (IMP-BAD-03)" in output
    assert "négatif" in output
    assert "ligne 12 (IMP-BAD-04) : FINESS 999999999 inconnu dans l'annuaire." in output
    assert not Offer.objects.filter(identifier__startswith="IMP-BAD").exists()
    assert AuditEvent.objects.filter(action="ror.import").count() == 1


def test_importing_twice_changes_nothing(site) -> None:
    run(SAMPLE)
    snapshot = (
        sorted(Offer.objects.values_list("identifier", "name", "updated_at", "capacity_updated_at")),
        sorted(Capacity.objects.values_list("offer__identifier", "status", "count", "updated_at")),
        CapacityUpdate.objects.count(),
        OfferLocation.objects.count(),
    )
    output = run(SAMPLE)
    assert "0 créées, 0 modifiées, 3 inchangées" in output
    assert "2 déjà à jour" in output
    assert snapshot == (
        sorted(Offer.objects.values_list("identifier", "name", "updated_at", "capacity_updated_at")),
        sorted(Capacity.objects.values_list("offer__identifier", "status", "count", "updated_at")),
        CapacityUpdate.objects.count(),
        OfferLocation.objects.count(),
    )


def test_a_changed_file_updates_the_offer_on_its_identifier(site, tmp_path: Path) -> None:
    run(SAMPLE)
    changed = tmp_path / "offres.csv"
    changed.write_text(
        SAMPLE.read_text(encoding="utf-8")
        .replace("Réanimation polyvalente", "Réanimation médico-chirurgicale")
        .replace("2026-11-23T08:00:00+01:00", "2026-11-24T08:00:00+01:00")
        .replace(";02;3;", ";02;5;"),
        encoding="utf-8",
    )
    output = run(changed)
    assert "1 modifiées" in output
    rea = Offer.objects.get(identifier="IMP-REA-01")
    assert rea.name == "Réanimation médico-chirurgicale"
    assert Capacity.objects.get(offer=rea, status="02").count == 5
    assert Offer.objects.filter(identifier="IMP-REA-01").count() == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("identifiant_offre,finess_et,nom_offre\nA,B,C\n", "point-virgule"),
        ("identifiant_offre;finess_et;nom_offre\nA;B;C\n", "Colonnes obligatoires absentes"),
        (
            "identifiant_offre;finess_et;nom_offre;champ_activite;identifiant_lieu;nom_lieu;couleur\n",
            "inconnues",
        ),
        (
            "identifiant_offre;finess_et;nom_offre;champ_activite;identifiant_lieu;nom_lieu\nA;B;C\n",
            "3 champs",
        ),
        ("", "vide"),
    ],
)
def test_a_format_error_imports_nothing(site, tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "offres.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CommandError, match=message):
        run(path)
    assert not Offer.objects.exists()


def test_a_file_that_is_not_utf8_is_refused(site, tmp_path: Path) -> None:
    path = tmp_path / "offres.csv"
    path.write_bytes(SAMPLE.read_text(encoding="utf-8").encode("latin-1"))
    with pytest.raises(ImportFormatError, match="UTF-8"):
        read_offer_file(path)
    with pytest.raises(CommandError, match="rien n'a été importé"):
        run(path)
    assert not Offer.objects.exists()


def test_dry_run_writes_nothing_and_the_rejects_file_lists_the_refusals(site, tmp_path: Path) -> None:
    rejects = tmp_path / "refus.csv"
    output = run(SAMPLE, "--dry-run", "--rejects", str(rejects))
    assert "rien n'est enregistré" in output
    assert not Offer.objects.exists()
    assert not OfferLocation.objects.exists()
    lines = rejects.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "ligne;identifiant_offre;motif"
    assert [line.split(";")[0] for line in lines[1:]] == ["8", "9", "10", "11", "12"]


def test_only_gcs_staff_may_import(site) -> None:
    UserFactory(username="clinicien")
    with pytest.raises(CommandError, match="équipe du GCS"):
        call_command("import_ror_offers", str(SAMPLE), "--user", "clinicien", stdout=StringIO())


def test_an_offer_of_another_structure_is_not_taken_over(site, tmp_path: Path) -> None:
    from tests.ror.factories import OfferFactory

    OfferFactory(identifier="IMP-REA-01")  # same identifier, another structure
    output = run(SAMPLE)
    assert "ligne 2 (IMP-REA-01) : L'offre existe déjà, rattachée à une autre structure." in output
    assert Offer.objects.get(identifier="IMP-REA-01").structure != site
