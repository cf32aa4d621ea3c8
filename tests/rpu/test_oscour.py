"""Vector tests of the pure OSCOUR parser (no database)."""

from datetime import date, datetime

import pytest

from enrs.rpu import oscour
from tests.rpu.conftest import FINESS, full_patient, oscour_xml, sample


@pytest.mark.parametrize("finess", ["750712184", "130783236", "690781810", FINESS])
def test_finess_with_a_good_luhn_key_is_accepted(finess: str) -> None:
    assert oscour.finess_error(finess) is None


@pytest.mark.parametrize(
    ("finess", "fragment"),
    [("750712185", "clé de contrôle"), ("75071218", "9 caractères"), ("7507121X4", "9 caractères")],
)
def test_finess_errors(finess: str, fragment: str) -> None:
    error = oscour.finess_error(finess)
    assert error is not None
    assert fragment in error


def test_corsican_finess_is_not_key_checked() -> None:
    assert oscour.finess_error("2A0000001") is None
    assert oscour.finess_error("2B0000009") is None
    assert oscour.finess_department("2A0000001") == "2A"
    assert oscour.finess_department("970100000") == "971"
    assert oscour.finess_department(FINESS) == "35"


def test_age_at() -> None:
    assert oscour.age_at(date(2025, 9, 15), date(2026, 3, 10)) == (0, 5)
    assert oscour.age_at(date(1940, 6, 30), date(2026, 3, 10)) == (85, 1028)
    assert oscour.age_at(date(2000, 3, 10), date(2026, 3, 10)) == (26, 312)


def test_valid_sample_file() -> None:
    parsed = oscour.parse_oscour(sample("valide.xml"))
    assert parsed.finess == FINESS
    assert parsed.extracted_at == datetime(2026, 3, 11, 2, 10)
    assert (parsed.period_start, parsed.period_end) == (date(2026, 3, 10), date(2026, 3, 10))
    assert parsed.errors == []
    assert [r.index for r in parsed.records] == [1, 2, 3, 4, 5]
    first, second, third, fourth, fifth = parsed.records
    assert first.birth_date == date(2025, 9, 15)
    assert first.dp == "J069"  # the dot is dropped
    assert second.entry == datetime(2026, 3, 10, 11, 40)  # seconds tolerated
    assert second.transport == "VSAB"
    assert second.actes == ("MZMP002",)
    assert third.da == ("I10", "E119")
    assert (third.mode_sortie, third.destination, third.orientation) == ("6", "1", "SI")
    # A free-text reason is not kept (it may name someone); only the fact it was filled.
    assert fourth.motif == ""
    assert fourth.motif_filled is True
    assert second.motif == "TRAUMATO10"
    assert fifth.exit == datetime(2026, 3, 11, 4, 50)
    assert first.line is not None
    assert first.line < second.line  # type: ignore[operator]


def test_bad_records_are_rejected_with_their_reasons_and_the_others_kept() -> None:
    parsed = oscour.parse_oscour(sample("passages_invalides.xml"))
    assert [r.index for r in parsed.records] == [1, 6]
    reasons = {error.index: error.reasons for error in parsed.errors}
    assert set(reasons) == {2, 3, 4, 5}
    assert any(r.startswith("SEXE : code « X » inconnu") for r in reasons[2])
    assert any(r.startswith("GRAVITE : code « 7 » inconnu") for r in reasons[2])
    assert "CP : 5 chiffres attendus." in reasons[3]
    assert "SORTIE : la sortie précède l'entrée." in reasons[3]
    assert "NAISSANCE : date attendue au format JJ/MM/AAAA." in reasons[4]
    assert any(r.startswith("DP : code CIM-10") for r in reasons[4])
    assert reasons[5] == ("ENTREE : date et heure d'entrée absentes (obligatoires).",)
    # A birth date is never echoed in a reason.
    assert not any("1990" in reason for error in parsed.errors for reason in error.reasons)
    assert all(error.line for error in parsed.errors)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"MODE_ENTREE": "5"}, "MODE_ENTREE"),
        ({"PROVENANCE": "9"}, "PROVENANCE"),
        ({"TRANSPORT": "TAXI"}, "TRANSPORT"),
        ({"TRANSPORT_PEC": "OUI"}, "TRANSPORT_PEC"),
        ({"MODE_SORTIE": "5"}, "MODE_SORTIE"),
        ({"DESTINATION": "5"}, "DESTINATION"),
        ({"ORIENT": "A-B"}, "ORIENT"),
        ({"ENTREE": "2026-03-10 10:00"}, "ENTREE"),
        ({"ENTREE": "09/03/2026 10:00", "SORTIE": "09/03/2026 11:00"}, "ENTREE : hors de la période"),
        ({"NAISSANCE": "11/03/2026"}, "NAISSANCE : postérieure"),
        ({"NAISSANCE": "01/01/1880"}, "NAISSANCE : âge supérieur"),
        ({"SORTIE": "10/03/2026 25:00"}, "SORTIE"),
    ],
)
def test_each_rule_rejects_the_record(overrides: dict[str, str], expected: str) -> None:
    parsed = oscour.parse_oscour(oscour_xml([full_patient(**overrides)]))
    assert parsed.records == []
    assert any(reason.startswith(expected) for reason in parsed.errors[0].reasons)


def test_lower_case_codes_and_repeated_items() -> None:
    parsed = oscour.parse_oscour(oscour_xml([full_patient(SEXE="m", GRAVITE="p")]))
    assert (parsed.records[0].sex, parsed.records[0].gravite) == ("M", "P")
    repeated = oscour_xml([full_patient()]).replace(b"<SEXE>F</SEXE>", b"<SEXE>F</SEXE><SEXE>M</SEXE>")
    parsed = oscour.parse_oscour(repeated)
    assert parsed.errors[0].reasons == ("SEXE : élément répété.",)


def test_bad_da_and_acte_codes() -> None:
    xml = oscour_xml([full_patient()]).replace(
        b"</PATIENT>",
        b"<LISTE_DA><DA>ZZ</DA></LISTE_DA><LISTE_ACTES><ACTE>ABC</ACTE></LISTE_ACTES></PATIENT>",
    )
    reasons = oscour.parse_oscour(xml).errors[0].reasons
    assert any(r.startswith("DA : code CIM-10") for r in reasons)
    assert any(r.startswith("ACTE : code CCAM") for r in reasons)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (sample("mal_forme.xml"), "XML mal formé"),
        (sample("bombe.xml"), "DOCTYPE ou ENTITY"),
        (sample("finess_errone.xml"), "clé de contrôle"),
        (b"", "vide"),
        (b"<RPU/>", "racine"),
        (b"<OSCOUR><PASSAGES/></OSCOUR>", "ETABLISSEMENT"),
        (b"<OSCOUR><ETABLISSEMENT/><PASSAGES/></OSCOUR>", "FINESS de l'établissement absent"),
        (b"<OSCOUR><ETABLISSEMENT><FINESS>350000014</FINESS></ETABLISSEMENT></OSCOUR>", "PASSAGES"),
        (oscour_xml([], start="11/03/2026", end="10/03/2026"), "DATEDEBUT est postérieure"),
        (oscour_xml([]).replace(b"<DATEFIN>10/03/2026</DATEFIN>", b""), "DATEDEBUT et DATEFIN"),
        (oscour_xml([], start="10-03-2026", end="10/03/2026"), "DATEDEBUT : date attendue"),
        (oscour_xml([], start="01/01/2024", end="10/03/2026"), "trop longue"),
    ],
)
def test_whole_file_refusals(data: bytes, fragment: str) -> None:
    with pytest.raises(oscour.OscourFileError, match=fragment):
        oscour.parse_oscour(data)


def test_external_entity_is_refused_and_never_fetched() -> None:
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE OSCOUR [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<OSCOUR><ETABLISSEMENT><FINESS>350000014</FINESS></ETABLISSEMENT><PASSAGES/></OSCOUR>"
    )
    with pytest.raises(oscour.OscourFileError, match="DOCTYPE"):
        oscour.parse_oscour(xxe)


def test_utf16_doctype_is_refused_after_parsing() -> None:
    text = (
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE OSCOUR>'
        "<OSCOUR><ETABLISSEMENT><FINESS>350000014</FINESS></ETABLISSEMENT><PASSAGES/></OSCOUR>"
    )
    with pytest.raises(oscour.OscourFileError, match="DOCTYPE"):
        oscour.parse_oscour(text.encode("utf-16"))


def test_size_and_record_limits() -> None:
    data = oscour_xml([full_patient(), full_patient()])
    with pytest.raises(oscour.OscourFileError, match="trop volumineux"):
        oscour.parse_oscour(data, max_bytes=len(data) - 1)
    with pytest.raises(oscour.OscourFileError, match="Trop de passages"):
        oscour.parse_oscour(data, max_records=1)
    assert len(oscour.parse_oscour(data, max_bytes=len(data), max_records=2).records) == 2


def test_file_without_period_and_empty_passages() -> None:
    parsed = oscour.parse_oscour(oscour_xml([], start=None, end=None))
    assert (parsed.period_start, parsed.period_end, parsed.total) == (None, None, 0)


def test_deeply_nested_document_is_refused() -> None:
    depth = 300
    data = b"<OSCOUR>" + b"<X>" * depth + b"</X>" * depth + b"</OSCOUR>"
    with pytest.raises(oscour.OscourFileError, match="XML mal formé"):
        oscour.parse_oscour(data)
