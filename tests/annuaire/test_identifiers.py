"""Vector tests of the national identifiers (annuaire/standards/identifiers.py)."""

import random

import pytest

from annuaire.standards import identifiers
from enrs.core import geo

# Real FINESS numbers (AP-HP, AP-HM, HCL) whose Luhn key was checked (standards §1.2).
REAL_FINESS = ["750712184", "130783236", "690781810"]


@pytest.mark.parametrize("finess", REAL_FINESS)
def test_real_finess_numbers_pass_the_key_check(finess: str) -> None:
    assert identifiers.finess_is_well_formed(finess)
    assert identifiers.finess_is_valid(finess)


@pytest.mark.parametrize("finess", REAL_FINESS)
def test_every_other_key_of_a_real_finess_fails(finess: str) -> None:
    wrong = [finess[:8] + digit for digit in "0123456789" if digit != finess[8]]
    assert [identifiers.finess_is_valid(number) for number in wrong] == [False] * 9


@pytest.mark.parametrize("finess", ["75071218", "7507121840", "75071218A", "2C0712184", "A20712184", ""])
def test_malformed_finess_numbers_are_rejected(finess: str) -> None:
    assert not identifiers.finess_is_valid(finess)


def test_corsican_finess_numbers_get_a_shape_check_only() -> None:
    # The key rule of 2A/2B numbers is undocumented: any key is accepted, the shape is still checked.
    assert all(identifiers.finess_is_valid(f"2A000001{digit}") for digit in "0123456789")
    assert all(identifiers.finess_is_valid(f"2B123456{digit}") for digit in "0123456789")
    assert not identifiers.finess_is_valid("2A00000A1")


@pytest.mark.parametrize("department", sorted(geo.DEPARTMENTS))
def test_generated_finess_numbers_are_valid_and_point_to_their_department(department: str) -> None:
    prefix = identifiers.finess_prefix(department)
    for serial in (0, 1, 123, 10 ** (8 - len(prefix)) - 1):
        finess = identifiers.finess_generate(department, serial)
        assert len(finess) == 9
        assert finess.startswith(prefix)
        assert identifiers.finess_is_valid(finess)
        assert identifiers.finess_department(finess) == department
        if department not in identifiers.CORSICA_DEPARTMENTS:
            assert identifiers.luhn_is_valid(finess)


def test_overseas_finess_prefixes_follow_the_97x_rule() -> None:
    assert [identifiers.finess_prefix(code) for code in ("971", "972", "973", "974")] == [
        "9701",
        "9702",
        "9703",
        "9704",
    ]
    assert identifiers.finess_prefix("976").startswith("98")  # Mayotte
    assert identifiers.finess_department("750712184") == "75"


def test_finess_generation_refuses_out_of_range_serials_and_unknown_departments() -> None:
    with pytest.raises(ValueError, match="hors limites"):
        identifiers.finess_generate("35", 1_000_000)
    with pytest.raises(ValueError, match="hors limites"):
        identifiers.finess_generate("971", 10_000)
    with pytest.raises(ValueError, match="département inconnu"):
        identifiers.finess_generate("975", 1)


def test_luhn_check_digit_makes_the_only_valid_number() -> None:
    rng = random.Random(0)
    for _ in range(200):
        body = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 15)))
        key = identifiers.luhn_check_digit(body)
        assert identifiers.luhn_is_valid(body + key)
        assert [identifiers.luhn_is_valid(body + d) for d in "0123456789"].count(True) == 1
    with pytest.raises(ValueError, match="chiffres"):
        identifiers.luhn_check_digit("12a")
    assert not identifiers.luhn_is_valid("")
    assert not identifiers.luhn_is_valid("\u0660")  # ARABIC-INDIC DIGIT ZERO: isdigit(), but not ASCII


def test_siren_and_siret_keys() -> None:
    siren = identifiers.siren_generate(12_345_678)
    assert siren.startswith("12345678")
    assert identifiers.siren_is_valid(siren)
    assert not identifiers.siren_is_valid(siren[:8] + str((int(siren[8]) + 1) % 10))
    siret = identifiers.siret_generate(siren, 42)
    assert siret.startswith(siren + "0042")
    assert identifiers.siret_is_valid(siret)
    assert not identifiers.siret_is_valid(siret[:13] + str((int(siret[13]) + 1) % 10))
    assert not identifiers.siret_is_valid(siren)
    assert not identifiers.siren_is_valid(siret)
    with pytest.raises(ValueError, match="SIREN invalide"):
        identifiers.siret_generate("123456789", 1)


def test_la_poste_sirets_use_the_digit_sum_rule() -> None:
    # SIREN 356000000 (La Poste): digit sum divisible by 5 instead of Luhn [unverified rule].
    # Constructed numbers: the first fails Luhn but sums to 15, the second passes Luhn but sums to 26.
    assert identifiers.siret_is_valid("35600000000010")
    assert not identifiers.siret_is_valid("35600000000048")
    assert not identifiers.siret_is_valid("35600000000011")


def test_rpps_key_is_a_warning_not_a_shape_rule() -> None:
    assert identifiers.rpps_key_is_valid("10000001916")
    # An ANS sample RPPS that fails Luhn is still a legal RPPS.
    assert identifiers.rpps_is_well_formed("10003461033")
    assert not identifiers.rpps_key_is_valid("10003461033")
    assert identifiers.idnat_ps_parse("810003461033") == identifiers.IdNatPs(
        identifiers.IdentifierType.RPPS, "10003461033"
    )
    assert not identifiers.rpps_is_well_formed("1000346103")
    assert not identifiers.rpps_is_well_formed("1000346103X")


def test_generated_rpps_numbers_start_with_10_and_pass_luhn() -> None:
    for serial in (0, 1, 99_999_999, 12_345_678):
        rpps = identifiers.rpps_generate(serial)
        assert rpps.startswith("10")
        assert rpps[2:10] == f"{serial:08d}"
        assert identifiers.rpps_key_is_valid(rpps)
    assert identifiers.rpps_generate(191) == "10000001916"


def test_idnat_ps_build_and_parse() -> None:
    assert identifiers.idnat_ps_from_rpps("10003461033") == "810003461033"
    assert identifiers.idnat_ps_from_adeli("751234567") == "0751234567"
    parsed = identifiers.idnat_ps_parse("0751234567")
    assert parsed.identifier_type == identifiers.IdentifierType.ADELI
    assert parsed.identifier == "751234567"
    assert parsed.value == str(parsed) == "0751234567"
    for bad in ("10003461033", "91000346103", "81000346103", "8100034610331", "07512345", "0ABCDEFGHI", ""):
        with pytest.raises(identifiers.InvalidIdentifierError, match="Identifiant national"):
            identifiers.idnat_ps_parse(bad)
    with pytest.raises(identifiers.InvalidIdentifierError, match="11 chiffres"):
        identifiers.idnat_ps_from_rpps("123")
    with pytest.raises(identifiers.InvalidIdentifierError, match="9 chiffres"):
        identifiers.idnat_ps_from_adeli("12345678A")
