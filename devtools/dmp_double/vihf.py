"""The VIHF token (SAML 2.0 assertion in the WS-Security header) of DMP requests: build and verify.

Verification (server side, what the DMP does before anything else):
1. a `saml2:Assertion` is present in `soap:Header/wsse:Security`;
2. its XML-DSig signature (signxml verifier, exclusive c14n, no SHA-1) is valid with the certificate in
   `ds:KeyInfo`, and the signature covers the assertion itself (its `ID`), so that values are read from
   the signed copy only (no signature wrapping);
3. that certificate chains to the configured CA bundle (signature of each link, validity dates, CA
   basicConstraints), and allows signing (keyUsage digitalSignature or nonRepudiation);
4. `Conditions` NotBefore/NotOnOrAfter contain "now" (with a small clock skew);
5. the required attributes are there: `Subject/NameID` (IdNat of the user), `Identifiant_Structure`,
   `Ressource_URN` = `urn:dmp`, `urn:oasis:names:tc:xacml:2.0:resource:resource-id` (the patient INS,
   bare or as an XDS CX `INS^^^&OID&ISO^NH`).

The builder (client side) is for tests and the demo: it signs with an ORG ("cachet") key and cert.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree
from signxml import SignatureConfiguration, XMLSigner, XMLVerifier
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidInput, InvalidSignature

from .constants import DS, SAML, SOAP, WSSE
from .xmlsafe import UnsafeXmlError, parse

log = logging.getLogger("dmp_double")

ATTR_STRUCTURE = "Identifiant_Structure"
ATTR_RESOURCE_URN = "Ressource_URN"
ATTR_RESOURCE_ID = "urn:oasis:names:tc:xacml:2.0:resource:resource-id"
ATTR_ROLE = "urn:oasis:names:tc:xacml:2.0:subject:role"
ATTR_SUBJECT_NAME = "urn:oasis:names:tc:xspa:1.0:subject:subject-id"
ATTR_PURPOSE = "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse"
ATTR_SECTOR = "Secteur_Activite"
ATTR_AUTH_MODE = "Authentification_Mode"
ATTR_VERSION = "VIHF_Version"
X509_SUBJECT_FORMAT = "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName"
CLOCK_SKEW = dt.timedelta(minutes=2)


class VihfError(ValueError):
    """The token is missing or not acceptable. `subcode`: a WS-Security fault code (local name)."""

    def __init__(self, reason: str, *, subcode: str = "InvalidSecurityToken") -> None:
        super().__init__(reason)
        self.reason = reason
        self.subcode = subcode


@dataclass(frozen=True)
class VihfClaims:
    subject_id: str
    structure_id: str
    resource_id: str
    ins: str
    ins_oid: str
    issuer: str
    certificate_subject: str
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def roles(self) -> tuple[str, ...]:
        return self.attributes.get(ATTR_ROLE, ())


def split_patient_id(value: str) -> tuple[str, str]:
    """(INS, assigning-authority OID) from a bare INS or an XDS CX `INS^^^&OID&ISO^NH`."""
    value = value.strip()
    if "^" not in value:
        return value, ""
    ins, _, rest = value.partition("^")
    fields = rest.split("^")
    oid = ""
    if len(fields) >= 3:
        authority = fields[2].split("&")
        if len(authority) >= 2:
            oid = authority[1]
    return ins, oid


# --- verification -------------------------------------------------------------------------------------


def _load_chain_issuer(
    cert: x509.Certificate, ca_certs: Sequence[x509.Certificate]
) -> x509.Certificate | None:
    for candidate in ca_certs:
        if candidate.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(candidate)
        except Exception:  # InvalidSignature, wrong key type…: not this issuer
            log.debug("%s n'a pas émis %s", candidate.subject, cert.subject)
            continue
        return candidate
    return None


def check_chain(cert: x509.Certificate, ca_certs: Sequence[x509.Certificate], *, now: dt.datetime) -> None:
    """`cert` must chain (signatures, dates, CA constraints) to a self-signed certificate of `ca_certs`."""
    current = cert
    for _depth in range(8):
        if not (current.not_valid_before_utc <= now <= current.not_valid_after_utc):
            raise VihfError(
                f"Certificat hors de sa période de validité : {current.subject.rfc4514_string()}",
                subcode="SecurityTokenUnavailable" if current is not cert else "InvalidSecurityToken",
            )
        issuer = _load_chain_issuer(current, ca_certs)
        if issuer is None:
            raise VihfError(
                "Le certificat de signature du VIHF n'est pas émis par une autorité de confiance "
                f"({current.issuer.rfc4514_string()})."
            )
        try:
            constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            constraints = None
        if constraints is None or not constraints.ca:
            raise VihfError("Un maillon de la chaîne de certification n'est pas une autorité (CA).")
        if issuer.subject == issuer.issuer:
            if not (issuer.not_valid_before_utc <= now <= issuer.not_valid_after_utc):
                raise VihfError("L'autorité racine est hors de sa période de validité.")
            return
        current = issuer
    raise VihfError("Chaîne de certification trop longue.")


def _signing_usage_ok(cert: x509.Certificate) -> bool:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return bool(usage.digital_signature or usage.content_commitment)


def _attributes(assertion: etree._Element) -> dict[str, tuple[str, ...]]:
    found: dict[str, list[str]] = {}
    for attribute in assertion.iterfind(f"{{{SAML}}}AttributeStatement/{{{SAML}}}Attribute"):
        name = attribute.get("Name", "")
        for value in attribute.iterfind(f"{{{SAML}}}AttributeValue"):
            children = [c for c in value if isinstance(c.tag, str)]
            if children:
                child = children[0]
                text = "^".join(x for x in (child.get("code", ""), child.get("codeSystem", "")) if x)
            else:
                text = (value.text or "").strip()
            found.setdefault(name, []).append(text)
    return {k: tuple(v) for k, v in found.items()}


def _time(value: str | None, what: str) -> dt.datetime:
    if not value:
        raise VihfError(f"VIHF : attribut {what} absent.")
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise VihfError(f"VIHF : date {what} illisible ({value}).") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


def verify_vihf(
    envelope: etree._Element, *, ca_certs: Sequence[x509.Certificate], now: dt.datetime | None = None
) -> VihfClaims:
    """Check the VIHF of a SOAP 1.2 envelope and return its claims; raise `VihfError` (French reason)."""
    now = now or dt.datetime.now(dt.UTC)
    header = envelope.find(f"{{{SOAP}}}Header")
    security = header.find(f"{{{WSSE}}}Security") if header is not None else None
    if security is None:
        raise VihfError("En-tête WS-Security absent : jeton VIHF requis.", subcode="InvalidSecurity")
    assertions = security.findall(f"{{{SAML}}}Assertion")
    if len(assertions) != 1:
        raise VihfError(
            "Le jeton VIHF (une assertion SAML 2.0) est absent ou multiple.", subcode="InvalidSecurity"
        )
    assertion = assertions[0]
    assertion_id = assertion.get("ID")
    if not assertion_id:
        raise VihfError("Assertion VIHF sans attribut ID.")
    cert_text = assertion.findtext(
        f"{{{DS}}}Signature/{{{DS}}}KeyInfo/{{{DS}}}X509Data/{{{DS}}}X509Certificate"
    )
    if not cert_text:
        raise VihfError(
            "Assertion VIHF non signée (ds:Signature avec certificat X.509 attendue).", subcode="FailedCheck"
        )
    try:
        cert = x509.load_der_x509_certificate(base64.b64decode("".join(cert_text.split())))
    except ValueError as exc:
        raise VihfError("Certificat X.509 du VIHF illisible.") from exc
    check_chain(cert, ca_certs, now=now)
    if not _signing_usage_ok(cert):
        raise VihfError("Le certificat du VIHF n'autorise pas la signature.")
    standalone = etree.tostring(assertion)
    try:
        results = XMLVerifier().verify(
            standalone,
            x509_cert=cert,
            expect_config=SignatureConfiguration(expect_references=1),
        )
    except (InvalidSignature, InvalidInput) as exc:
        raise VihfError(f"Signature du VIHF invalide : {exc}", subcode="FailedCheck") from exc
    except Exception as exc:
        raise VihfError(f"Signature du VIHF invérifiable : {exc}", subcode="FailedCheck") from exc
    result = results[0] if isinstance(results, list) else results
    signed = result.signed_xml
    if signed is None or signed.tag != f"{{{SAML}}}Assertion" or signed.get("ID") != assertion_id:
        raise VihfError("La signature du VIHF ne couvre pas l'assertion.", subcode="FailedCheck")
    conditions = signed.find(f"{{{SAML}}}Conditions")
    if conditions is None:
        raise VihfError("VIHF sans période de validité (Conditions).")
    not_before = _time(conditions.get("NotBefore"), "NotBefore")
    not_after = _time(conditions.get("NotOnOrAfter"), "NotOnOrAfter")
    if now + CLOCK_SKEW < not_before:
        raise VihfError("VIHF pas encore valide (NotBefore dans le futur).", subcode="MessageExpired")
    if now - CLOCK_SKEW >= not_after:
        raise VihfError("VIHF expiré (NotOnOrAfter dépassé).", subcode="MessageExpired")
    issuer = (signed.findtext(f"{{{SAML}}}Issuer") or "").strip()
    if not issuer:
        raise VihfError("VIHF sans émetteur (Issuer).")
    subject_id = (signed.findtext(f"{{{SAML}}}Subject/{{{SAML}}}NameID") or "").strip()
    if not subject_id:
        raise VihfError("VIHF sans identifiant de l'utilisateur (Subject/NameID).")
    attributes = _attributes(signed)

    def one(name: str) -> str:
        values = [v for v in attributes.get(name, ()) if v]
        if not values:
            raise VihfError(f"VIHF : attribut obligatoire absent : {name}.")
        return values[0]

    if one(ATTR_RESOURCE_URN) != "urn:dmp":
        raise VihfError("VIHF : Ressource_URN doit valoir « urn:dmp ».")
    structure_id = one(ATTR_STRUCTURE)
    resource_id = one(ATTR_RESOURCE_ID)
    ins, ins_oid = split_patient_id(resource_id)
    if not ins:
        raise VihfError("VIHF : resource-id (INS du patient) vide.")
    return VihfClaims(
        subject_id=subject_id,
        structure_id=structure_id,
        resource_id=resource_id,
        ins=ins,
        ins_oid=ins_oid,
        issuer=issuer,
        certificate_subject=cert.subject.rfc4514_string(),
        attributes=attributes,
    )


def load_ca_bundle(pem: bytes) -> list[x509.Certificate]:
    certs = x509.load_pem_x509_certificates(pem)
    if not certs:
        raise ValueError("Bundle de CA vide.")
    return certs


# --- building (tests, demo) ------------------------------------------------------------------------------


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_vihf(
    *,
    signing_cert_pem: bytes,
    signing_key_pem: bytes,
    subject_id: str,
    structure_id: str,
    patient_id: str,
    subject_name: str = "",
    roles: Sequence[tuple[str, str]] = (("10", "1.2.250.1.71.1.2.7"),),
    sector: str = "SA07^1.2.250.1.71.4.2.4",
    purpose_of_use: str = "normal",
    now: dt.datetime | None = None,
    lifetime: dt.timedelta = dt.timedelta(minutes=10),
    issuer: str | None = None,
    omit_attributes: Sequence[str] = (),
    extra_attributes: Mapping[str, str] | None = None,
) -> etree._Element:
    """A signed VIHF 4.0 assertion (`patient_id`: bare INS or XDS CX). Returns the Assertion element."""
    now = now or dt.datetime.now(dt.UTC)
    cert = x509.load_pem_x509_certificate(signing_cert_pem)
    key = serialization.load_pem_private_key(signing_key_pem, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        algorithm = SignatureMethod.ECDSA_SHA256
    elif isinstance(key, rsa.RSAPrivateKey):
        algorithm = SignatureMethod.RSA_SHA256
    else:
        raise ValueError("Clé de signature non prise en charge (EC ou RSA attendue).")
    assertion_id = f"_{uuid.uuid4()}"
    s = f"{{{SAML}}}"
    assertion = etree.Element(
        s + "Assertion", nsmap={"saml2": SAML}, ID=assertion_id, IssueInstant=_iso(now), Version="2.0"
    )
    issuer_el = etree.SubElement(assertion, s + "Issuer", Format=X509_SUBJECT_FORMAT)
    issuer_el.text = issuer if issuer is not None else cert.subject.rfc4514_string()
    etree.SubElement(assertion, f"{{{DS}}}Signature", nsmap={"ds": DS}, Id="placeholder")
    subject = etree.SubElement(assertion, s + "Subject")
    name_id = etree.SubElement(subject, s + "NameID")
    name_id.text = subject_id
    etree.SubElement(
        subject, s + "SubjectConfirmation", Method="urn:oasis:names:tc:SAML:2.0:cm:sender-vouches"
    )
    etree.SubElement(
        assertion,
        s + "Conditions",
        NotBefore=_iso(now - dt.timedelta(seconds=30)),
        NotOnOrAfter=_iso(now + lifetime),
    )
    authn = etree.SubElement(assertion, s + "AuthnStatement", AuthnInstant=_iso(now))
    context = etree.SubElement(authn, s + "AuthnContext")
    etree.SubElement(
        context, s + "AuthnContextClassRef"
    ).text = "urn:oasis:names:tc:SAML:2.0:ac:classes:TLSClient"
    statement = etree.SubElement(assertion, s + "AttributeStatement")
    values: list[tuple[str, str | tuple[str, str]]] = [
        (ATTR_VERSION, "4.0"),
        (ATTR_STRUCTURE, structure_id),
        (ATTR_SECTOR, sector),
        (ATTR_SUBJECT_NAME, subject_name or subject_id),
        *[(ATTR_ROLE, role) for role in roles],
        (ATTR_AUTH_MODE, "INDIRECTE"),
        (ATTR_RESOURCE_ID, patient_id),
        (ATTR_RESOURCE_URN, "urn:dmp"),
        (ATTR_PURPOSE, purpose_of_use),
        *[(k, v) for k, v in (extra_attributes or {}).items()],
    ]
    for name, value in values:
        if name in omit_attributes:
            continue
        attribute = etree.SubElement(statement, s + "Attribute", Name=name)
        holder = etree.SubElement(attribute, s + "AttributeValue")
        if isinstance(value, tuple):
            etree.SubElement(holder, "{urn:hl7-org:v3}Role", code=value[0], codeSystem=value[1])
        else:
            holder.text = value
    signer = XMLSigner(
        signature_algorithm=algorithm,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    signed: etree._Element = signer.sign(
        assertion, key=key, cert=[cert], reference_uri=f"#{assertion_id}", id_attribute="ID"
    )
    return signed


def reparse(element: etree._Element) -> etree._Element:
    """Round-trip through bytes (what goes over the wire), with the safe parser."""
    try:
        return parse(etree.tostring(element))
    except UnsafeXmlError as exc:  # pragma: no cover - our own output
        raise ValueError(str(exc)) from exc
