"""`manage.py make_test_pki OUTDIR`: the files it writes are a working test PKI."""

import datetime as dt
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from enrs.accounts import cps
from tests.factories import UserFactory


def test_writes_a_pki_that_validates(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    call_command("make_test_pki", str(out), "--idnat", "899700000011:DURAND:Claire:Médecin")

    bundle = cps.load_ca_bundle((out / "ca-bundle.pem").read_bytes())
    crls = cps.load_crls((out / "crl.pem").read_bytes())
    now = dt.datetime.now(dt.UTC)
    identity = cps.validate_cps_certificate(
        (out / "899700000011.crt").read_bytes(), ca_bundle=bundle, crl=crls, now=now
    )
    assert (identity.surname, identity.given_name, identity.title) == ("DURAND", "Claire", "Médecin")
    expected = {
        "expired": cps.CpsExpired,
        "unknown-ca": cps.CpsUnknownIssuer,
        "revoked": cps.CpsRevoked,
        "no-client-auth": cps.CpsWrongUsage,
    }
    for name, error in expected.items():
        with pytest.raises(error):
            cps.validate_cps_certificate(
                (out / f"{name}.crt").read_bytes(), ca_bundle=bundle, crl=crls, now=now
            )
    for name in ("server.crt", "server.key", "899700000011.key", "899700000011.p12", "root-ca.crt"):
        assert (out / name).is_file()
    assert (out / "server.key").stat().st_mode & 0o077 == 0  # private keys: owner only


def test_default_identities(tmp_path: Path) -> None:
    call_command("make_test_pki", str(tmp_path))
    assert {p.stem for p in tmp_path.glob("[08]*.crt")} == {
        "899700000011",
        "899700000029",
        "899700000037",
        "0999000017",
    }


def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    call_command("make_test_pki", str(tmp_path))
    before = (tmp_path / "ca-bundle.pem").read_bytes()
    with pytest.raises(CommandError, match="--force"):
        call_command("make_test_pki", str(tmp_path))
    call_command("make_test_pki", str(tmp_path), "--force")
    assert (tmp_path / "ca-bundle.pem").read_bytes() != before


def test_rejects_a_malformed_identity(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="IDNAT:NOM:Prénom"):
        call_command("make_test_pki", str(tmp_path), "--idnat", "899700000011")


@pytest.mark.django_db
def test_cards_for_the_existing_accounts(tmp_path: Path) -> None:
    UserFactory(username="demo-medecin", first_name="Inès", last_name="Lefèvre", idnat_ps="810001234567")
    UserFactory(username="sans-carte")
    UserFactory(username="parti", idnat_ps="810007654321", is_active=False)

    call_command("make_test_pki", str(tmp_path), "--from-users")

    assert {p.stem for p in tmp_path.glob("[08]*.crt")} == {"810001234567"}
    identity = cps.identity_from_subject(cps.load_certificate((tmp_path / "810001234567.crt").read_bytes()))
    assert (identity.surname, identity.given_name) == ("LEFÈVRE", "Inès")
