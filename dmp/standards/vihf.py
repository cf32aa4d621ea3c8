"""VIHF token (Vecteur d'Identification et d'Habilitation Formelles): the SAML 2.0 assertion that a
structure's software puts in the WS-Security header of every DMP call (standards.md §4).

Pure code: lxml + signxml + cryptography, no Django import.

* `build_vihf(claims, cert_pem=…, key_pem=…)` builds the assertion and signs it (enveloped XML-DSig,
  exclusive c14n, RSA-SHA256 or ECDSA-SHA256 depending on the key) with the structure's ORG ("cachet")
  certificate; the issuer is that certificate's subject DN (X509SubjectName).
* `verify_vihf(xml, ca_pem_bundle)` checks the signature, the certificate chain up to a CA of the bundle,
  the certificate and assertion validity windows, and returns only what was signed.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature as InvalidSignatureError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from lxml import etree
from signxml import InvalidInput, InvalidSignature, SignatureConfiguration, XMLSigner, XMLVerifier, methods
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidCertificate, SignXMLException

NS_SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
NS_DS = "http://www.w3.org/2000/09/xmldsig#"
NS_XSI = "http://www.w3.org/2001/XMLSchema-instance"
NS_XS = "http://www.w3.org/2001/XMLSchema"
NS_HL7 = "urn:hl7-org:v3"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"

ISSUER_FORMAT = "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName"
NAME_ID_FORMAT = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
AUTHN_SMARTCARD = "urn:oasis:names:tc:SAML:2.0:ac:classes:SmartcardPKI"
AUTHN_TLS_CLIENT = "urn:oasis:names:tc:SAML:2.0:ac:classes:TLSClient"

ATTR_VERSION = "VIHF_Version"
ATTR_STRUCTURE = "Identifiant_Structure"
ATTR_SECTOR = "Secteur_Activite"
ATTR_SUBJECT_ID = "urn:oasis:names:tc:xspa:1.0:subject:subject-id"
ATTR_ROLE = "urn:oasis:names:tc:xacml:2.0:subject:role"
ATTR_AUTHN_MODE = "Authentification_Mode"
ATTR_RESOURCE_ID = "urn:oasis:names:tc:xacml:2.0:resource:resource-id"
ATTR_RESOURCE_URN = "Ressource_URN"
ATTR_PURPOSE = "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse"
ATTR_CONFIDENTIALITY = "urn:oasis:names:tc:xspa:1.0:resource:patient:hl7:confidentiality-code"
ATTR_LPS_ID = "LPS_ID"
ATTR_LPS_NAME = "LPS_Nom"
ATTR_LPS_VERSION = "LPS_Version"
ATTR_LPS_HOMOLOGATION = "LPS_ID_HOMOLOGATION_DMP"
ATTR_ACCESS_REASON = "Mode_Acces_Raison"

PROFESSION_SYSTEM = "1.2.250.1.71.1.2.7"  # JDV_J65 / TRE_G15 professions
SPECIALTY_SYSTEM = "1.2.250.1.71.4.2.5"  # TRE_R38 savoir-faire
PURPOSE_SYSTEM = "1.2.250.1.213.1.1.4.248"  # TRE_R248 mode d'accès

VIHF_VERSIONS = ("3.0", "4.0")
AUTHN_MODES = ("DIRECTE", "INDIRECTE")

_SIGNATURE_METHODS = frozenset({SignatureMethod.RSA_SHA256, SignatureMethod.ECDSA_SHA256})
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


class VihfError(ValueError):
    """A VIHF token that cannot be built or must be refused (French message)."""


@dataclass(frozen=True)
class CodedValue:
    """An HL7 CE value (xsi:type="CE") carried in an AttributeValue: role, purpose of use."""

    code: str
    system: str
    system_name: str = ""
    display: str = ""


NORMAL_ACCESS = CodedValue("normal", PURPOSE_SYSTEM, "mode acces VIHF 2.0", "Accès normal")


@dataclass(frozen=True)
class VihfClaims:
    """What the token asserts about the user, the structure, the patient and the software."""

    idnat_ps: str  # Subject/NameID: the user's IdNat_PS
    subject_name: str  # subject-id, "NOM Prénom"
    structure_id: str  # Identifiant_Structure (IdNat_Struct)
    activity_sector: str  # Secteur_Activite, "SA07^1.2.250.1.71.4.2.4"
    profession: CodedValue  # 1st role (JDV_J65, e.g. CodedValue("10", PROFESSION_SYSTEM, …, "Médecin"))
    patient_ins_cx: str  # resource-id: INS as CX "INS^^^&OID&ISO^NH"
    lps_id: str
    lps_name: str
    lps_version: str
    specialty: CodedValue | None = None  # 2nd role (savoir-faire, e.g. SM26) for physicians and pharmacists
    authentication_mode: str = "INDIRECTE"  # DIRECTE (CPS to the DMP) | INDIRECTE (structure's cachet)
    purpose_of_use: CodedValue = NORMAL_ACCESS
    authn_context: str = AUTHN_SMARTCARD
    lps_homologation_id: str = ""
    access_reason: str = ""  # Mode_Acces_Raison (break-the-glass, emergency…)
    confidentiality_code: str = ""  # connexion secrète
    vihf_version: str = "4.0"  # standards.md §4: "4.0"; older software sends "3.0"


@dataclass(frozen=True)
class VerifiedAssertion:
    """What a verified token says. Everything here was covered by the signature."""

    assertion_id: str
    issuer: str
    signing_certificate: x509.Certificate
    idnat_ps: str
    issue_instant: dt.datetime
    not_before: dt.datetime
    not_on_or_after: dt.datetime
    authn_context: str
    attributes: dict[str, tuple[str, ...]]  # text values; CE values as "code^codeSystem"
    roles: tuple[CodedValue, ...]
    purpose_of_use: CodedValue | None
    signed_xml: bytes = field(repr=False)

    def attribute(self, name: str) -> str:
        values = self.attributes.get(name, ())
        return values[0] if values else ""

    @property
    def vihf_version(self) -> str:
        return self.attribute(ATTR_VERSION)

    @property
    def structure_id(self) -> str:
        return self.attribute(ATTR_STRUCTURE)

    @property
    def patient_ins_cx(self) -> str:
        return self.attribute(ATTR_RESOURCE_ID)


# ---------------------------------------------------------------------------------------------------
# Build


def _saml(tag: str) -> str:
    return f"{{{NS_SAML}}}{tag}"


def _instant(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text_attribute(statement: etree._Element, name: str, values: Sequence[str]) -> None:
    attribute = etree.SubElement(statement, _saml("Attribute"), Name=name)
    for value in values:
        node = etree.SubElement(attribute, _saml("AttributeValue"))
        node.set(f"{{{NS_XSI}}}type", "xs:string")
        node.text = value


def _coded_attribute(
    statement: etree._Element, name: str, element: str, values: Sequence[CodedValue]
) -> None:
    attribute = etree.SubElement(statement, _saml("Attribute"), Name=name)
    for value in values:
        holder = etree.SubElement(attribute, _saml("AttributeValue"))
        coded = etree.SubElement(holder, f"{{{NS_HL7}}}{element}", nsmap={None: NS_HL7})
        coded.set("code", value.code)
        coded.set("codeSystem", value.system)
        if value.system_name:
            coded.set("codeSystemName", value.system_name)
        if value.display:
            coded.set("displayName", value.display)
        coded.set(f"{{{NS_XSI}}}type", "CE")


def _check_claims(claims: VihfClaims) -> None:
    problems = []
    if claims.vihf_version not in VIHF_VERSIONS:
        problems.append(f"version VIHF « {claims.vihf_version} » non prise en charge (3.0 ou 4.0)")
    if claims.authentication_mode not in AUTHN_MODES:
        problems.append(
            f"mode d'authentification « {claims.authentication_mode} » inconnu (DIRECTE ou INDIRECTE)"
        )
    required = {
        "identifiant national du professionnel": claims.idnat_ps,
        "nom du professionnel": claims.subject_name,
        "identifiant de la structure": claims.structure_id,
        "secteur d'activité": claims.activity_sector,
        "INS du patient": claims.patient_ins_cx,
        "identifiant du logiciel (LPS_ID)": claims.lps_id,
        "nom du logiciel": claims.lps_name,
        "version du logiciel": claims.lps_version,
        "profession": claims.profession.code,
    }
    problems += [f"{label} manquant" for label, value in required.items() if not value.strip()]
    if problems:
        raise VihfError("Jeton VIHF impossible à construire : " + " ; ".join(problems) + ".")


def _load_signer(cert_pem: bytes, key_pem: bytes) -> tuple[x509.Certificate, SignatureMethod]:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = load_pem_private_key(key_pem, password=None)
    except ValueError as exc:
        raise VihfError("Certificat ou clé de cachet illisible.") from exc
    if isinstance(key, ec.EllipticCurvePrivateKey):
        method = SignatureMethod.ECDSA_SHA256
    elif isinstance(key, rsa.RSAPrivateKey):
        method = SignatureMethod.RSA_SHA256
    else:
        raise VihfError("Type de clé de cachet non pris en charge (RSA ou EC attendus).")
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        raise VihfError("La clé privée ne correspond pas au certificat de cachet.")
    return cert, method


def build_vihf(
    claims: VihfClaims,
    *,
    cert_pem: bytes,
    key_pem: bytes,
    chain_pem: Sequence[bytes] = (),
    now: dt.datetime | None = None,
    lifetime: dt.timedelta = dt.timedelta(minutes=10),
    assertion_id: str | None = None,
) -> bytes:
    """The signed VIHF assertion (UTF-8 XML, no declaration), valid from `now` for `lifetime`.

    `cert_pem`/`key_pem`: the structure's ORG certificate and its unencrypted private key (PEM);
    `chain_pem`: intermediate CA certificates to add to KeyInfo (optional).
    """
    _check_claims(claims)
    cert, method = _load_signer(cert_pem, key_pem)
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(microsecond=0)
    assertion_id = assertion_id or f"_{uuid.uuid4()}"
    issued = _instant(now)

    root = etree.Element(
        _saml("Assertion"),
        nsmap={"saml2": NS_SAML, "xsi": NS_XSI, "xs": NS_XS},
        ID=assertion_id,
        IssueInstant=issued,
        Version="2.0",
    )
    issuer = etree.SubElement(root, _saml("Issuer"), Format=ISSUER_FORMAT)
    issuer.text = cert.subject.rfc4514_string()
    etree.SubElement(root, f"{{{NS_DS}}}Signature", nsmap={"ds": NS_DS}, Id="placeholder")
    subject = etree.SubElement(root, _saml("Subject"))
    name_id = etree.SubElement(subject, _saml("NameID"), Format=NAME_ID_FORMAT)
    name_id.text = claims.idnat_ps
    etree.SubElement(root, _saml("Conditions"), NotBefore=issued, NotOnOrAfter=_instant(now + lifetime))
    authn = etree.SubElement(root, _saml("AuthnStatement"), AuthnInstant=issued)
    context = etree.SubElement(authn, _saml("AuthnContext"))
    etree.SubElement(context, _saml("AuthnContextClassRef")).text = claims.authn_context

    statement = etree.SubElement(root, _saml("AttributeStatement"))
    _text_attribute(statement, ATTR_VERSION, [claims.vihf_version])
    _text_attribute(statement, ATTR_STRUCTURE, [claims.structure_id])
    _text_attribute(statement, ATTR_SECTOR, [claims.activity_sector])
    _text_attribute(statement, ATTR_SUBJECT_ID, [claims.subject_name])
    roles = [claims.profession] + ([claims.specialty] if claims.specialty else [])
    _coded_attribute(statement, ATTR_ROLE, "Role", roles)
    _text_attribute(statement, ATTR_AUTHN_MODE, [claims.authentication_mode])
    _text_attribute(statement, ATTR_RESOURCE_ID, [claims.patient_ins_cx])
    _text_attribute(statement, ATTR_RESOURCE_URN, ["urn:dmp"])
    _coded_attribute(statement, ATTR_PURPOSE, "PurposeOfUse", [claims.purpose_of_use])
    if claims.confidentiality_code:
        _text_attribute(statement, ATTR_CONFIDENTIALITY, [claims.confidentiality_code])
    _text_attribute(statement, ATTR_LPS_ID, [claims.lps_id])
    _text_attribute(statement, ATTR_LPS_NAME, [claims.lps_name])
    _text_attribute(statement, ATTR_LPS_VERSION, [claims.lps_version])
    if claims.lps_homologation_id:
        _text_attribute(statement, ATTR_LPS_HOMOLOGATION, [claims.lps_homologation_id])
    if claims.access_reason:
        _text_attribute(statement, ATTR_ACCESS_REASON, [claims.access_reason])

    signer = XMLSigner(
        method=methods.enveloped,
        signature_algorithm=method,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=EXC_C14N,
    )
    signed = signer.sign(
        root,
        key=key_pem,
        cert=[cert_pem.decode("ascii"), *(c.decode("ascii") for c in chain_pem)],
        reference_uri=f"#{assertion_id}",
        id_attribute="ID",
    )
    return etree.tostring(signed, encoding="UTF-8")


# ---------------------------------------------------------------------------------------------------
# Verify


def _load_bundle(ca_pem_bundle: bytes | Sequence[x509.Certificate]) -> list[x509.Certificate]:
    if isinstance(ca_pem_bundle, bytes | str):
        data = ca_pem_bundle.encode() if isinstance(ca_pem_bundle, str) else ca_pem_bundle
        try:
            return x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            raise VihfError("Liste des autorités de confiance illisible.") from exc
    return list(ca_pem_bundle)


def _valid_at(cert: x509.Certificate, moment: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _may_sign(cert: x509.Certificate) -> bool:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return bool(usage.digital_signature or usage.content_commitment)


def _issuer_in(cert: x509.Certificate, candidates: Sequence[x509.Certificate]) -> x509.Certificate | None:
    for candidate in candidates:
        if candidate.subject != cert.issuer or not _is_ca(candidate):
            continue
        try:
            cert.verify_directly_issued_by(candidate)
        except (ValueError, TypeError, InvalidSignatureError):
            continue
        return candidate
    return None


def verify_chain(
    cert: x509.Certificate,
    trusted: Sequence[x509.Certificate],
    *,
    intermediates: Sequence[x509.Certificate] = (),
    now: dt.datetime,
) -> None:
    """Raise VihfError unless `cert` chains up to a certificate of `trusted`, every link valid at `now`."""
    if not _valid_at(cert, now):
        raise VihfError("Certificat de cachet expiré ou pas encore valide.")
    current = cert
    for _ in range(6):
        anchor = _issuer_in(current, trusted)
        if anchor is not None:
            if not _valid_at(anchor, now):
                raise VihfError("Certificat d'autorité expiré.")
            return
        step = _issuer_in(current, intermediates)
        if step is None or step is current:
            break
        if not _valid_at(step, now):
            raise VihfError("Certificat d'autorité intermédiaire expiré.")
        current = step
    raise VihfError("Certificat de cachet non émis par une autorité de confiance.")


def _parse_time(value: str | None, label: str) -> dt.datetime:
    if not value:
        raise VihfError(f"Jeton VIHF : {label} absent.")
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise VihfError(f"Jeton VIHF : {label} « {value} » illisible.") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _coded(node: etree._Element) -> CodedValue:
    return CodedValue(
        code=node.get("code", ""),
        system=node.get("codeSystem", ""),
        system_name=node.get("codeSystemName", ""),
        display=node.get("displayName", ""),
    )


def _signature_certificates(root: etree._Element) -> list[x509.Certificate]:
    texts = root.findall(
        f"{{{NS_DS}}}Signature/{{{NS_DS}}}KeyInfo/{{{NS_DS}}}X509Data/{{{NS_DS}}}X509Certificate"
    )
    certs = []
    for text in texts:
        der = "".join((text.text or "").split())
        try:
            certs.append(x509.load_der_x509_certificate(base64.b64decode(der)))
        except ValueError as exc:
            raise VihfError("Jeton VIHF : certificat de signature illisible.") from exc
    return certs


def parse_xml(xml: bytes | etree._Element) -> etree._Element:
    if isinstance(xml, etree._Element):
        return xml
    if b"<!DOCTYPE" in xml or b"<!ENTITY" in xml:
        raise VihfError("Jeton VIHF refusé : déclarations DOCTYPE/ENTITY interdites.")
    try:
        return etree.fromstring(xml, parser=_PARSER)
    except etree.XMLSyntaxError as exc:
        raise VihfError("Jeton VIHF illisible (XML mal formé).") from exc


def verify_vihf(
    xml: bytes | etree._Element,
    ca_pem_bundle: bytes | Sequence[x509.Certificate],
    *,
    now: dt.datetime | None = None,
    clock_skew: dt.timedelta = dt.timedelta(seconds=60),
) -> VerifiedAssertion:
    """Check a VIHF assertion and return what it (verifiably) says. Raises VihfError in French when the
    signature is wrong (tampered), the certificate does not chain to `ca_pem_bundle`, the certificate or
    the assertion is outside its validity window, or the issuer does not match the signing certificate."""
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    # Always work on a fresh copy parsed from bytes, so that the caller's tree cannot change under us.
    root = parse_xml(etree.tostring(xml) if isinstance(xml, etree._Element) else xml)
    if root.tag != _saml("Assertion"):
        raise VihfError("Jeton VIHF attendu (saml2:Assertion).")
    certs = _signature_certificates(root)
    if not certs:
        raise VihfError("Jeton VIHF non signé ou sans certificat de signature.")
    signing, intermediates = certs[0], certs[1:]
    verify_chain(signing, _load_bundle(ca_pem_bundle), intermediates=intermediates, now=now)
    if not _may_sign(signing):
        raise VihfError("Le certificat de cachet n'autorise pas la signature (keyUsage).")
    config = SignatureConfiguration(
        location="./",
        signature_methods=_SIGNATURE_METHODS,
        digest_algorithms=frozenset({DigestAlgorithm.SHA256}),
        verification_time=now,
    )
    try:
        result = XMLVerifier().verify(
            etree.tostring(root), x509_cert=signing, expect_config=config, id_attribute="ID"
        )
    except (InvalidSignature, InvalidInput, InvalidCertificate, SignXMLException) as exc:
        raise VihfError("Signature du jeton VIHF invalide (jeton altéré ou mal signé).") from exc
    assert not isinstance(result, list)
    signed = result.signed_xml
    if signed is None or signed.tag != _saml("Assertion") or signed.get("ID") != root.get("ID"):
        raise VihfError("La signature ne couvre pas l'assertion VIHF.")

    issuer = signed.findtext(_saml("Issuer")) or ""
    if issuer != signing.subject.rfc4514_string():
        raise VihfError("L'émetteur du jeton VIHF ne correspond pas au certificat de signature.")
    conditions = signed.find(_saml("Conditions"))
    if conditions is None:
        raise VihfError("Jeton VIHF sans période de validité (Conditions).")
    not_before = _parse_time(conditions.get("NotBefore"), "NotBefore")
    not_after = _parse_time(conditions.get("NotOnOrAfter"), "NotOnOrAfter")
    if now + clock_skew < not_before:
        raise VihfError("Jeton VIHF pas encore valide.")
    if now - clock_skew >= not_after:
        raise VihfError("Jeton VIHF expiré.")

    attributes: dict[str, tuple[str, ...]] = {}
    roles: list[CodedValue] = []
    purpose: CodedValue | None = None
    for attribute in signed.iter(_saml("Attribute")):
        name = attribute.get("Name", "")
        values: list[str] = []
        for value in attribute.findall(_saml("AttributeValue")):
            coded = next(iter(value), None)
            if coded is not None and coded.get("code") is not None:
                parsed = _coded(coded)
                values.append(f"{parsed.code}^{parsed.system}")
                if name == ATTR_ROLE:
                    roles.append(parsed)
                elif name == ATTR_PURPOSE:
                    purpose = parsed
            else:
                values.append(value.text or "")
        attributes[name] = tuple(values)
    if attributes.get(ATTR_VERSION, ("",))[0] not in VIHF_VERSIONS:
        raise VihfError("Version VIHF absente ou non prise en charge.")
    name_id = signed.findtext(f"{_saml('Subject')}/{_saml('NameID')}") or ""
    if not name_id:
        raise VihfError("Jeton VIHF sans identifiant du professionnel (NameID).")
    return VerifiedAssertion(
        assertion_id=signed.get("ID", ""),
        issuer=issuer,
        signing_certificate=signing,
        idnat_ps=name_id,
        issue_instant=_parse_time(signed.get("IssueInstant"), "IssueInstant"),
        not_before=not_before,
        not_on_or_after=not_after,
        authn_context=signed.findtext(
            f"{_saml('AuthnStatement')}/{_saml('AuthnContext')}/{_saml('AuthnContextClassRef')}"
        )
        or "",
        attributes=attributes,
        roles=tuple(roles),
        purpose_of_use=purpose,
        signed_xml=etree.tostring(signed),
    )
