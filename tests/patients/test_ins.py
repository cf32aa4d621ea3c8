"""Vector tests of the pure INS module (standards §1.3 and §10)."""

import pytest

from enrs.patients import ins

TEST_INS = "279035121518989"  # ANS test INS of the CDA kit: F, born 1979-03-28 at INSEE 51215, key 89


def test_key_of_the_ans_test_ins() -> None:
    assert ins.mod97_key(TEST_INS[:13]) == "89"
    assert ins.mod97_is_valid(TEST_INS)


@pytest.mark.parametrize(
    "value", ["279035121518988", "27903512151898", "2790351215189AB", "", "2790351215189890"]
)
def test_wrong_keys_and_shapes_are_invalid(value: str) -> None:
    assert not ins.mod97_is_valid(value)


def test_corsica_reads_2a_and_2b_as_19_and_18() -> None:
    body_2a, body_2b = "180052A123456", "180052B123456"
    expected_2a = f"{97 - int('1800519123456') % 97:02d}"
    expected_2b = f"{97 - int('1800518123456') % 97:02d}"
    assert ins.mod97_key(body_2a) == expected_2a
    assert ins.mod97_key(body_2b) == expected_2b
    assert expected_2a != expected_2b
    assert ins.mod97_is_valid(body_2a.lower() + expected_2a)
    assert not ins.mod97_is_valid(body_2b + expected_2a)
    with pytest.raises(ValueError, match="corps de NIR/INS invalide"):
        ins.mod97_key("18005ZZ123456")


def test_check_matricule_normalises_spaces_and_accepts_test_oids_outside_production() -> None:
    assert (
        ins.check_matricule("2 79 03 51 215 189 89", ins.OID_INS_NIR_TEST, allow_test_oids=True) == TEST_INS
    )


@pytest.mark.parametrize(
    ("value", "oid", "message"),
    [
        ("27903512151898", ins.OID_INS_NIR, "15 caractères"),
        ("279035121518988", ins.OID_INS_NIR, "clé"),
        (TEST_INS, "1.2.3.4", "OID d'INS inconnu"),
        (TEST_INS, ins.OID_INS_NIR_TEST, "refusé en production"),
        (TEST_INS, ins.OID_INS_NIR_DEMO, "refusé en production"),
    ],
)
def test_check_matricule_refuses_with_a_french_reason(value: str, oid: str, message: str) -> None:
    with pytest.raises(ins.InsError, match=message):
        ins.check_matricule(value, oid, allow_test_oids=False)


def test_real_oids_pass_in_production() -> None:
    assert ins.check_matricule(TEST_INS, ins.OID_INS_NIR, allow_test_oids=False) == TEST_INS
    assert ins.check_matricule(TEST_INS, ins.OID_INS_NIA, allow_test_oids=False) == TEST_INS


def test_traits_report_what_is_missing() -> None:
    complete = ins.InsTraits("DUPONT", ("MARIE", "ANNE"), "MARIE", "F", "1979-03-28", "51215")
    assert complete.missing() == []
    partial = ins.InsTraits("", (), "", "U", "", "5121")
    assert partial.missing() == [
        "nom de naissance",
        "prénoms de naissance",
        "premier prénom de naissance",
        "sexe",
        "date de naissance",
        "lieu de naissance (code INSEE)",
    ]
    assert ins.InsTraits("X", ("Y",), "Y", "M", "2000-01-01", "2A004").missing() == []


def test_formats() -> None:
    assert ins.cx(TEST_INS, ins.OID_INS_NIR_TEST) == "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH"
    assert ins.patient_mailbox("146026322000196") == "146026322000196@patient.mssante.fr"
