"""CPS certificate validation (enrs/accounts/cps.py) against the test PKI: one case per outcome."""

import datetime as dt
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from enrs.accounts import cps
from enrs.accounts.pki_testing import (
    DEFAULT_PROFESSIONALS,
    Issued,
    Professional,
    SamplePki,
    build_test_pki,
    ca_name,
    issue_professional,
    make_ca,
    make_crl,
)

NOW = dt.datetime.now(dt.UTC)
DURAND = DEFAULT_PROFESSIONALS[0]


@pytest.fixture(scope="module")
def pki() -> SamplePki:
    return build_test_pki(now=NOW)


def validate(pki: SamplePki, issued: Issued | bytes, *, crl: object = "default", now: dt.datetime = NOW):
    pem = issued if isinstance(issued, bytes) else issued.cert_pem
    crls = [pki.crl, pki.root_crl] if crl == "default" else crl
    return cps.validate_cps_certificate(pem, ca_bundle=pki.ca_bundle, crl=crls, now=now)  # type: ignore[arg-type]


def issue_valid(professional: Professional, *, issuer: Issued) -> Issued:
    return issue_professional(
        professional,
        issuer=issuer,
        not_before=NOW - dt.timedelta(days=1),
        not_after=NOW + dt.timedelta(days=365),
    )


# --- Accepted -----------------------------------------------------------------------------------------
def test_valid_rpps_card_gives_the_identity_of_the_subject(pki: SamplePki) -> None:
    identity = validate(pki, pki.professionals[DURAND.idnat_ps])

    assert identity.idnat_ps == "899700000011"
    assert (identity.surname, identity.given_name, identity.title) == ("DURAND", "Claire", "Médecin")
    assert identity.display_name == "Claire DURAND"
    assert "AC IGC-SANTE ELEMENTAIRE PERSONNES" in identity.issuer
    cert = pki.professionals[DURAND.idnat_ps].cert
    assert identity.serial_number == format(cert.serial_number, "X")
    assert identity.fingerprint_sha256 == cert.fingerprint(hashes.SHA256()).hex()
    assert identity.not_after == cert.not_valid_after_utc


def test_valid_adeli_card(pki: SamplePki) -> None:
    identity = validate(pki, pki.professionals["0999000017"])
    assert identity.idnat_ps == "0999000017"
    assert identity.title == "Infirmier"


def test_subject_has_the_igc_sante_ps_profile(pki: SamplePki) -> None:
    """CN (IdNat_PS), SURNAME and GIVENNAME share one multi-valued RDN; T and C=FR are RDNs of their own."""
    subject = pki.professionals[DURAND.idnat_ps].cert.subject
    rdns = list(subject.rdns)
    assert [len(r) for r in rdns] == [1, 1, 3]
    assert {a.oid for a in rdns[2]} == {NameOID.COMMON_NAME, NameOID.SURNAME, NameOID.GIVEN_NAME}
    assert subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "FR"


def test_without_crl_no_revocation_check(pki: SamplePki) -> None:
    assert validate(pki, pki.revoked, crl=None).idnat_ps == "899700000060"


def test_bundle_with_the_issuing_ca_only_trusts_it_directly(pki: SamplePki) -> None:
    identity = cps.validate_cps_certificate(
        pki.professionals[DURAND.idnat_ps].cert_pem, ca_bundle=[pki.issuing.cert], crl=None, now=NOW
    )
    assert identity.idnat_ps == DURAND.idnat_ps


def test_a_single_crl_is_accepted(pki: SamplePki) -> None:
    assert validate(pki, pki.professionals[DURAND.idnat_ps], crl=pki.crl).idnat_ps == DURAND.idnat_ps


# --- Refused ------------------------------------------------------------------------------------------
def test_expired_card(pki: SamplePki) -> None:
    with pytest.raises(cps.CpsExpired) as caught:
        validate(pki, pki.expired)
    assert caught.value.code == "expired"
    expected = cps.french_date(pki.expired.cert.not_valid_after_utc)
    assert caught.value.message.startswith(f"Votre carte CPS a expiré le {expected}.")


def test_card_not_yet_valid(pki: SamplePki) -> None:
    future = issue_professional(
        DURAND,
        issuer=pki.issuing,
        not_before=NOW + dt.timedelta(days=2),
        not_after=NOW + dt.timedelta(days=400),
    )
    with pytest.raises(cps.CpsNotYetValid) as caught:
        validate(pki, future)
    assert "ne sera valable qu'à partir du" in caught.value.message


def test_unknown_ca(pki: SamplePki) -> None:
    with pytest.raises(cps.CpsUnknownIssuer) as caught:
        validate(pki, pki.unknown_ca)
    assert caught.value.code == "unknown_issuer"
    assert caught.value.message == "Le certificat n'a pas été émis par une autorité IGC-Santé reconnue."


def test_forged_issuer_name_with_another_key_is_an_unknown_ca(pki: SamplePki) -> None:
    """A CA that copies the name of the IGC-Santé issuing CA but not its key: the signature decides."""
    impostor_key = ec.generate_private_key(ec.SECP256R1())
    impostor = Issued(pki.issuing.cert, impostor_key)  # same subject name, wrong key
    forged = issue_valid(DURAND, issuer=impostor)
    assert forged.cert.issuer == pki.issuing.cert.subject
    with pytest.raises(cps.CpsUnknownIssuer):
        validate(pki, forged)


def test_expired_card_from_an_unknown_ca_is_reported_as_unknown_ca(pki: SamplePki) -> None:
    expired_elsewhere = issue_professional(
        DURAND,
        issuer=pki.unknown_root,
        not_before=NOW - dt.timedelta(days=30),
        not_after=NOW - dt.timedelta(days=1),
    )
    with pytest.raises(cps.CpsUnknownIssuer):
        validate(pki, expired_elsewhere)


def test_a_ca_certificate_is_not_a_card(pki: SamplePki) -> None:
    with pytest.raises(cps.CpsUnknownIssuer):
        validate(pki, pki.issuing)


def test_issued_by_a_ca_whose_root_is_not_trusted(pki: SamplePki) -> None:
    other_root = make_ca("AUTRE RACINE", now=NOW)
    lookalike = make_ca("TEST ENRS - AC IGC-SANTE ELEMENTAIRE PERSONNES", parent=other_root, now=NOW)
    card = issue_valid(DURAND, issuer=lookalike)
    with pytest.raises(cps.CpsUnknownIssuer):
        # The attacker also sends its own intermediate: it must still chain to a trusted root.
        cps.validate_cps_certificate(
            card.cert_pem, ca_bundle=[pki.root.cert, lookalike.cert], crl=None, now=NOW
        )


def test_revoked_card(pki: SamplePki) -> None:
    with pytest.raises(cps.CpsRevoked) as caught:
        validate(pki, pki.revoked)
    assert caught.value.code == "revoked"
    assert caught.value.message.startswith("Ce certificat a été révoqué")
    assert caught.value.detail["revoked_serial"] == format(pki.revoked.cert.serial_number, "X")


def test_signature_certificate_without_client_authentication(pki: SamplePki) -> None:
    with pytest.raises(cps.CpsWrongUsage) as caught:
        validate(pki, pki.no_client_auth)
    assert caught.value.code == "wrong_usage"
    assert caught.value.message.startswith("Ce certificat ne permet pas l'authentification du client")


def test_server_certificate_is_not_a_card(pki: SamplePki) -> None:
    """The nginx certificate (EKU serverAuth) chains to the same root but cannot sign anyone in."""
    with pytest.raises(cps.CpsWrongUsage) as caught:
        validate(pki, pki.server)
    assert "clientAuth" in caught.value.detail["problem"]


def test_certificate_without_an_idnat_ps(pki: SamplePki) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    app_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name("logiciel-de-cabinet"))
        .issuer_name(pki.issuing.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(pki.issuing.key, hashes.SHA256())
    )
    with pytest.raises(cps.CpsNotProfessional):
        validate(pki, app_cert.public_bytes(serialization.Encoding.PEM))


@pytest.mark.parametrize(
    "pem",
    [
        b"",
        b"garbage",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        b"-----BEGIN CERTIFICATE-----\nMIIB\n",
    ],
    ids=["empty", "text", "bad-der", "truncated"],
)
def test_garbage_pem(pki: SamplePki, pem: bytes) -> None:
    with pytest.raises(cps.CpsMalformed) as caught:
        validate(pki, pem)
    assert caught.value.code == "malformed"
    assert caught.value.message == "Le certificat transmis par votre carte CPS est illisible."


def test_empty_ca_bundle_trusts_nothing(pki: SamplePki) -> None:
    with pytest.raises(cps.CpsUnknownIssuer):
        cps.validate_cps_certificate(
            pki.professionals[DURAND.idnat_ps].cert_pem, ca_bundle=[], crl=None, now=NOW
        )


# --- CRL problems: fail closed ----------------------------------------------------------------------
def test_stale_crl(pki: SamplePki) -> None:
    stale = make_crl(issuer=pki.issuing, now=NOW - dt.timedelta(days=30), next_update=dt.timedelta(days=7))
    with pytest.raises(cps.CpsRevocationUnavailable) as caught:
        validate(pki, pki.professionals[DURAND.idnat_ps], crl=[stale])
    assert "momentanément impossible" in caught.value.message


def test_crl_signed_by_another_key(pki: SamplePki) -> None:
    forged = make_crl(issuer=Issued(pki.issuing.cert, ec.generate_private_key(ec.SECP256R1())), now=NOW)
    with pytest.raises(cps.CpsRevocationUnavailable):
        # A forged empty CRL must not hide a revocation.
        validate(pki, pki.revoked, crl=[forged])


def test_crl_of_another_ca_only(pki: SamplePki) -> None:
    with pytest.raises(cps.CpsRevocationUnavailable):
        validate(pki, pki.professionals[DURAND.idnat_ps], crl=[pki.root_crl])


def test_revoked_intermediate_ca(pki: SamplePki) -> None:
    root_crl_revoking_issuing_ca = make_crl(issuer=pki.root, revoked=[pki.issuing.cert], now=NOW)
    with pytest.raises(cps.CpsRevoked):
        validate(pki, pki.professionals[DURAND.idnat_ps], crl=[pki.crl, root_crl_revoking_issuing_ca])


# --- Header decoding, files, nginx's verdict --------------------------------------------------------
def test_header_is_the_url_encoded_pem(pki: SamplePki) -> None:
    pem = pki.professionals[DURAND.idnat_ps].cert_pem
    escaped = quote(pem.decode(), safe="")  # what $ssl_client_escaped_cert looks like
    assert "%0A" in escaped
    assert cps.decode_header_certificate(escaped) == pem


def test_header_keeps_plus_signs_of_base64(pki: SamplePki) -> None:
    pem = pki.professionals[DURAND.idnat_ps].cert_pem
    # Only newlines escaped: "+" must stay "+" (no form decoding).
    assert cps.decode_header_certificate(pem.decode().replace("\n", "%0A")) == pem


def test_header_in_the_legacy_tab_format(pki: SamplePki) -> None:
    """`$ssl_client_cert` (deprecated): continuation lines start with a tab."""
    pem = pki.professionals[DURAND.idnat_ps].cert_pem
    legacy = pem.decode().rstrip("\n").replace("\n", "\n\t")
    assert cps.decode_header_certificate(legacy) == pem


@pytest.mark.parametrize("value", ["", "bonjour", "%2D%2D%2D", "A" * (cps.MAX_HEADER_LENGTH + 1)])
def test_header_without_a_certificate(value: str) -> None:
    with pytest.raises(cps.CpsMalformed):
        cps.decode_header_certificate(value)


def test_bundle_and_crl_files_are_read(pki: SamplePki) -> None:
    assert [c.subject for c in cps.load_ca_bundle(pki.ca_bundle_pem)] == [c.subject for c in pki.ca_bundle]
    assert [c.issuer for c in cps.load_crls(pki.crl_pem)] == [pki.issuing.cert.subject, pki.root.cert.subject]
    with pytest.raises(ValueError, match="aucune CRL"):
        cps.load_crls(b"rien")
    with pytest.raises(ValueError, match="PEM"):
        cps.load_ca_bundle(b"rien")


def test_proxy_verdict() -> None:
    cps.check_proxy_verdict("SUCCESS")
    for verdict in ("FAILED:certificate has expired", "NONE", "", None):
        with pytest.raises(cps.CpsProxyRejected):
            cps.check_proxy_verdict(verdict)


def test_french_date() -> None:
    assert cps.french_date(dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)) == "1er mars 2026"
    # Paris time: 23:30 UTC on 14 July is already the 15th in Paris.
    assert cps.french_date(dt.datetime(2026, 7, 14, 23, 30, tzinfo=dt.UTC)) == "15 juillet 2026"


def test_professional_spec() -> None:
    assert Professional.parse("899700000011:DURAND:Claire:Médecin") == DURAND
    assert Professional.parse("0999000017:PETIT:Julie").title == "Médecin"
    with pytest.raises(ValueError, match="IDNAT:NOM:Prénom"):
        Professional.parse("899700000011:DURAND")
