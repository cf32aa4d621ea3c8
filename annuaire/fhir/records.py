"""Plain values the FHIR mapping works on, filled by the Django layer (``annuaire.fhir.resources``).

Pure code: no Django import. Codes are the national ones stored in the directory (TRE_G15 profession,
TRE_R38 savoir-faire, TRE_R09 catégorie professionnelle, TRE_R21 fonction, TRE_R23 mode d'exercice,
TRE_R02 secteur d'activité, TRE_R66 catégorie d'établissement, TRE_R81 civilité, COG commune), labels
next to them.
"""

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class MailboxRecord:
    address: str
    kind: str  # TRE_R257 TypeBAL: PER | ORG | APP


@dataclass(frozen=True, slots=True)
class PractitionerRecord:
    id: str
    last_updated: datetime
    active: bool
    idnat_ps: str  # "8" + RPPS or "0" + ADELI
    rpps: str = ""
    adeli: str = ""
    civility_code: str = ""  # TRE_R81: M, MME
    last_name: str = ""
    first_name: str = ""
    profession_code: str = ""  # TRE_G15
    profession_label: str = ""
    category_code: str = ""  # TRE_R09
    category_label: str = ""
    specialty_code: str = ""  # TRE_R38 (SMxx, SCDxx, SIxx)
    specialty_label: str = ""
    mailboxes: tuple[MailboxRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class PractitionerRoleRecord:
    id: str
    last_updated: datetime
    active: bool
    practitioner_id: str
    organization_id: str
    practitioner_display: str = ""
    organization_display: str = ""
    role_code: str = ""  # TRE_R21 fonction
    role_label: str = ""
    exercise_mode: str = ""  # TRE_R23: S, L, B
    exercise_mode_label: str = ""
    mailboxes: tuple[MailboxRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class OrganizationRecord:
    id: str
    last_updated: datetime
    active: bool
    legal_entity: bool  # True: entité juridique (EJ); False: entité géographique (ET/EG)
    name: str
    finess: str = ""  # the structure's own FINESS: FINESS EJ for an EJ, FINESS ET for a site
    siren: str = ""
    siret: str = ""
    category_code: str = ""  # TRE_R66
    category_label: str = ""
    sector_code: str = ""  # TRE_R02
    sector_label: str = ""
    address_line: str = ""
    postal_code: str = ""
    city: str = ""
    insee_code: str = ""  # COG commune (TRE_R13)
    part_of_id: str = ""  # the legal entity of a site
    part_of_display: str = ""
    mailboxes: tuple[MailboxRecord, ...] = ()
