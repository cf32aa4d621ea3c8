"""GCS members (adhérents): onboarding, edits, the membership lifecycle, fees, representatives, services.

The lifecycle is a state machine, one service per transition; any other move raises `ValidationError`::

    candidate ──admit──▶ member ──resign──▶ resigned
                                └─exclude─▶ excluded

Every service is atomic and audited (``annuaire.adherent.<verb>``, target = the adherent): the audit row
is written last, in the same transaction as the business write, with the before/after of the fields that
changed in ``detail["changes"]``. A call that changes nothing writes nothing, not even an audit row.

Bad input raises `ValidationError` with French messages, keyed by the name of the argument at fault
(``finess_et``, ``mailbox_local_part``, ``reason``…) so that a form shows them next to its field.

Signed conventions are PDF files, checked (extension, size, ``%PDF-`` header) and stored through the
model's storage (Django's default storage: local files or S3), under a name chosen here, never the
uploaded one. A file stored by a call that then fails is deleted again; a replaced convention is kept
(it is a signed document), its name stays in the audit trail.
"""

import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.files import File
from django.core.files.storage import Storage
from django.db import IntegrityError, transaction
from django.db.models import Model
from django.http import HttpRequest
from django.utils import timezone

from annuaire.models import (
    ACTIVE_ADHERENT_STATUSES,
    Adherent,
    AdherentFee,
    AdherentRepresentative,
    AdherentService,
    AdherentStatus,
    College,
    Commune,
    EnrsService,
    FeeStatus,
    GoverningBody,
    MailboxAddress,
    MailboxKind,
    Professional,
    RepresentativeRole,
    Structure,
    StructureKind,
    validate_finess,
    validate_siret,
)
from enrs.audit.services import audit_record

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser

    from enrs.accounts.models import User

    # Who acts: the signed-in user (request.user); None for the system (imports, commands).
    Actor = User | AnonymousUser | None

AUDIT_ACTION_PREFIX = "annuaire.adherent"
ENDED_STATUSES = frozenset({AdherentStatus.RESIGNED, AdherentStatus.EXCLUDED})
# Collèges open to a professional joining in their own name (liberal practice).
LIBERAL_COLLEGES = frozenset({College.LIBERAL_PHYSICIANS, College.OTHER_LIBERAL_PROFESSIONALS})
PHYSICIAN_PROFESSION_CODE = "10"  # TRE_G15 "Médecin"
PDF_SIGNATURE = b"%PDF-"
# Local part of an organisational MSSanté address: lower-case ASCII words joined by ".", "-" or "_".
MAILBOX_LOCAL_PART_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
MAILBOX_LOCAL_PART_MAX = 64
MSSANTE_DOMAIN_SUFFIX = ".mssante.fr"
PATIENT_MSSANTE_DOMAIN = "patient.mssante.fr"

# The fields whose before/after the audit trail keeps, for each kind of object.
ADHERENT_AUDITED_FIELDS = (
    "college",
    "status",
    "membership_start",
    "membership_end",
    "convention_signed_on",
    "convention_document",
    "status_reason",
)
ADHERENT_UPDATABLE_FIELDS = ("college", "convention_signed_on", "membership_start", "membership_end")
FEE_AUDITED_FIELDS = ("year", "amount", "status", "paid_on")
REPRESENTATIVE_AUDITED_FIELDS = ("last_name", "first_name", "email", "function", "professional_id")


# --- The state machine ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transition:
    name: str
    label: str  # what the button says
    sources: frozenset[str]
    target: str
    refusal: str  # why it is refused from another status (French, with %(status)s)


TRANSITIONS: dict[str, Transition] = {
    "admit": Transition(
        "admit",
        "Admettre comme membre",
        frozenset({AdherentStatus.CANDIDATE}),
        AdherentStatus.MEMBER,
        "Seul un candidat peut être admis : cet adhérent est au statut « %(status)s ».",
    ),
    "resign": Transition(
        "resign",
        "Enregistrer la démission",
        frozenset({AdherentStatus.MEMBER}),
        AdherentStatus.RESIGNED,
        "Seul un membre peut démissionner : cet adhérent est au statut « %(status)s ».",
    ),
    "exclude": Transition(
        "exclude",
        "Exclure",
        frozenset({AdherentStatus.MEMBER}),
        AdherentStatus.EXCLUDED,
        "Seul un membre peut être exclu : cet adhérent est au statut « %(status)s ».",
    ),
}


def adherent_transitions(adherent: Adherent) -> list[Transition]:
    """The transitions open to `adherent` in its current status (what its page offers)."""
    return [t for t in TRANSITIONS.values() if adherent.status in t.sources]


def _transition_check(adherent: Adherent, name: str) -> Transition:
    transition = TRANSITIONS[name]
    if adherent.status not in transition.sources:
        raise ValidationError(
            transition.refusal,
            code="invalid_transition",
            params={"status": adherent.get_status_display()},
        )
    return transition


# --- Small helpers -------------------------------------------------------------------------------------


class _Errors:
    """Errors collected field by field, raised together (a form then shows them all at once)."""

    def __init__(self) -> None:
        self.by_field: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        self.by_field.setdefault(field, []).append(message)

    def extend(self, field: str, error: ValidationError) -> None:
        for message in error.messages:
            self.add(field, message)

    def raise_if_any(self) -> None:
        if self.by_field:
            raise ValidationError(self.by_field)


def _fail(field: str, message: str, code: str = "invalid") -> ValidationError:
    return ValidationError({field: ValidationError(message, code=code)})


def _compact(value: str | None) -> str:
    """An identifier as typed, without spaces, upper-case (2A/2B FINESS)."""
    return "".join((value or "").split()).upper()


def _plain(value: Any) -> Any:
    """A field value as the audit trail stores it (files by name, numbers as text)."""
    if hasattr(value, "name") and hasattr(value, "storage"):  # FieldFile
        return value.name or ""
    if isinstance(value, Decimal):
        return str(value)
    return value


def _snapshot(instance: Model | None, fields: Iterable[str]) -> dict[str, Any]:
    if instance is None:
        return {}
    return {name: _plain(getattr(instance, name)) for name in fields}


def _same(a: Any, b: Any) -> bool:
    """Equal values, an empty text counting as no value (a new object's blank fields did not change)."""
    return a == b or (a in (None, "") and b in (None, ""))


def _changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """{field: {"before": …, "after": …}} for the fields whose value changed."""
    return {
        name: {"before": before.get(name), "after": value}
        for name, value in after.items()
        if not _same(before.get(name), value)
    }


def _lock(adherent: Adherent) -> None:
    """Lock the adherent's row until the end of the transaction and reload it: concurrent transitions of
    the same member wait for each other and then see the status the first one left."""
    Adherent.objects.select_for_update().filter(pk=adherent.pk).values_list("pk", flat=True).get()
    adherent.refresh_from_db()


def _audit(
    verb: str,
    *,
    adherent: Adherent,
    actor: "Actor",
    request: HttpRequest | None,
    detail: dict[str, Any],
) -> None:
    audit_record(
        action=f"{AUDIT_ACTION_PREFIX}.{verb}", request=request, actor=actor, target=adherent, detail=detail
    )


def _not_in_future(errors: _Errors, field: str, value: date | None, what: str) -> None:
    if value is not None and value > timezone.localdate():
        errors.add(field, f"{what} ne peut pas être dans le futur.")


# --- Convention documents ----------------------------------------------------------------------------


def convention_max_size_text() -> str:
    """The size limit of a convention file, as French users write it (« 10 Mo », « 512 Ko »)."""
    max_bytes: int = settings.ENRS_MEMBER_CONVENTION_MAX_BYTES
    if max_bytes >= 1024 * 1024:
        value, unit = max_bytes / (1024 * 1024), "Mo"
    else:
        value, unit = max_bytes / 1024, "Ko"
    return f"{round(value, 1):g}".replace(".", ",") + f"\N{NO-BREAK SPACE}{unit}"


def convention_document_check(document: File) -> None:
    """Refuse anything but a non-empty PDF under the size limit. The content is sniffed: a PDF starts with
    ``%PDF-``, whatever the name or the content type the browser announced."""
    max_bytes: int = settings.ENRS_MEMBER_CONVENTION_MAX_BYTES
    field = "convention_document"
    name = (document.name or "").rsplit("/", 1)[-1]
    if not name.lower().endswith(".pdf"):
        raise _fail(field, "La convention doit être un fichier PDF (extension .pdf).", "not_pdf")
    size = document.size
    if not size:
        raise _fail(field, "Le fichier de la convention est vide.", "empty")
    if size > max_bytes:
        raise _fail(
            field,
            f"Le fichier dépasse la taille maximale autorisée ({convention_max_size_text()}).",
            "too_large",
        )
    document.seek(0)
    head = document.read(len(PDF_SIGNATURE))
    document.seek(0)
    if head != PDF_SIGNATURE:
        raise _fail(
            field,
            "Le contenu du fichier n'est pas celui d'un PDF : enregistrez la convention au format PDF.",
            "not_pdf",
        )


@contextmanager
def _stored_files() -> Iterator[list[tuple[Storage, str]]]:
    """Files stored inside the block are deleted again if the block fails (storage is not transactional)."""
    stored: list[tuple[Storage, str]] = []
    try:
        yield stored
    except BaseException:
        for storage, name in stored:
            storage.delete(name)
        raise


def _convention_store(adherent: Adherent, document: File, stored: list[tuple[Storage, str]]) -> str:
    """Store `document` as the adherent's convention, under a name of ours; returns the storage name."""
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    field_file = adherent.convention_document
    field_file.save(f"convention-adherent-{adherent.pk}-{stamp}.pdf", document, save=False)
    stored.append((field_file.storage, field_file.name or ""))
    return field_file.name or ""


# --- Checks shared by several services ----------------------------------------------------------------


def _college_check(
    errors: _Errors, college: Any, *, professional: Professional | None = None
) -> College | None:
    try:
        value = College(int(college))
    except (TypeError, ValueError):
        errors.add("college", "Collège inconnu : choisissez un collège de 1 à 8.")
        return None
    if professional is not None:
        if value not in LIBERAL_COLLEGES:
            errors.add(
                "college",
                "Un professionnel adhère en son nom dans le collège 4 (médecins libéraux) ou 5 "
                "(autres professionnels libéraux) ; les autres collèges réunissent des structures.",
            )
        elif (
            value == College.LIBERAL_PHYSICIANS and professional.profession_code != PHYSICIAN_PROFESSION_CODE
        ):
            errors.add(
                "college",
                "Le collège 4 réunit les médecins libéraux : ce professionnel n'est pas médecin "
                "(collège 5, autres professionnels libéraux).",
            )
        elif (
            value == College.OTHER_LIBERAL_PROFESSIONALS
            and professional.profession_code == PHYSICIAN_PROFESSION_CODE
        ):
            errors.add("college", "Un médecin libéral adhère dans le collège 4 (médecins libéraux).")
    return value


def _services_check(errors: _Errors, services: Iterable[str]) -> list[str]:
    """The services asked for, in the order of `EnrsService`, without duplicates."""
    asked = {str(s) for s in services}
    unknown = sorted(asked - set(EnrsService.values))
    if unknown:
        errors.add("services", f"Service inconnu : {', '.join(unknown)}.")
    return [value for value in EnrsService.values if value in asked]


def _no_ongoing_membership(*, structure: Structure | None, professional: Professional | None) -> None:
    members = Adherent.objects.filter(status__in=ACTIVE_ADHERENT_STATUSES)
    if structure is not None:
        existing = members.filter(structure=structure).first()
        who = f"La structure « {structure.name} »"
    else:
        existing = members.filter(professional=professional).first()
        who = f"{professional.first_name} {professional.last_name}".strip() if professional else ""
    if existing is not None:
        raise _fail(
            NON_FIELD_ERRORS,
            f"{who} a déjà une adhésion en cours au GCS (adhérent n° {existing.pk}, "
            f"statut « {existing.get_status_display()} »).",
            "already_member",
        )


def _dates_check(errors: _Errors, adherent: Adherent) -> None:
    """Membership dates that agree with the status (the status itself only moves by transitions)."""
    start, end, status = adherent.membership_start, adherent.membership_end, adherent.status
    if status == AdherentStatus.CANDIDATE:
        if start is not None:
            errors.add(
                "membership_start",
                "Un candidat n'a pas encore de date d'adhésion : elle est fixée à son admission.",
            )
        if end is not None:
            errors.add("membership_end", "Un candidat n'a pas de date de fin d'adhésion.")
        return
    if start is None:
        errors.add("membership_start", "La date de début d'adhésion est obligatoire pour un membre.")
    if status == AdherentStatus.MEMBER and end is not None:
        errors.add(
            "membership_end",
            "Un membre en cours n'a pas de date de fin : enregistrez sa démission ou son exclusion.",
        )
    if status in ENDED_STATUSES and end is None:
        errors.add(
            "membership_end",
            "La date de fin d'adhésion est obligatoire après une démission ou une exclusion.",
        )
    if start is not None and end is not None and end < start:
        errors.add("membership_end", "La fin d'adhésion ne peut pas précéder son début.")


# --- Onboarding: directory structure and organisational MSSanté address ------------------------------


@dataclass(frozen=True, slots=True)
class StructureData:
    """A structure as the onboarding form describes it: found in the directory by its identifiers
    (FINESS ET, else FINESS EJ, else SIRET), or created there when it is not yet in it."""

    name: str = ""
    finess_et: str = ""
    finess_ej: str = ""
    siret: str = ""
    commune_insee_code: str = ""
    address_line: str = ""


def _structure_data_check(errors: _Errors, data: StructureData) -> StructureData:
    """Identifiers normalised and their keys checked (French messages of the directory's validators)."""
    normalised = StructureData(
        name=" ".join(data.name.split()),
        finess_et=_compact(data.finess_et),
        finess_ej=_compact(data.finess_ej),
        siret=_compact(data.siret),
        commune_insee_code=_compact(data.commune_insee_code),
        address_line=" ".join(data.address_line.split()),
    )
    checks = (
        ("finess_et", validate_finess),
        ("finess_ej", validate_finess),
        ("siret", validate_siret),
    )
    for field, validator in checks:
        value = getattr(normalised, field)
        if value:
            try:
                validator(value)
            except ValidationError as error:
                errors.extend(field, error)
    if not (normalised.finess_et or normalised.finess_ej or normalised.siret):
        errors.add(
            NON_FIELD_ERRORS,
            "Indiquez au moins un identifiant de la structure : FINESS géographique, FINESS juridique "
            "ou SIRET.",
        )
    return normalised


def _structure_find_or_create(data: StructureData) -> tuple[Structure, bool]:
    """The directory structure with these identifiers, or a new one; True when it was created."""
    if data.finess_et:
        found = Structure.objects.filter(finess_et=data.finess_et).first()
    elif data.finess_ej:
        found = Structure.objects.filter(kind=StructureKind.LEGAL_ENTITY, finess_ej=data.finess_ej).first()
    else:
        matches = list(Structure.objects.filter(siret=data.siret).order_by("pk")[:2])
        if len(matches) > 1:
            raise _fail(
                "siret",
                "Plusieurs structures de l'annuaire ont ce SIRET : indiquez le numéro FINESS de la bonne.",
            )
        found = matches[0] if matches else None
    if found is not None:
        return found, False

    errors = _Errors()
    if not data.name:
        errors.add(
            "name", "Indiquez la raison sociale de la structure, qui n'est pas encore dans l'annuaire."
        )
    commune = None
    if data.commune_insee_code:
        commune = Commune.objects.filter(insee_code=data.commune_insee_code).first()
        if commune is None:
            errors.add(
                "commune_insee_code", f"Aucune commune n'a le code INSEE « {data.commune_insee_code} »."
            )
    errors.raise_if_any()
    kind = StructureKind.LEGAL_ENTITY if data.finess_ej and not data.finess_et else StructureKind.SITE
    legal_entity = None
    if kind == StructureKind.SITE and data.finess_ej:
        legal_entity = Structure.objects.filter(
            kind=StructureKind.LEGAL_ENTITY, finess_ej=data.finess_ej
        ).first()
    structure = Structure(
        kind=kind,
        finess_et=data.finess_et or None,
        finess_ej=data.finess_ej,
        legal_entity=legal_entity,
        siren=data.siret[:9],
        siret=data.siret,
        name=data.name,
        commune=commune,
        postal_code=commune.postal_code if commune else "",
        address_line=data.address_line,
    )
    try:
        structure.full_clean()
    except ValidationError as error:
        # The SIREN is derived from the SIRET: its errors belong to the SIRET field.
        messages = error.message_dict
        if "siren" in messages:
            messages.setdefault("siret", []).extend(messages.pop("siren"))
        raise ValidationError(messages) from error
    structure.save()
    return structure, True


def _mailbox_owner(mailbox: MailboxAddress) -> str:
    if mailbox.professional_id is not None:
        return "un professionnel de santé (adresse personnelle)"
    if mailbox.structure is not None:
        return f"la structure « {mailbox.structure.name} » ({mailbox.get_kind_display().lower()})"
    return "une autre boîte"


def _mailbox_address_check(errors: _Errors, *, local_part: str, address: str) -> tuple[str, str]:
    """(the address to give the structure, the argument it comes from), or ("", "") when none given."""
    local_part = local_part.strip().lower()
    address = address.strip().lower()
    if local_part and address:
        errors.add(
            "mailbox_address",
            "Donnez soit la partie locale d'une nouvelle adresse, soit une adresse existante, pas les deux.",
        )
        return "", ""
    if local_part:
        if len(local_part) > MAILBOX_LOCAL_PART_MAX or not MAILBOX_LOCAL_PART_RE.match(local_part):
            errors.add(
                "mailbox_local_part",
                "Partie locale invalide : lettres minuscules sans accent, chiffres, séparés par des points, "
                "tirets ou soulignés (64 caractères au plus), par exemple « secretariat.cardiologie ».",
            )
            return "", ""
        return f"{local_part}@{settings.ENRS_MSSANTE_DOMAIN}", "mailbox_local_part"
    if address:
        domain = address.rpartition("@")[2]
        if (
            "@" not in address
            or not domain.endswith(MSSANTE_DOMAIN_SUFFIX)
            or domain == PATIENT_MSSANTE_DOMAIN
        ):
            errors.add(
                "mailbox_address",
                "Une adresse MSSanté de structure se termine par « .mssante.fr » (espace de confiance "
                "MSSanté) ; les adresses de patients (@patient.mssante.fr) ne conviennent pas.",
            )
            return "", ""
        return address, "mailbox_address"
    return "", ""


def _org_mailbox_link(structure: Structure, *, address: str, field: str) -> tuple[MailboxAddress, bool]:
    """The structure's organisational address `address` (created when new), or its existing one when no
    address is given; True when it was created."""
    if not address:
        existing = (
            MailboxAddress.objects.filter(structure=structure, kind=MailboxKind.ORGANIZATIONAL)
            .order_by("pk")
            .first()
        )
        if existing is not None:
            return existing, False
        raise _fail(
            "mailbox_local_part",
            "Cette structure n'a pas encore d'adresse MSSanté organisationnelle : indiquez la partie locale "
            f"de l'adresse à créer sur {settings.ENRS_MSSANTE_DOMAIN}.",
            "required",
        )
    found = MailboxAddress.objects.select_related("structure").filter(address__iexact=address).first()
    if found is not None:
        if found.kind == MailboxKind.ORGANIZATIONAL and found.structure_id == structure.pk:
            return found, False
        raise _fail(field, f"L'adresse {address} appartient déjà à {_mailbox_owner(found)}.", "taken")
    mailbox = MailboxAddress(address=address, kind=MailboxKind.ORGANIZATIONAL, structure=structure)
    try:
        mailbox.full_clean()
    except ValidationError as error:
        raise ValidationError({field: error.messages}) from error
    mailbox.save()
    return mailbox, True


def adherent_onboard(
    *,
    actor: "Actor",
    college: int,
    structure: Structure | None = None,
    structure_data: StructureData | None = None,
    professional: Professional | None = None,
    mailbox_local_part: str = "",
    mailbox_address: str = "",
    services: Iterable[str] = (),
    convention_signed_on: date | None = None,
    convention_document: File | None = None,
    request: HttpRequest | None = None,
) -> Adherent:
    """Register a candidate: a structure (given, or found / created in the directory from
    `structure_data`) with its organisational MSSanté address, or a liberal professional of the
    directory. The new adherent starts as a candidate; `adherent_admit` makes it a member."""
    if sum(x is not None for x in (structure, structure_data, professional)) != 1:
        raise ValidationError(
            "Un adhérent est soit une structure, soit un professionnel de santé : indiquez l'un des deux.",
            code="member_required",
        )
    errors = _Errors()
    data = _structure_data_check(errors, structure_data) if structure_data is not None else None
    college_value = _college_check(errors, college, professional=professional)
    service_values = _services_check(errors, services)
    _not_in_future(
        errors, "convention_signed_on", convention_signed_on, "La date de signature de la convention"
    )
    address, address_field = "", ""
    if professional is not None:
        if mailbox_local_part.strip() or mailbox_address.strip():
            errors.add(
                "mailbox_local_part",
                "Une adresse organisationnelle appartient à une structure : un professionnel adhérent "
                "garde son adresse MSSanté personnelle.",
            )
        if not professional.is_active:
            errors.add("professional", "Ce professionnel n'est plus en activité selon l'annuaire.")
    else:
        address, address_field = _mailbox_address_check(
            errors, local_part=mailbox_local_part, address=mailbox_address
        )
    if convention_document is not None:
        try:
            convention_document_check(convention_document)
        except ValidationError as error:
            errors.extend("convention_document", error)
    errors.raise_if_any()
    assert college_value is not None

    with _stored_files() as stored, transaction.atomic():
        structure_created = False
        mailbox: MailboxAddress | None = None
        mailbox_created = False
        if data is not None:
            structure, structure_created = _structure_find_or_create(data)
        if structure is not None:
            if not structure.is_active:
                raise _fail(
                    NON_FIELD_ERRORS,
                    f"La structure « {structure.name} » est fermée selon l'annuaire : "
                    "elle ne peut pas adhérer.",
                )
            _no_ongoing_membership(structure=structure, professional=None)
            mailbox, mailbox_created = _org_mailbox_link(structure, address=address, field=address_field)
        else:
            _no_ongoing_membership(structure=None, professional=professional)

        adherent = Adherent(
            structure=structure,
            professional=professional,
            college=college_value,
            status=AdherentStatus.CANDIDATE,
            convention_signed_on=convention_signed_on,
            status_changed_at=timezone.now(),
        )
        adherent.full_clean(validate_constraints=False)
        try:
            with transaction.atomic():  # a concurrent onboarding of the same member loses here
                adherent.save()
        except IntegrityError as error:
            raise _fail(
                NON_FIELD_ERRORS,
                "Ce membre vient d'être inscrit par ailleurs : rechargez la liste.",
                "conflict",
            ) from error
        if convention_document is not None:
            _convention_store(adherent, convention_document, stored)
            adherent.save(update_fields=["convention_document"])
        today = timezone.localdate()
        AdherentService.objects.bulk_create(
            AdherentService(adherent=adherent, service=value, since=today) for value in service_values
        )
        member: dict[str, Any]
        if structure is not None:
            member = {
                "type": "structure",
                "id": structure.pk,
                "name": structure.name,
                "finess_et": structure.finess_et or "",
                "finess_ej": structure.finess_ej,
                "siret": structure.siret,
                "created": structure_created,
            }
        else:
            assert professional is not None
            member = {"type": "professional", "id": professional.pk, "idnat_ps": professional.idnat_ps}
        detail: dict[str, Any] = {
            "member": member,
            "changes": _changes({}, _snapshot(adherent, ADHERENT_AUDITED_FIELDS)),
            "services": service_values,
        }
        if mailbox is not None:
            detail["mailbox"] = {"id": mailbox.pk, "address": mailbox.address, "created": mailbox_created}
        _audit("onboard", adherent=adherent, actor=actor, request=request, detail=detail)
    return adherent


# --- Edits and transitions -----------------------------------------------------------------------------


def adherent_update(
    *,
    adherent: Adherent,
    actor: "Actor",
    data: Mapping[str, Any],
    convention_document: File | None = None,
    request: HttpRequest | None = None,
) -> Adherent:
    """Change the collège, the convention (date, signed PDF) or correct the membership dates. The status
    is not edited here: it moves only by `adherent_admit`, `adherent_resign` and `adherent_exclude`."""
    unknown = sorted(set(data) - set(ADHERENT_UPDATABLE_FIELDS))
    if unknown:
        raise ValidationError(
            "Ces champs ne se modifient pas ici : %(fields)s. Le statut change par l'admission, la démission "
            "ou l'exclusion.",
            code="not_updatable",
            params={"fields": ", ".join(unknown)},
        )
    errors = _Errors()
    if convention_document is not None:
        try:
            convention_document_check(convention_document)
        except ValidationError as error:
            errors.extend("convention_document", error)
    _not_in_future(
        errors,
        "convention_signed_on",
        data.get("convention_signed_on"),
        "La date de signature de la convention",
    )
    errors.raise_if_any()

    with _stored_files() as stored, transaction.atomic():
        _lock(adherent)
        before = _snapshot(adherent, ADHERENT_AUDITED_FIELDS)
        if "college" in data:
            value = _college_check(errors, data["college"], professional=adherent.professional)
            if value is not None:
                adherent.college = value
        for name in ("convention_signed_on", "membership_start", "membership_end"):
            if name in data:
                setattr(adherent, name, data[name])
        if (
            "convention_signed_on" in data
            and data["convention_signed_on"] is None
            and before["convention_signed_on"] is not None
            and adherent.status != AdherentStatus.CANDIDATE
        ):
            errors.add(
                "convention_signed_on", "Un membre a signé la convention : sa date ne peut pas être effacée."
            )
        _dates_check(errors, adherent)
        errors.raise_if_any()
        if convention_document is not None:
            _convention_store(adherent, convention_document, stored)
        changes = _changes(before, _snapshot(adherent, ADHERENT_AUDITED_FIELDS))
        if not changes:
            return adherent
        adherent.full_clean(validate_constraints=False)
        adherent.save()
        _audit("update", adherent=adherent, actor=actor, request=request, detail={"changes": changes})
    return adherent


def adherent_admit(
    *,
    adherent: Adherent,
    actor: "Actor",
    membership_start: date | None = None,
    reason: str = "",
    request: HttpRequest | None = None,
) -> Adherent:
    """candidate → member, from `membership_start` (today by default). The convention must be signed."""
    with transaction.atomic():
        _lock(adherent)
        _transition_check(adherent, "admit")
        start = membership_start or timezone.localdate()
        signed_on = adherent.convention_signed_on
        if signed_on is None:
            raise _fail(
                NON_FIELD_ERRORS,
                "La convention n'est pas signée : enregistrez sa date de signature (page « Modifier ») avant "
                "d'admettre ce candidat.",
                "convention_unsigned",
            )
        if start < signed_on:
            raise _fail(
                "membership_start",
                "L'adhésion ne peut pas commencer avant la signature de la convention "
                f"(le {signed_on:%d/%m/%Y}).",
            )
        before = _snapshot(adherent, ADHERENT_AUDITED_FIELDS)
        adherent.status = AdherentStatus.MEMBER
        adherent.membership_start = start
        adherent.membership_end = None
        adherent.status_reason = reason.strip()
        adherent.status_changed_at = timezone.now()
        adherent.save()
        changes = _changes(before, _snapshot(adherent, ADHERENT_AUDITED_FIELDS))
        _audit("admit", adherent=adherent, actor=actor, request=request, detail={"changes": changes})
    return adherent


def _end_membership(
    name: str,
    *,
    adherent: Adherent,
    actor: "Actor",
    membership_end: date | None,
    reason: str,
    request: HttpRequest | None,
) -> Adherent:
    with transaction.atomic():
        _lock(adherent)
        transition = _transition_check(adherent, name)
        end = membership_end or timezone.localdate()
        start = adherent.membership_start
        if start is not None and end < start:
            raise _fail(
                "membership_end", f"La fin d'adhésion ne peut pas précéder son début (le {start:%d/%m/%Y})."
            )
        before = _snapshot(adherent, ADHERENT_AUDITED_FIELDS)
        adherent.status = transition.target
        adherent.membership_end = end
        adherent.status_reason = reason.strip()
        adherent.status_changed_at = timezone.now()
        adherent.save()
        changes = _changes(before, _snapshot(adherent, ADHERENT_AUDITED_FIELDS))
        _audit(name, adherent=adherent, actor=actor, request=request, detail={"changes": changes})
    return adherent


def adherent_resign(
    *,
    adherent: Adherent,
    actor: "Actor",
    membership_end: date | None = None,
    reason: str = "",
    request: HttpRequest | None = None,
) -> Adherent:
    """member → resigned, the membership ending on `membership_end` (today by default)."""
    return _end_membership(
        "resign",
        adherent=adherent,
        actor=actor,
        membership_end=membership_end,
        reason=reason,
        request=request,
    )


def adherent_exclude(
    *,
    adherent: Adherent,
    actor: "Actor",
    reason: str,
    membership_end: date | None = None,
    request: HttpRequest | None = None,
) -> Adherent:
    """member → excluded; the reason (decision of the general assembly…) is required."""
    if not reason.strip():
        raise _fail("reason", "Le motif de l'exclusion est obligatoire.", "required")
    return _end_membership(
        "exclude",
        adherent=adherent,
        actor=actor,
        membership_end=membership_end,
        reason=reason,
        request=request,
    )


# --- Fees ---------------------------------------------------------------------------------------------


def adherent_fee_record(
    *,
    adherent: Adherent,
    actor: "Actor",
    year: int,
    amount: Decimal | int | str,
    status: str = FeeStatus.DUE,
    request: HttpRequest | None = None,
) -> AdherentFee:
    """Call (or correct) the fee of `year`: due, late or waived. A paid fee no longer changes; payment is
    `adherent_fee_mark_paid`. Fees run from the year of admission to the year the membership ended."""
    errors = _Errors()
    if status == FeeStatus.PAID:
        errors.add("status", "Un paiement s'enregistre avec « Marquer comme payée », qui en demande la date.")
    elif status not in FeeStatus.values:
        errors.add("status", "Statut de cotisation inconnu.")
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        errors.add("amount", "Montant invalide.")
    else:
        if not value.is_finite():
            errors.add("amount", "Montant invalide.")
        elif value < 0:
            errors.add("amount", "Le montant ne peut pas être négatif.")
        elif value != value.quantize(Decimal("0.01")):
            errors.add("amount", "Le montant a deux décimales au plus (centimes).")
        elif value >= Decimal("1e8"):
            errors.add("amount", "Montant trop élevé.")
        else:
            value = value.quantize(Decimal("0.01"))
    if not isinstance(year, int) or not 2000 <= year <= 2100:
        errors.add("year", "Année invalide : entre 2000 et 2100.")
    errors.raise_if_any()

    with transaction.atomic():
        _lock(adherent)
        if adherent.status == AdherentStatus.CANDIDATE:
            raise _fail(
                NON_FIELD_ERRORS, "Un candidat ne cotise pas : la cotisation est appelée après son admission."
            )
        start, end = adherent.membership_start, adherent.membership_end
        if start is not None and year < start.year:
            raise _fail("year", f"L'adhésion a commencé en {start.year} : pas de cotisation pour {year}.")
        if end is not None and year > end.year:
            raise _fail("year", f"L'adhésion a pris fin en {end.year} : pas de cotisation pour {year}.")
        fee = AdherentFee.objects.select_for_update().filter(adherent=adherent, year=year).first()
        created = fee is None
        if fee is None:
            fee = AdherentFee(adherent=adherent, year=year)
        elif fee.status == FeeStatus.PAID:
            raise _fail("year", f"La cotisation {year} est déjà payée : elle ne se modifie plus.", "paid")
        before = {} if created else _snapshot(fee, FEE_AUDITED_FIELDS)
        fee.amount = value
        fee.status = status
        fee.paid_on = None
        fee.full_clean(validate_constraints=False)
        changes = _changes(before, _snapshot(fee, FEE_AUDITED_FIELDS))
        if not changes:
            return fee
        fee.save()
        detail = {
            "fee_id": fee.pk,
            "year": year,
            "operation": "create" if created else "update",
            "changes": changes,
        }
        _audit("fee", adherent=adherent, actor=actor, request=request, detail=detail)
    return fee


def adherent_fee_mark_paid(
    *,
    fee: AdherentFee,
    actor: "Actor",
    paid_on: date | None = None,
    request: HttpRequest | None = None,
) -> AdherentFee:
    """due / late → paid on `paid_on` (today by default)."""
    with transaction.atomic():
        AdherentFee.objects.select_for_update().filter(pk=fee.pk).values_list("pk", flat=True).get()
        fee.refresh_from_db()
        if fee.status == FeeStatus.PAID:
            assert fee.paid_on is not None
            raise _fail(
                NON_FIELD_ERRORS,
                f"La cotisation {fee.year} est déjà payée (le {fee.paid_on:%d/%m/%Y}).",
                "already_paid",
            )
        if fee.status == FeeStatus.WAIVED:
            raise _fail(
                NON_FIELD_ERRORS, f"La cotisation {fee.year} est exonérée : il n'y a rien à payer.", "waived"
            )
        day = paid_on or timezone.localdate()
        if day > timezone.localdate():
            raise _fail("paid_on", "La date de paiement ne peut pas être dans le futur.")
        before = _snapshot(fee, FEE_AUDITED_FIELDS)
        fee.status = FeeStatus.PAID
        fee.paid_on = day
        fee.save(update_fields=["status", "paid_on"])
        detail = {
            "fee_id": fee.pk,
            "year": fee.year,
            "operation": "paid",
            "changes": _changes(before, _snapshot(fee, FEE_AUDITED_FIELDS)),
        }
        _audit("fee", adherent=fee.adherent, actor=actor, request=request, detail=detail)
    return fee


# --- Representatives ----------------------------------------------------------------------------------


def _same_person(a: AdherentRepresentative, b: AdherentRepresentative) -> bool:
    if a.professional_id is not None and a.professional_id == b.professional_id:
        return True
    return (a.last_name.casefold(), a.first_name.casefold()) == (
        b.last_name.casefold(),
        b.first_name.casefold(),
    )


def adherent_representative_set(
    *,
    adherent: Adherent,
    actor: "Actor",
    body: str,
    role: str,
    last_name: str = "",
    first_name: str = "",
    email: str = "",
    function: str = "",
    professional: Professional | None = None,
    request: HttpRequest | None = None,
) -> AdherentRepresentative:
    """Name the holder or the substitute of the member at the general assembly or on the restricted
    committee (one of each per body; naming one again replaces the previous person). A substitute needs
    a holder, and is someone else."""
    errors = _Errors()
    if body not in GoverningBody.values:
        errors.add("body", "Instance inconnue : assemblée générale ou comité restreint.")
    if role not in RepresentativeRole.values:
        errors.add("role", "Rôle inconnu : titulaire ou suppléant.")
    last_name = " ".join(last_name.split()) or (professional.last_name if professional else "")
    first_name = " ".join(first_name.split()) or (professional.first_name if professional else "")
    if not last_name:
        errors.add("last_name", "Le nom du représentant est obligatoire.")
    if not first_name:
        errors.add("first_name", "Le prénom du représentant est obligatoire.")
    errors.raise_if_any()

    with transaction.atomic():
        _lock(adherent)
        if adherent.status in ENDED_STATUSES:
            raise _fail(
                NON_FIELD_ERRORS,
                f"Cet adhérent est « {adherent.get_status_display()} » : il n'est plus représenté au GCS.",
                "membership_ended",
            )
        seats = {
            r.role: r
            for r in AdherentRepresentative.objects.select_for_update().filter(adherent=adherent, body=body)
        }
        other_role = (
            RepresentativeRole.SUBSTITUTE if role == RepresentativeRole.HOLDER else RepresentativeRole.HOLDER
        )
        if role == RepresentativeRole.SUBSTITUTE and RepresentativeRole.HOLDER not in seats:
            raise _fail(
                "role",
                "Désignez d'abord le titulaire de cette instance : le suppléant le remplace en son absence.",
                "holder_first",
            )
        representative = seats.get(role)
        created = representative is None
        if representative is None:
            representative = AdherentRepresentative(adherent=adherent, body=body, role=role)
        before = {} if created else _snapshot(representative, REPRESENTATIVE_AUDITED_FIELDS)
        representative.last_name = last_name
        representative.first_name = first_name
        representative.email = email.strip().lower()
        representative.function = " ".join(function.split())
        representative.professional = professional
        counterpart = seats.get(other_role)
        if counterpart is not None and _same_person(representative, counterpart):
            raise _fail(
                "last_name",
                f"{first_name} {last_name} est déjà {counterpart.get_role_display().lower()} "
                "de cette instance : le titulaire et le suppléant sont deux personnes différentes.",
                "same_person",
            )
        representative.full_clean(validate_constraints=False)
        changes = _changes(before, _snapshot(representative, REPRESENTATIVE_AUDITED_FIELDS))
        if not changes:
            return representative
        representative.save()
        detail = {
            "representative_id": representative.pk,
            "body": body,
            "role": role,
            "operation": "create" if created else "update",
            "changes": changes,
        }
        _audit("representative", adherent=adherent, actor=actor, request=request, detail=detail)
    return representative


def adherent_representative_remove(
    *,
    representative: AdherentRepresentative,
    actor: "Actor",
    request: HttpRequest | None = None,
) -> None:
    """End a representative's mandate. A holder with a substitute is replaced (set), not removed."""
    adherent = representative.adherent
    with transaction.atomic():
        _lock(adherent)
        seats = {
            r.role: r
            for r in AdherentRepresentative.objects.select_for_update().filter(
                adherent=adherent, body=representative.body
            )
        }
        current = seats.get(representative.role)
        if current is None or current.pk != representative.pk:
            raise _fail(NON_FIELD_ERRORS, "Ce représentant a déjà été retiré ou remplacé.", "gone")
        if representative.role == RepresentativeRole.HOLDER and RepresentativeRole.SUBSTITUTE in seats:
            raise _fail(
                NON_FIELD_ERRORS,
                "Cette instance a un suppléant : désignez un nouveau titulaire plutôt que de retirer "
                "celui-ci, ou retirez d'abord le suppléant.",
                "substitute_left",
            )
        before = _snapshot(current, REPRESENTATIVE_AUDITED_FIELDS)
        detail = {
            "representative_id": current.pk,
            "body": current.body,
            "role": current.role,
            "operation": "remove",
            "changes": {name: {"before": value, "after": None} for name, value in before.items()},
        }
        current.delete()
        _audit("representative", adherent=adherent, actor=actor, request=request, detail=detail)


# --- Services used ------------------------------------------------------------------------------------


def adherent_services_set(
    *,
    adherent: Adherent,
    actor: "Actor",
    services: Iterable[str],
    request: HttpRequest | None = None,
) -> list[AdherentService]:
    """The ENRS services the member uses, replaced by `services` (new ones are used from today). A member
    whose membership ended keeps no new service (removing is always possible)."""
    errors = _Errors()
    wanted = _services_check(errors, services)
    errors.raise_if_any()
    with transaction.atomic():
        _lock(adherent)
        current = {
            s.service: s for s in AdherentService.objects.select_for_update().filter(adherent=adherent)
        }
        added = [value for value in wanted if value not in current]
        removed = [value for value in EnrsService.values if value in current and value not in wanted]
        if added and adherent.status in ENDED_STATUSES:
            raise _fail(
                "services",
                f"Cet adhérent est « {adherent.get_status_display()} » : "
                "aucun service ne peut lui être ouvert.",
                "membership_ended",
            )
        if added or removed:
            AdherentService.objects.filter(adherent=adherent, service__in=removed).delete()
            today = timezone.localdate()
            AdherentService.objects.bulk_create(
                AdherentService(adherent=adherent, service=value, since=today) for value in added
            )
            before = [value for value in EnrsService.values if value in current]
            detail = {
                "changes": {"services": {"before": before, "after": wanted}},
                "added": added,
                "removed": removed,
            }
            _audit("services", adherent=adherent, actor=actor, request=request, detail=detail)
    return list(AdherentService.objects.filter(adherent=adherent).order_by("service"))
