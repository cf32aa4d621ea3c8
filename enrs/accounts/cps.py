"""Validation of a CPS card (IGC-Santé) authentication certificate. Pure code: no Django import.

nginx terminates TLS, checks that the client holds the private key of the certificate it presents, and
forwards that certificate (PEM, URL-encoded) to Django. This module then decides, on its own, whether the
certificate opens a session: chain to a configured IGC-Santé CA, validity dates, key usage for client
authentication, revocation (CRL), and a professional's national identifier in the subject:

    CN=<IdNat_PS> + SURNAME=<NOM> + GIVENNAME=<PRÉNOM>, T=<profession>, C=FR

Every refusal is a `CpsError` subclass with a stable `code` (for the audit trail) and a French `message`
for the person at the keyboard.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote
from zoneinfo import ZoneInfo

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

# Same rule as `enrs.accounts.models.idnat_ps_validator`: "8" + RPPS (11 digits) or "0" + ADELI.
IDNAT_PS = re.compile(r"^(8\d{11}|0\d{9})$")
# A PEM certificate is a few kilobytes; anything much larger in a header is not one.
MAX_HEADER_LENGTH = 32 * 1024
# Tolerance for a CRL published by a clock slightly ahead of ours.
CLOCK_SKEW = dt.timedelta(minutes=5)
PARIS = ZoneInfo("Europe/Paris")
_MONTHS = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)


def french_date(moment: dt.datetime) -> str:
    """« 3 mars 2026 », in Paris time."""
    local = moment.astimezone(PARIS)
    day = "1er" if local.day == 1 else str(local.day)
    return f"{day} {_MONTHS[local.month - 1]} {local.year}"


# --- Refusals ------------------------------------------------------------------------------------
class CpsError(Exception):
    """Why a certificate does not open a session. `message` is shown to the user, `code` is audited."""

    code = "invalid"
    default_message = "Votre carte CPS n'a pas pu être vérifiée."

    def __init__(self, message: str | None = None, *, detail: dict[str, str] | None = None) -> None:
        self.message = message or self.default_message
        self.detail = detail or {}
        super().__init__(self.message)


class CpsMalformed(CpsError):
    code = "malformed"
    default_message = "Le certificat transmis par votre carte CPS est illisible."


class CpsUnknownIssuer(CpsError):
    code = "unknown_issuer"
    default_message = "Le certificat n'a pas été émis par une autorité IGC-Santé reconnue."


class CpsExpired(CpsError):
    code = "expired"

    def __init__(self, not_after: dt.datetime, *, detail: dict[str, str] | None = None) -> None:
        self.not_after = not_after
        super().__init__(
            f"Votre carte CPS a expiré le {french_date(not_after)}. "
            "Utilisez votre nouvelle carte ou demandez son renouvellement.",
            detail=detail,
        )


class CpsNotYetValid(CpsError):
    code = "not_yet_valid"

    def __init__(self, not_before: dt.datetime, *, detail: dict[str, str] | None = None) -> None:
        self.not_before = not_before
        super().__init__(
            f"Votre carte CPS ne sera valable qu'à partir du {french_date(not_before)}.", detail=detail
        )


class CpsWrongUsage(CpsError):
    code = "wrong_usage"
    default_message = (
        "Ce certificat ne permet pas l'authentification du client : choisissez le certificat "
        "d'authentification de votre carte CPS."
    )


class CpsRevoked(CpsError):
    code = "revoked"
    default_message = "Ce certificat a été révoqué : votre carte CPS ne peut plus être utilisée."


class CpsRevocationUnavailable(CpsError):
    """The configured CRL cannot be used (stale, wrong signature, missing for this CA): fail closed."""

    code = "revocation_unavailable"
    default_message = (
        "La vérification de la révocation de votre carte CPS est momentanément impossible. "
        "Réessayez plus tard ou connectez-vous avec votre mot de passe et votre code à usage unique."
    )


class CpsNotProfessional(CpsError):
    code = "not_professional"
    default_message = (
        "Ce certificat n'identifie pas un professionnel de santé : son sujet ne contient pas "
        "d'identifiant national RPPS ou ADELI."
    )


class CpsProxyRejected(CpsError):
    """nginx's own verification disagrees with ours: refuse, whatever we found."""

    code = "proxy_rejected"


# --- Result ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CpsIdentity:
    idnat_ps: str
    surname: str
    given_name: str
    title: str
    serial_number: str  # hex, as printed by openssl
    issuer: str  # RFC 4514
    not_after: dt.datetime
    fingerprint_sha256: str

    @property
    def display_name(self) -> str:
        return " ".join(p for p in (self.given_name, self.surname) if p) or self.idnat_ps


def certificate_summary(cert: x509.Certificate) -> dict[str, str]:
    """What the audit trail keeps of a presented certificate (never the whole PEM)."""
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": format(cert.serial_number, "X"),
        "fingerprint_sha256": cert.fingerprint(hashes.SHA256()).hex(),
        "not_after": cert.not_valid_after_utc.isoformat(),
    }


# --- Inputs ----------------------------------------------------------------------------------------
def decode_header_certificate(value: str) -> bytes:
    """The PEM bytes of a certificate forwarded in a header by nginx.

    `$ssl_client_escaped_cert` is the PEM, URL-encoded. The deprecated `$ssl_client_cert` (PEM with a
    tab before each continuation line) is accepted too. `+` is a base64 character, so no unquote_plus.
    """
    if len(value) > MAX_HEADER_LENGTH:
        raise CpsMalformed(detail={"problem": "header too long"})
    text = unquote(value.strip()) if "%" in value else value
    lines = [line.strip() for line in text.replace("\r", "").split("\n")]
    pem = "\n".join(line for line in lines if line) + "\n"
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise CpsMalformed(detail={"problem": "no PEM certificate"})
    return pem.encode("ascii", errors="replace")


def load_ca_bundle(data: bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle (the same file as nginx's `ssl_client_certificate`)."""
    certs = x509.load_pem_x509_certificates(data)
    if not certs:
        raise ValueError("Le fichier d'autorités de certification est vide.")
    return certs


def load_crls(data: bytes) -> list[x509.CertificateRevocationList]:
    """Every CRL of a PEM file (the same file as nginx's `ssl_crl`: one CRL per CA, concatenated)."""
    blocks = re.findall(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----", data, flags=re.DOTALL)
    if not blocks:
        raise ValueError("Le fichier de listes de révocation ne contient aucune CRL au format PEM.")
    return [x509.load_pem_x509_crl(block + b"\n") for block in blocks]


# --- Validation ------------------------------------------------------------------------------------
def _policy_builder(
    *, ca_bundle: Sequence[x509.Certificate], at: dt.datetime
) -> tuple[PolicyBuilder, list[x509.Certificate]]:
    """The verifier's trust: self-signed certificates of the bundle are the anchors and the others
    intermediates that must chain to them, as OpenSSL (nginx) does. A bundle without any root (only an
    issuing CA) trusts that CA directly."""
    roots = [c for c in ca_bundle if c.subject == c.issuer]
    intermediates = [c for c in ca_bundle if c.subject != c.issuer]
    anchors = roots or list(ca_bundle)
    if not roots:
        intermediates = []
    # Web PKI defaults (signature algorithms, key sizes, CA basicConstraints/keyUsage…) relaxed where a
    # card certificate is not a web server's: no subjectAltName required, no authorityKeyIdentifier
    # required (path building only), and the leaf's EKU checked by `_check_usage` for a precise message.
    # An EKU on a CA need not list clientAuth either (RFC 5280 does not ask for it).
    ee_policy = (
        ExtensionPolicy.webpki_defaults_ee()
        .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None)
        .may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
        .may_be_present(x509.AuthorityKeyIdentifier, Criticality.NON_CRITICAL, None)
    )
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None
    )
    builder = (
        PolicyBuilder()
        .store(Store(anchors))
        .time(at)
        .max_chain_depth(4)
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
    )
    return builder, intermediates


def _verify_chain(
    cert: x509.Certificate, *, ca_bundle: Sequence[x509.Certificate], now: dt.datetime
) -> list[x509.Certificate]:
    """The chain [leaf, issuer, …, anchor] or CpsUnknownIssuer.

    The chain is checked at `now` clamped into the leaf's validity period: an expired card from a known
    CA is then reported as expired (not as "unknown CA"). A certificate is only ever accepted when `now`
    is inside its validity period (checked right after), in which case the clamp changes nothing.
    """
    at = min(max(now, cert.not_valid_before_utc), cert.not_valid_after_utc)
    builder, intermediates = _policy_builder(ca_bundle=ca_bundle, at=at)
    try:
        verified = builder.build_client_verifier().verify(cert, intermediates)
    except VerificationError as exc:
        raise CpsUnknownIssuer(detail={"problem": str(exc)[:300]}) from exc
    return list(verified.chain)


def _check_dates(cert: x509.Certificate, *, now: dt.datetime) -> None:
    if now < cert.not_valid_before_utc:
        raise CpsNotYetValid(cert.not_valid_before_utc)
    if now > cert.not_valid_after_utc:
        raise CpsExpired(cert.not_valid_after_utc)


def _check_usage(cert: x509.Certificate) -> None:
    """Key usage digitalSignature and extended key usage clientAuth, both required (the CPS card's
    authentication certificate has both; its signature certificate has nonRepudiation only)."""
    try:
        key_usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise CpsWrongUsage(detail={"problem": f"missing {exc.oid.dotted_string}"}) from exc
    if not key_usage.digital_signature:
        raise CpsWrongUsage(detail={"problem": "keyUsage without digitalSignature"})
    if ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        raise CpsWrongUsage(detail={"problem": "extendedKeyUsage without clientAuth"})


def _check_revocation(
    chain: Sequence[x509.Certificate], *, crls: Sequence[x509.CertificateRevocationList], now: dt.datetime
) -> None:
    """Each certificate below the anchor against its issuer's CRL. The leaf's issuer must have one (fail
    closed); an intermediate is checked when its issuer's CRL is in the file."""
    for depth, (cert, issuer) in enumerate(itertools.pairwise(chain)):
        candidates = [crl for crl in crls if crl.issuer == issuer.subject]
        if not candidates:
            if depth == 0:
                raise CpsRevocationUnavailable(
                    detail={"problem": f"no CRL for {issuer.subject.rfc4514_string()}"}
                )
            continue
        usable = []
        for crl in candidates:
            if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                continue
            if (
                crl.next_update_utc is None
                or crl.next_update_utc < now
                or crl.last_update_utc > now + CLOCK_SKEW
            ):
                continue
            usable.append(crl)
        if not usable:
            raise CpsRevocationUnavailable(
                detail={"problem": f"no valid, current CRL for {issuer.subject.rfc4514_string()}"}
            )
        for crl in usable:
            entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
            if entry is not None:
                raise CpsRevoked(
                    detail={
                        "revoked_at": entry.revocation_date_utc.isoformat(),
                        "revoked_serial": format(cert.serial_number, "X"),
                    }
                )


def _single(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    values = [a.value for a in name.get_attributes_for_oid(oid)]
    if len(values) != 1:
        return ""
    value = values[0]
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value.strip()


def identity_from_subject(cert: x509.Certificate) -> CpsIdentity:
    subject = cert.subject
    idnat = _single(subject, NameOID.COMMON_NAME)
    if not IDNAT_PS.match(idnat):
        raise CpsNotProfessional(detail={"subject": subject.rfc4514_string()})
    return CpsIdentity(
        idnat_ps=idnat,
        surname=_single(subject, NameOID.SURNAME),
        given_name=_single(subject, NameOID.GIVEN_NAME),
        title=_single(subject, NameOID.TITLE),
        serial_number=format(cert.serial_number, "X"),
        issuer=cert.issuer.rfc4514_string(),
        not_after=cert.not_valid_after_utc,
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
    )


def load_certificate(pem: bytes) -> x509.Certificate:
    """The certificate, with its subject and extensions parsed now (they are parsed lazily otherwise,
    and a malformed one would raise later, anywhere)."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
        cert.subject  # noqa: B018
        cert.extensions  # noqa: B018
    except ValueError as exc:
        raise CpsMalformed(detail={"problem": str(exc)[:300]}) from exc
    return cert


def validate_cps_certificate(
    pem: bytes,
    *,
    ca_bundle: Sequence[x509.Certificate],
    crl: x509.CertificateRevocationList | Sequence[x509.CertificateRevocationList] | None,
    now: dt.datetime,
) -> CpsIdentity:
    """The professional identified by a CPS authentication certificate, or a `CpsError`.

    `crl`: one CRL, several (one per CA), or None for no revocation check. Checks, in order: the
    certificate parses; it chains to `ca_bundle`; it is valid at `now`; it allows client
    authentication; it is not revoked; its subject carries an IdNat_PS.
    """
    if not ca_bundle:
        raise CpsUnknownIssuer(detail={"problem": "empty CA bundle"})
    cert = load_certificate(pem)
    chain = _verify_chain(cert, ca_bundle=ca_bundle, now=now)
    _check_dates(cert, now=now)
    _check_usage(cert)
    if crl is not None:
        crls = [crl] if isinstance(crl, x509.CertificateRevocationList) else list(crl)
        _check_revocation(chain, crls=crls, now=now)
    return identity_from_subject(cert)


def check_proxy_verdict(value: str | None) -> None:
    """nginx's `$ssl_client_verify` for the same certificate: `SUCCESS`, `FAILED:<reason>` or `NONE`.

    With `ssl_verify_client optional_no_ca` nginx lets every certificate through and only reports its
    verdict; ours must agree with it, so anything but SUCCESS refuses the sign-in.
    """
    if (value or "").strip() != "SUCCESS":
        raise CpsProxyRejected(detail={"proxy_verify": (value or "")[:200]})
