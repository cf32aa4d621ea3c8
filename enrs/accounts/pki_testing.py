"""A throw-away PKI with the IGC-Santé profile, for tests and the demo. Never for production.

It mirrors the real hierarchy (a root CA, an "AC IGC-SANTE ELEMENTAIRE PERSONNES"-like issuing CA, and
professional certificates whose subject is `CN=<IdNat_PS> + SURNAME=<NOM> + GIVENNAME=<PRÉNOM>,
T=<profession>, C=FR`), plus the certificates that must be refused: expired, issued by an unknown CA,
revoked (listed in the CRL), and one without the client-authentication usage. It also issues a TLS
server certificate for nginx on loopback.

Pure code: no Django import. EC P-256 keys, so that a full PKI is built in a few milliseconds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ORGANISATION = "ENRS (PKI de test)"


@dataclass(frozen=True)
class Professional:
    """Who a card is issued to: the identity carried by the certificate subject."""

    idnat_ps: str
    surname: str
    given_name: str
    title: str = "Médecin"

    @classmethod
    def parse(cls, spec: str) -> Professional:
        """`8xxxxxxxxxxx:NOM:Prénom[:Profession]` (the format of `make_test_pki --idnat`)."""
        parts = [p.strip() for p in spec.split(":")]
        if len(parts) not in (3, 4) or not all(parts):
            raise ValueError(f"{spec!r}: attendu « IDNAT:NOM:Prénom[:Profession] ».")
        return cls(*parts)


# Fixed demo identities (test range of the RPPS: 99…; one ADELI professional). The demo seed uses the
# same ones; `make_test_pki --idnat …` replaces them.
DEFAULT_PROFESSIONALS: tuple[Professional, ...] = (
    Professional("899700000011", "DURAND", "Claire", "Médecin"),
    Professional("899700000029", "MARTIN", "Paul", "Médecin"),
    Professional("899700000037", "BERNARD", "Sophie", "Pharmacien"),
    Professional("0999000017", "PETIT", "Julie", "Infirmier"),
)
# Identities of the certificates that must be refused.
EXPIRED = Professional("899700000045", "EXPIRE", "Carte", "Médecin")
UNKNOWN_CA = Professional("899700000052", "INCONNUE", "Autorite", "Médecin")
REVOKED = Professional("899700000060", "REVOQUE", "Carte", "Médecin")
NO_CLIENT_AUTH = Professional("899700000078", "SIGNATURE", "Seule", "Médecin")


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def pkcs12(self, *, name: str, password: bytes) -> bytes:
        return pkcs12.serialize_key_and_certificates(
            name.encode(),
            self.key,
            self.cert,
            None,
            serialization.BestAvailableEncryption(password),
        )

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


@dataclass(frozen=True)
class SamplePki:
    """Everything `build_test_pki` makes. `ca_bundle` is what nginx and Django trust."""

    root: Issued
    issuing: Issued
    unknown_root: Issued
    server: Issued
    crl: x509.CertificateRevocationList  # issued by `issuing`: lists `revoked`
    root_crl: x509.CertificateRevocationList  # issued by `root`: empty (nginx checks every level)
    professionals: dict[str, Issued]  # by IdNat_PS
    expired: Issued
    unknown_ca: Issued
    revoked: Issued
    no_client_auth: Issued
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def ca_bundle(self) -> list[x509.Certificate]:
        return [self.root.cert, self.issuing.cert]

    @property
    def ca_bundle_pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.ca_bundle)

    @property
    def crl_pem(self) -> bytes:
        return self.crl.public_bytes(serialization.Encoding.PEM) + self.root_crl.public_bytes(
            serialization.Encoding.PEM
        )

    def write(self, outdir: Path, *, p12_password: bytes = b"demo") -> dict[str, Path]:
        """Write every file under `outdir` and return their paths by name.

        ca-bundle.pem (root + issuing CA), crl.pem (both CRLs), server.crt/.key (nginx),
        <name>.crt/.key/.p12 per professional (name: IdNat_PS) and for the certificates to refuse
        (expired, unknown-ca, revoked, no-client-auth). The .p12 files (password `p12_password`) are
        for importing a "card" into a browser for the demo.
        """
        outdir.mkdir(parents=True, exist_ok=True)
        files: dict[str, Path] = {}

        def put(name: str, data: bytes, *, secret: bool = False) -> None:
            path = outdir / name
            path.write_bytes(data)
            path.chmod(0o600 if secret else 0o644)
            files[name] = path

        put("ca-bundle.pem", self.ca_bundle_pem)
        put("root-ca.crt", self.root.cert_pem)
        put("issuing-ca.crt", self.issuing.cert_pem)
        put("unknown-ca.crt", self.unknown_root.cert_pem)
        put("crl.pem", self.crl_pem)
        put("server.crt", self.server.cert_pem)
        put("server.key", self.server.key_pem, secret=True)
        named = {
            **self.professionals,
            "expired": self.expired,
            "unknown-ca": self.unknown_ca,
            "revoked": self.revoked,
            "no-client-auth": self.no_client_auth,
        }
        for name, issued in named.items():
            put(f"{name}.crt", issued.cert_pem)
            put(f"{name}.key", issued.key_pem, secret=True)
            put(f"{name}.p12", issued.pkcs12(name=name, password=p12_password), secret=True)
        self.files.update(files)
        return files


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def ca_name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def ps_subject(professional: Professional) -> x509.Name:
    """`CN=<IdNat_PS> + SURNAME=<NOM> + GIVENNAME=<PRÉNOM>, T=<profession>, C=FR` (RFC 4514 order,
    i.e. C first in the encoded sequence, the multi-valued RDN last)."""
    return x509.Name(
        [
            x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COUNTRY_NAME, "FR")]),
            x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.TITLE, professional.title)]),
            x509.RelativeDistinguishedName(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, professional.idnat_ps),
                    x509.NameAttribute(NameOID.SURNAME, professional.surname),
                    x509.NameAttribute(NameOID.GIVEN_NAME, professional.given_name),
                ]
            ),
        ]
    )


def _key_usage(
    *, digital_signature: bool = False, non_repudiation: bool = False, ca: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=non_repudiation,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _issue(
    subject: x509.Name,
    *,
    issuer: Issued | None,
    not_before: dt.datetime,
    not_after: dt.datetime,
    extensions: Sequence[tuple[x509.ExtensionType, bool]],
) -> Issued:
    """A certificate for a new key, signed by `issuer` (self-signed when None), with key identifiers
    and `extensions` as (value, critical) pairs."""
    key = new_key()
    signer = issuer.key if issuer is not None else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer is not None else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
        )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return Issued(builder.sign(signer, hashes.SHA256()), key)


def make_ca(common_name: str, *, now: dt.datetime, parent: Issued | None = None) -> Issued:
    """A root CA (no `parent`: self-signed, may have one level of CA below it) or an issuing CA signed
    by `parent` (issues end-entity certificates only)."""
    return _issue(
        ca_name(common_name),
        issuer=parent,
        not_before=now - dt.timedelta(days=10 * 365),
        not_after=now + dt.timedelta(days=(5 if parent else 10) * 365),
        extensions=[
            (x509.BasicConstraints(ca=True, path_length=0 if parent else 1), True),
            (_key_usage(ca=True), True),
        ],
    )


def issue_professional(
    professional: Professional,
    *,
    issuer: Issued,
    not_before: dt.datetime,
    not_after: dt.datetime,
    client_auth: bool = True,
) -> Issued:
    """An authentication certificate as on a CPS card (digitalSignature, EKU clientAuth), or, with
    `client_auth=False`, a signature-only one (nonRepudiation, EKU emailProtection)."""
    if client_auth:
        usage = (_key_usage(digital_signature=True), x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]))
    else:
        usage = (
            _key_usage(non_repudiation=True),
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]),
        )
    return _issue(
        ps_subject(professional),
        issuer=issuer,
        not_before=not_before,
        not_after=not_after,
        extensions=[
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (usage[0], True),
            (usage[1], False),
        ],
    )


def issue_server(
    *, issuer: Issued, now: dt.datetime, dns_names: Sequence[str], ip_addresses: Sequence[str]
) -> Issued:
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    names += [x509.IPAddress(ip_address(a)) for a in ip_addresses]
    return _issue(
        ca_name(dns_names[0] if dns_names else "localhost"),
        issuer=issuer,
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=365),
        extensions=[
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (_key_usage(digital_signature=True), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
            (x509.SubjectAlternativeName(names), False),
        ],
    )


def org_subject(*, common_name: str, idnat_struct: str, organisation: str, department: str) -> x509.Name:
    """`CN=<application>, OU=<IdNat_Struct>, O=<raison sociale>, ST=<département>, C=FR` (an IGC-Santé
    organisation "ORG" certificate, as used by MSSanté operators and to sign the DMP VIHF token)."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, department),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, idnat_struct),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def issue_organisation(
    *,
    issuer: Issued,
    now: dt.datetime,
    common_name: str,
    idnat_struct: str,
    organisation: str,
    department: str = "35",
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    valid_days: int = 365,
) -> Issued:
    """An organisation (ORG) certificate usable as TLS client and server (mutual TLS between MSSanté
    operators, HTTPS to the DMP) and to sign (digitalSignature + nonRepudiation: the VIHF "cachet")."""
    extensions: list[tuple[x509.ExtensionType, bool]] = [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (_key_usage(digital_signature=True, non_repudiation=True), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]), False),
    ]
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    names += [x509.IPAddress(ip_address(a)) for a in ip_addresses]
    if names:
        extensions.append((x509.SubjectAlternativeName(names), False))
    return _issue(
        org_subject(
            common_name=common_name,
            idnat_struct=idnat_struct,
            organisation=organisation,
            department=department,
        ),
        issuer=issuer,
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=valid_days),
        extensions=extensions,
    )


def make_crl(
    *,
    issuer: Issued,
    revoked: Sequence[x509.Certificate] = (),
    now: dt.datetime,
    next_update: dt.timedelta = dt.timedelta(days=7),
) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(now - dt.timedelta(minutes=5))
        .next_update(now + next_update)
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
        )
    )
    for cert in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(now - dt.timedelta(minutes=5))
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
            .build()
        )
    return builder.sign(issuer.key, hashes.SHA256())


def build_test_pki(
    *,
    professionals: Sequence[Professional] = DEFAULT_PROFESSIONALS,
    now: dt.datetime | None = None,
    server_dns_names: Sequence[str] = ("localhost",),
    server_ip_addresses: Sequence[str] = ("127.0.0.1", "::1"),
) -> SamplePki:
    now = now or dt.datetime.now(dt.UTC)
    # A little in the past, so that a clock a few seconds behind still sees valid certificates.
    start = now - dt.timedelta(hours=1)
    root = make_ca("TEST ENRS - AC RACINE IGC-SANTE ELEMENTAIRE", now=now)
    issuing = make_ca("TEST ENRS - AC IGC-SANTE ELEMENTAIRE PERSONNES", parent=root, now=now)
    unknown_root = make_ca("AC INCONNUE - HORS IGC-SANTE", now=now)
    end = now + dt.timedelta(days=3 * 365)
    by_idnat = {
        p.idnat_ps: issue_professional(p, issuer=issuing, not_before=start, not_after=end)
        for p in professionals
    }
    expired = issue_professional(
        EXPIRED,
        issuer=issuing,
        not_before=now - dt.timedelta(days=3 * 365),
        not_after=now - dt.timedelta(days=2),
    )
    unknown_ca = issue_professional(UNKNOWN_CA, issuer=unknown_root, not_before=start, not_after=end)
    revoked = issue_professional(REVOKED, issuer=issuing, not_before=start, not_after=end)
    no_client_auth = issue_professional(
        NO_CLIENT_AUTH, issuer=issuing, client_auth=False, not_before=start, not_after=end
    )
    server = issue_server(issuer=root, now=now, dns_names=server_dns_names, ip_addresses=server_ip_addresses)
    return SamplePki(
        root=root,
        issuing=issuing,
        unknown_root=unknown_root,
        server=server,
        crl=make_crl(issuer=issuing, revoked=[revoked.cert], now=now),
        root_crl=make_crl(issuer=root, now=now),
        professionals=by_idnat,
        expired=expired,
        unknown_ca=unknown_ca,
        revoked=revoked,
        no_client_auth=no_client_auth,
    )
