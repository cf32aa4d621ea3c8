"""VIHF SAML assertion: build, sign with the test PKI's ORG certificate, verify, refuse bad tokens."""

import datetime as dt
from dataclasses import dataclass, replace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree

from dmp.standards import vihf
from enrs.accounts import pki_testing
from enrs.accounts.pki_testing import Issued

NS = {"saml2": vihf.NS_SAML, "ds": vihf.NS_DS, "hl7": vihf.NS_HL7}
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Pki:
    bundle: bytes
    org: Issued
    foreign_org: Issued
    expired_org: Issued


@pytest.fixture(scope="module")
def pki() -> Pki:
    test_pki = pki_testing.build_test_pki(now=NOW)
    org = pki_testing.issue_organisation(
        issuer=test_pki.issuing,
        now=NOW,
        common_name="ENRS DMP",
        idnat_struct="31234567890123",
        organisation="GCS",
    )
    foreign = pki_testing.issue_organisation(
        issuer=test_pki.unknown_root,
        now=NOW,
        common_name="X",
        idnat_struct="39999999999999",
        organisation="X",
    )
    expired = pki_testing.issue_organisation(
        issuer=test_pki.issuing,
        now=NOW - dt.timedelta(days=400),
        common_name="ENRS DMP",
        idnat_struct="31234567890123",
        organisation="GCS",
    )
    return Pki(test_pki.ca_bundle_pem, org, foreign, expired)


def claims(**overrides: object) -> vihf.VihfClaims:
    values: dict[str, object] = {
        "idnat_ps": "899700000011",
        "subject_name": "DURAND Claire",
        "structure_id": "31234567890123",
        "activity_sector": "SA07^1.2.250.1.71.4.2.4",
        "profession": vihf.CodedValue("10", vihf.PROFESSION_SYSTEM, "professions", "Médecin"),
        "specialty": vihf.CodedValue("SM26", vihf.SPECIALTY_SYSTEM, "specialites RPPS", "Médecine générale"),
        "patient_ins_cx": "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH",
        "lps_id": "1.2.250.1.999.1",
        "lps_name": "ENRS",
        "lps_version": "1.0",
        "lps_homologation_id": "HOMOLOG-1",
    }
    values.update(overrides)
    return vihf.VihfClaims(**values)  # type: ignore[arg-type]


def sign(issued: Issued, the_claims: vihf.VihfClaims | None = None, **kwargs: object) -> bytes:
    return vihf.build_vihf(
        the_claims or claims(),
        cert_pem=issued.cert_pem,
        key_pem=issued.key_pem,
        **kwargs,  # type: ignore[arg-type]
    )


def test_signed_assertion_structure(pki: Pki) -> None:
    xml = sign(pki.org, now=NOW)
    root = etree.fromstring(xml)
    assert root.tag == f"{{{vihf.NS_SAML}}}Assertion"
    children = [etree.QName(c).localname for c in root]
    assert children[:3] == ["Issuer", "Signature", "Subject"]  # SAML schema order
    assert root.find("ds:Signature", NS).get("Id") != "placeholder"
    assert root.xpath("ds:Signature/ds:SignedInfo/ds:Reference/@URI", namespaces=NS) == [f"#{root.get('ID')}"]
    assert root.xpath("ds:Signature/ds:SignedInfo/ds:SignatureMethod/@Algorithm", namespaces=NS) == [
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
    ]
    issuer = root.find("saml2:Issuer", NS)
    assert issuer.get("Format") == "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName"
    assert issuer.text == pki.org.cert.subject.rfc4514_string()
    assert "OU=31234567890123" in issuer.text
    assert root.findtext("saml2:Subject/saml2:NameID", namespaces=NS) == "899700000011"
    roles = root.xpath(
        f"saml2:AttributeStatement/saml2:Attribute[@Name='{vihf.ATTR_ROLE}']/saml2:AttributeValue/hl7:Role",
        namespaces=NS,
    )
    assert [(r.get("code"), r.get("codeSystem")) for r in roles] == [
        ("10", "1.2.250.1.71.1.2.7"),
        ("SM26", "1.2.250.1.71.4.2.5"),
    ]
    assert roles[0].get(f"{{{vihf.NS_XSI}}}type") == "CE"
    conditions = root.find("saml2:Conditions", NS)
    assert conditions.get("NotBefore") == NOW.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_sign_and_verify_with_the_test_pki(pki: Pki) -> None:
    xml = sign(pki.org, now=NOW)
    verified = vihf.verify_vihf(xml, pki.bundle, now=NOW + dt.timedelta(minutes=1))
    assert verified.idnat_ps == "899700000011"
    assert verified.vihf_version == "4.0"
    assert verified.structure_id == "31234567890123"
    assert verified.patient_ins_cx == "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH"
    assert verified.attribute(vihf.ATTR_RESOURCE_URN) == "urn:dmp"
    assert verified.attribute(vihf.ATTR_AUTHN_MODE) == "INDIRECTE"
    assert verified.attribute(vihf.ATTR_SECTOR) == "SA07^1.2.250.1.71.4.2.4"
    assert verified.attribute(vihf.ATTR_SUBJECT_ID) == "DURAND Claire"
    assert verified.attribute(vihf.ATTR_LPS_HOMOLOGATION) == "HOMOLOG-1"
    assert verified.attributes[vihf.ATTR_ROLE] == ("10^1.2.250.1.71.1.2.7", "SM26^1.2.250.1.71.4.2.5")
    assert [r.code for r in verified.roles] == ["10", "SM26"]
    assert verified.purpose_of_use == vihf.NORMAL_ACCESS
    assert verified.authn_context == vihf.AUTHN_SMARTCARD
    assert verified.not_on_or_after - verified.not_before == dt.timedelta(minutes=10)
    assert verified.signing_certificate == pki.org.cert
    assert vihf.ATTR_ACCESS_REASON not in verified.attributes


def test_version_3_and_access_reason(pki: Pki) -> None:
    xml = sign(pki.org, claims(vihf_version="3.0", access_reason="Urgence vitale"), now=NOW)
    verified = vihf.verify_vihf(xml, pki.bundle, now=NOW)
    assert verified.vihf_version == "3.0"
    assert verified.attribute(vihf.ATTR_ACCESS_REASON) == "Urgence vitale"


def _custom_cert(
    issuer: Issued,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    *,
    key_usage: x509.KeyUsage | None = None,
) -> tuple[bytes, bytes]:
    builder = (
        x509.CertificateBuilder()
        .subject_name(
            pki_testing.org_subject(common_name="C", idnat_struct="3111", organisation="O", department="35")
        )
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    cert = builder.sign(issuer.key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def test_rsa_key_is_supported() -> None:
    test_pki = pki_testing.build_test_pki(now=NOW)
    cert_pem, key_pem = _custom_cert(
        test_pki.issuing, rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    xml = vihf.build_vihf(claims(), cert_pem=cert_pem, key_pem=key_pem, now=NOW)
    assert b"xmldsig-more#rsa-sha256" in xml
    assert vihf.verify_vihf(xml, test_pki.ca_bundle_pem, now=NOW).idnat_ps == "899700000011"


def test_certificate_without_signing_usage_is_refused() -> None:
    test_pki = pki_testing.build_test_pki(now=NOW)
    encipher_only = x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    cert_pem, key_pem = _custom_cert(
        test_pki.issuing, ec.generate_private_key(ec.SECP256R1()), key_usage=encipher_only
    )
    xml = vihf.build_vihf(claims(), cert_pem=cert_pem, key_pem=key_pem, now=NOW)
    with pytest.raises(vihf.VihfError, match="keyUsage"):
        vihf.verify_vihf(xml, test_pki.ca_bundle_pem, now=NOW)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"279035121518989^^^", b"279035121518988^^^"),  # patient swapped
        (b">899700000011<", b">899700000029<"),  # user swapped
        (b'code="SM26"', b'code="SM04"'),  # role changed
    ],
)
def test_tampered_assertion_is_refused(pki: Pki, old: bytes, new: bytes) -> None:
    xml = sign(pki.org, now=NOW)
    assert old in xml
    with pytest.raises(vihf.VihfError, match="altéré"):
        vihf.verify_vihf(xml.replace(old, new), pki.bundle, now=NOW)


def test_removed_signature_is_refused(pki: Pki) -> None:
    root = etree.fromstring(sign(pki.org, now=NOW))
    root.remove(root.find("ds:Signature", NS))
    with pytest.raises(vihf.VihfError, match="non signé"):
        vihf.verify_vihf(etree.tostring(root), pki.bundle, now=NOW)


def test_unknown_ca_is_refused(pki: Pki) -> None:
    xml = sign(pki.foreign_org, now=NOW)
    with pytest.raises(vihf.VihfError, match="autorité de confiance"):
        vihf.verify_vihf(xml, pki.bundle, now=NOW)


def test_other_ca_bundle_is_refused(pki: Pki) -> None:
    other = pki_testing.build_test_pki(now=NOW)
    with pytest.raises(vihf.VihfError, match="autorité de confiance"):
        vihf.verify_vihf(sign(pki.org, now=NOW), other.ca_bundle_pem, now=NOW)


def test_expired_certificate_is_refused(pki: Pki) -> None:
    xml = sign(pki.expired_org, now=NOW)
    with pytest.raises(vihf.VihfError, match="Certificat de cachet expiré"):
        vihf.verify_vihf(xml, pki.bundle, now=NOW)


def test_expired_assertion_is_refused(pki: Pki) -> None:
    xml = sign(pki.org, now=NOW, lifetime=dt.timedelta(minutes=5))
    with pytest.raises(vihf.VihfError, match="Jeton VIHF expiré"):
        vihf.verify_vihf(xml, pki.bundle, now=NOW + dt.timedelta(minutes=7))
    with pytest.raises(vihf.VihfError, match="pas encore valide"):
        vihf.verify_vihf(xml, pki.bundle, now=NOW - dt.timedelta(minutes=5))


def test_issuer_must_match_the_signing_certificate(pki: Pki) -> None:
    # Re-sign an assertion whose Issuer names another structure: the signature is valid, the issuer lies.
    xml = sign(pki.org, now=NOW)
    root = etree.fromstring(xml)
    root.find("saml2:Issuer", NS).text = "CN=Autre,OU=39999999999999,O=Autre,C=FR"
    root.remove(root.find("ds:Signature", NS))
    etree.SubElement(root, f"{{{vihf.NS_DS}}}Signature", Id="placeholder")
    signature = root[-1]
    root.remove(signature)
    root.insert(1, signature)
    from signxml import XMLSigner, methods

    resigned = XMLSigner(method=methods.enveloped, signature_algorithm="ecdsa-sha256").sign(
        root, key=pki.org.key_pem, cert=[pki.org.cert_pem.decode()], reference_uri=f"#{root.get('ID')}"
    )
    with pytest.raises(vihf.VihfError, match="émetteur"):
        vihf.verify_vihf(etree.tostring(resigned), pki.bundle, now=NOW)


def test_bad_claims_are_refused_in_french(pki: Pki) -> None:
    with pytest.raises(vihf.VihfError, match=r"version VIHF « 5\.0 »"):
        sign(pki.org, claims(vihf_version="5.0"))
    with pytest.raises(vihf.VihfError, match="INS du patient manquant"):
        sign(pki.org, claims(patient_ins_cx=""))
    with pytest.raises(vihf.VihfError, match="mode d'authentification"):
        sign(pki.org, claims(authentication_mode="AUTRE"))
    with pytest.raises(vihf.VihfError, match="ne correspond pas"):
        vihf.build_vihf(claims(), cert_pem=pki.org.cert_pem, key_pem=pki.foreign_org.key_pem)


def test_garbage_and_doctype_are_refused(pki: Pki) -> None:
    with pytest.raises(vihf.VihfError, match="illisible"):
        vihf.verify_vihf(b"<saml2:Assertion", pki.bundle)
    with pytest.raises(vihf.VihfError, match="DOCTYPE"):
        vihf.verify_vihf(b'<!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>', pki.bundle)
    with pytest.raises(vihf.VihfError, match="Assertion"):
        vihf.verify_vihf(b"<a/>", pki.bundle)


def test_claims_are_frozen() -> None:
    base = claims()
    assert replace(base, vihf_version="3.0").vihf_version == "3.0"
    assert base.vihf_version == "4.0"
