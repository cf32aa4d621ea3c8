"""The matricule INS (Identifiant National de Santé): key, OIDs, and how each format writes it.

The matricule is a NIR or a NIA: 13 characters + a 2-digit key = 97 - (N mod 97), where N is the first 13
characters read as a number, Corsica's department ``2A``/``2B`` (positions 6-7) read as ``19``/``18``
(standards §1.3: [V] on the ANS test INS 279035121518989, key 89; Corsica rule [V-3p]).

Its OID says what it is (fr-core FRCorePatientINSProfile, [V]): NIR, NIA, and the test and demo NIR OIDs,
which production refuses.

Pure code: no Django import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

OID_INS_NIR = "1.2.250.1.213.1.4.8"
OID_INS_NIA = "1.2.250.1.213.1.4.9"
OID_INS_NIR_TEST = "1.2.250.1.213.1.4.10"
OID_INS_NIR_DEMO = "1.2.250.1.213.1.4.11"

INS_OIDS = {
    OID_INS_NIR: "INS-NIR",
    OID_INS_NIA: "INS-NIA",
    OID_INS_NIR_TEST: "INS-NIR-TEST",
    OID_INS_NIR_DEMO: "INS-NIR-DEMO",
}
TEST_OIDS = frozenset({OID_INS_NIR_TEST, OID_INS_NIR_DEMO})

_BODY = re.compile(r"^[0-9]{5}(?:[0-9]{2}|2[AB])[0-9]{6}$")
_MATRICULE = re.compile(r"^[0-9]{5}(?:[0-9]{2}|2[AB])[0-9]{8}$")


class InsError(ValueError):
    """A matricule INS or its OID is not acceptable; the message is French, for the user."""


def mod97_key(body: str) -> str:
    """The 2-digit key of a 13-character NIR/INS body: 97 - (N mod 97), Corsica's 2A/2B read as 19/18."""
    body = body.upper()
    if not _BODY.match(body):
        raise ValueError(f"corps de NIR/INS invalide : {body!r} (13 caractères attendus)")
    digits = body[:5] + {"2A": "19", "2B": "18"}.get(body[5:7], body[5:7]) + body[7:]
    return f"{97 - int(digits) % 97:02d}"


def mod97_is_valid(value: str) -> bool:
    """True for a 15-character NIR/INS whose last two digits are the mod-97 key of the first 13."""
    value = value.upper()
    if not _MATRICULE.match(value):
        return False
    return mod97_key(value[:13]) == value[13:]


def normalize(value: str) -> str:
    """The matricule as stored: upper case, spaces and dots removed (people type ``2 79 03 51…``)."""
    return re.sub(r"[\s.]", "", value).upper()


def check_matricule(value: str, oid: str, *, allow_test_oids: bool) -> str:
    """The normalised matricule, or `InsError` saying what is wrong (format, key, OID)."""
    matricule = normalize(value)
    if not _MATRICULE.match(matricule):
        raise InsError(
            "Le matricule INS doit comporter 15 caractères : 13 chiffres (2A ou 2B possibles pour la "
            "Corse) suivis d'une clé de 2 chiffres."
        )
    if mod97_key(matricule[:13]) != matricule[13:]:
        raise InsError("La clé du matricule INS est fausse : vérifiez la saisie.")
    if oid not in INS_OIDS:
        raise InsError(f"OID d'INS inconnu : « {oid} ».")
    if oid in TEST_OIDS and not allow_test_oids:
        raise InsError("Un INS de test ou de démonstration est refusé en production.")
    return matricule


class Sex(StrEnum):
    MALE = "M"
    FEMALE = "F"
    UNKNOWN = "U"


@dataclass(frozen=True)
class InsTraits:
    """The five traits that, with the matricule, make an INS identity (standards §1.3)."""

    birth_family_name: str
    birth_given_names: tuple[str, ...]
    first_given_name: str
    sex: str
    birth_date_iso: str
    birth_place_insee: str

    def missing(self) -> list[str]:
        """French labels of the traits that are missing."""
        labels = []
        if not self.birth_family_name.strip():
            labels.append("nom de naissance")
        if not any(g.strip() for g in self.birth_given_names):
            labels.append("prénoms de naissance")
        if not self.first_given_name.strip():
            labels.append("premier prénom de naissance")
        if self.sex not in (Sex.MALE.value, Sex.FEMALE.value):
            labels.append("sexe")
        if not self.birth_date_iso:
            labels.append("date de naissance")
        if not re.fullmatch(r"[0-9]{5}|2[AB][0-9]{3}", self.birth_place_insee or ""):
            labels.append("lieu de naissance (code INSEE)")
        return labels


def cx(matricule: str, oid: str) -> str:
    """The INS as an HL7 CX (XDS patientId): ``<INS>^^^&<OID>&ISO^NH``."""
    return f"{matricule}^^^&{oid}&ISO^NH"


def patient_mailbox(matricule: str) -> str:
    """The patient's Mon Espace Santé secure-messaging address (standards §3)."""
    return f"{matricule}@patient.mssante.fr"
