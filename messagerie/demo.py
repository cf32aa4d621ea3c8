"""Demo data of the messagerie (``manage.py seed_messagerie_demo``), on top of the demo directory
(``manage.py seed_demo``). Idempotent: what exists is kept, what is missing is added.

* the hosted domain(s) in the trust-space allow-list;
* a hosted personal box for ``demo-clinicien`` and for ``demo-clinicien2`` (a second physician of the
  seeded directory, account created here when missing — demo mode only), each on the hosted domain and
  recorded as the professional's address in the directory;
* an organisational box (the secretariat of demo-clinicien's structure) delegated to ``demo-clinicien``;
* a few messages between the two clinicians, sent through the real relay (local delivery): one asking
  for a read receipt, one carrying a consultation report as PDF + CDA level 1 (IHE_XDM) for a demo
  patient with a qualified identity (test INS).
"""

from __future__ import annotations

import datetime as dt
import io
import re
import unicodedata
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction

from annuaire.demo import DEFAULT_SEED, demo_password
from annuaire.models import Exercice, MailboxAddress, MailboxKind, Professional, Structure
from enrs.accounts.models import User
from enrs.accounts.roles import Role
from enrs.accounts.services import user_create
from enrs.patients import ins as ins_codes
from enrs.patients.models import EvidenceKind, IdentityStatus, InsOid, Patient
from enrs.patients.services import IdentityInput, patient_create

from .models import Delegation, Folder, Mailbox, Message, TrustedDomain
from .services import folders, mailboxes, outgoing

FIRST_CLINICIAN = "demo-clinicien"
SECOND_CLINICIAN = "demo-clinicien2"
STAFF = ("demo-gcs", "demo-admin")
# A demo patient (fictitious; INS on the demo OID with a valid key).
PATIENT_INS_BODY = "2850756123456"
SUBJECT_RECEIPT = "Demande d'avis cardiologique"
SUBJECT_REPORT = "Compte rendu de consultation"


class DemoError(Exception):
    """The messagerie demo cannot be loaded (French message for the operator)."""


@dataclass
class DemoReport:
    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    accounts: list[tuple[str, str]] = field(default_factory=list)  # (username, password) created here


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-") or "x"


def _hosted_domain() -> str:
    domains = mailboxes.hosted_domains()
    if not domains:
        raise DemoError("Aucun domaine hébergé (MSSANTE_HOSTED_DOMAINS est vide).")
    return domains[0]


def _staff() -> User:
    staff = User.objects.filter(username__in=STAFF).order_by("username").first()
    if staff is None:
        raise DemoError("Comptes de démonstration absents : lancez d'abord « manage.py seed_demo ».")
    return staff


def _professional_of(user: User) -> Professional:
    professional = Professional.objects.filter(idnat_ps=user.idnat_ps).first() if user.idnat_ps else None
    if professional is None:
        raise DemoError(f"Le compte {user.username} n'est relié à aucun professionnel de l'annuaire.")
    return professional


def _second_clinician(*, seed: int, allow_accounts: bool, report: DemoReport) -> User:
    existing = User.objects.filter(username=SECOND_CLINICIAN).first()
    if existing is not None:
        return existing
    if not allow_accounts:
        raise DemoError(
            f"Le compte {SECOND_CLINICIAN} n'existe pas et ENRS_DEMO_MODE est désactivé : relancez avec "
            "--force si cette base est bien une base de démonstration."
        )
    taken = set(User.objects.exclude(idnat_ps="").values_list("idnat_ps", flat=True))
    candidates = (
        Professional.objects.filter(
            profession_code="10", is_active=True, mailboxes__kind=MailboxKind.PERSONAL
        )
        .exclude(idnat_ps__in=taken)
        .order_by("pk")
        .distinct()
    )
    professional = candidates.first()
    if professional is None:
        raise DemoError("Aucun second médecin avec une adresse MSSanté dans l'annuaire de démonstration.")
    address = professional.mailboxes.filter(kind=MailboxKind.PERSONAL).order_by("pk").first()
    password = demo_password(seed, SECOND_CLINICIAN)
    user = user_create(
        username=SECOND_CLINICIAN,
        password=password,
        role=Role.CLINICIAN,
        first_name=professional.first_name,
        last_name=professional.last_name.title(),
        email=address.address if address else "",
        idnat_ps=professional.idnat_ps,
    )
    report.accounts.append((SECOND_CLINICIAN, password))
    report.created.append(f"compte {SECOND_CLINICIAN}")
    return user


def _directory_entry(
    *, address: str, kind: str, professional: Professional | None = None, structure: Structure | None = None
) -> MailboxAddress:
    entry, _ = MailboxAddress.objects.get_or_create(
        address=address, defaults={"kind": kind, "professional": professional, "structure": structure}
    )
    return entry


def _personal_box(user: User, actor: User, report: DemoReport) -> Mailbox:
    box = Mailbox.objects.filter(owner=user, kind=MailboxKind.PERSONAL).first()
    if box is not None:
        report.kept.append(box.address)
        return box
    professional = _professional_of(user)
    local = f"{_slug(professional.first_name)}.{_slug(professional.last_name)}"
    entry = _directory_entry(
        address=f"{local}@{_hosted_domain()}", kind=MailboxKind.PERSONAL, professional=professional
    )
    box = mailboxes.mailbox_create(kind=MailboxKind.PERSONAL, actor=actor, directory_entry=entry, owner=user)
    report.created.append(box.address)
    return box


def _org_box(owner: User, actor: User, report: DemoReport) -> Mailbox:
    exercice = (
        Exercice.objects.filter(professional=_professional_of(owner))
        .select_related("structure")
        .order_by("pk")
        .first()
    )
    if exercice is None:
        raise DemoError(f"{owner.username} n'exerce dans aucune structure de l'annuaire.")
    structure = exercice.structure
    box = Mailbox.objects.filter(structure=structure, kind=MailboxKind.ORGANIZATIONAL).first()
    if box is None:
        entry = _directory_entry(
            address=f"secretariat.{_slug(structure.name)[:40]}@{_hosted_domain()}",
            kind=MailboxKind.ORGANIZATIONAL,
            structure=structure,
        )
        box = mailboxes.mailbox_create(
            kind=MailboxKind.ORGANIZATIONAL,
            actor=actor,
            directory_entry=entry,
            display_name=f"Secrétariat médical — {structure.name}"[:255],
        )
        report.created.append(box.address)
    else:
        report.kept.append(box.address)
    if not Delegation.objects.filter(mailbox=box, user=owner, revoked_at__isnull=True).exists():
        mailboxes.delegation_grant(mailbox=box, user=owner, actor=actor)
        report.created.append(f"délégation de {box.address} à {owner.username}")
    return box


def _demo_patient(actor: User) -> Patient:
    ins = PATIENT_INS_BODY + ins_codes.mod97_key(PATIENT_INS_BODY)
    patient = Patient.objects.filter(ins=ins).first()
    if patient is not None:
        return patient
    return patient_create(
        data=IdentityInput(
            birth_family_name="LE GALL",
            birth_given_names="MARIE ANNE",
            first_given_name="MARIE",
            sex="F",
            birth_date=dt.date(1985, 7, 12),
            birth_place_insee="56260",
            ins=ins,
            ins_oid=InsOid.NIR_DEMO,
        ),
        actor=actor,
        status=IdentityStatus.QUALIFIED,
        evidence=EvidenceKind.ID_CARD,
        insi_checked=True,
    )


def demo_pdf(title: str, lines: list[str]) -> bytes:
    """A one-page PDF report (reportlab)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    page = canvas.Canvas(buffer, pagesize=A4, invariant=True)
    page.setTitle(title)
    page.setFont("Helvetica-Bold", 16)
    page.drawString(60, 780, title)
    page.setFont("Helvetica", 11)
    for number, line in enumerate(lines):
        page.drawString(60, 740 - 18 * number, line)
    page.showPage()
    page.save()
    return buffer.getvalue()


def _already_sent(box: Mailbox, subject: str) -> bool:
    return Message.objects.filter(mailbox=box, folder=Folder.SENT, subject=subject).exists()


def _messages(first: User, first_box: Mailbox, second: User, second_box: Mailbox, report: DemoReport) -> None:
    if not _already_sent(second_box, SUBJECT_RECEIPT):
        outgoing.message_send(
            mailbox=second_box,
            actor=second,
            to=[first_box.address],
            cc=[],
            subject=SUBJECT_RECEIPT,
            body="Bonjour,\n\nPourriez-vous voir Mme LE GALL en consultation de cardiologie ?\n\n"
            "Bien cordialement.",
            request_read_receipt=True,
        )
        report.created.append(f"message « {SUBJECT_RECEIPT} »")
    if not _already_sent(first_box, SUBJECT_REPORT):
        patient = _demo_patient(first)
        pdf = demo_pdf(
            SUBJECT_REPORT,
            [
                "Patiente : Marie LE GALL, née le 12/07/1985 (données fictives).",
                "Motif : avis cardiologique. Examen clinique normal. ECG sinusal.",
                "Conclusion : pas de contre-indication. Document de démonstration.",
            ],
        )
        upload = folders.attachment_upload(
            mailbox=first_box, actor=first, upload=SimpleUploadedFile("compte-rendu.pdf", pdf)
        )
        outgoing.message_send(
            mailbox=first_box,
            actor=first,
            to=[second_box.address],
            cc=[],
            subject=SUBJECT_REPORT,
            body="Bonjour,\n\nVeuillez trouver le compte rendu de consultation de votre patiente.\n",
            patient=patient,
            cda_from_pdf=upload,
            document_type_code="11488-4",
        )
        report.created.append(f"message « {SUBJECT_REPORT} » (PDF + CDA IHE_XDM)")


def messagerie_demo_seed(*, seed: int = DEFAULT_SEED, allow_accounts: bool | None = None) -> DemoReport:
    """Load (or complete) the messagerie demo. Raises `DemoError` with a French message."""
    if allow_accounts is None:
        allow_accounts = bool(settings.ENRS_DEMO_MODE)
    report = DemoReport()
    try:
        with transaction.atomic():
            actor = _staff()
            first = User.objects.filter(username=FIRST_CLINICIAN).first()
            if first is None:
                raise DemoError("Compte demo-clinicien absent : lancez d'abord « manage.py seed_demo ».")
            for domain in mailboxes.hosted_domains():
                if not TrustedDomain.objects.filter(domain=domain, is_active=True).exists():
                    mailboxes.trusted_domain_add(
                        domain=domain, operator="ENRS (domaine hébergé)", actor=actor
                    )
                    report.created.append(f"domaine {domain}")
            second = _second_clinician(seed=seed, allow_accounts=allow_accounts, report=report)
            first_box = _personal_box(first, actor, report)
            second_box = _personal_box(second, actor, report)
            _org_box(first, actor, report)
            _messages(first, first_box, second, second_box, report)
    except ValidationError as error:
        raise DemoError(" ".join(error.messages)) from error
    return report
