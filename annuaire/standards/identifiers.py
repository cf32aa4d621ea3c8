"""Identifiers of professionals and structures: RPPS, ADELI, IdNat_PS, FINESS, SIREN, SIRET.

Pure code, no Django import. Rules and their status come from the project's standards notes
(shared/domain/standards.md §1.1 and §1.2):

* FINESS: 9 characters, chars 1-2 = department (``2A``/``2B`` in Corsica), the 9th char is a Luhn key
  over the first 8 digits (checked on real numbers: 750712184, 130783236, 690781810). The key of
  Corsican numbers is not documented, so they get a shape check only. Overseas numbers start with
  ``97`` and their 4th char gives the department (``9701…`` Guadeloupe … ``9704…`` La Réunion);
  ``98`` is Mayotte.
* SIREN: 9 digits, Luhn. SIRET: 14 digits = SIREN + NIC, Luhn over the 14 digits, except La Poste
  (SIREN 356000000) whose SIRETs have a digit sum divisible by 5 [unverified rule, kept because
  rejecting La Poste sites would be worse than accepting a malformed one].
* RPPS: 11 digits. The key is usually said to be Luhn, but ANS sample numbers fail it, so a failing
  key is a *warning* (``rpps_key_is_valid`` → store the flag), never a rejection.
* ADELI: 9 digits (internal structure and key unverified: shape check only).
* IdNat_PS: ``8`` + RPPS (12 chars) or ``0`` + ADELI (10 chars).
* Mod-97 keys (NIR / matricule INS, standards §1.3): 13 characters + a 2-digit key, key = 97 - (N mod 97),
  with ``2A`` → ``19`` and ``2B`` → ``18`` in positions 6-7 (Corsica) before the division. Shared with the
  patient identity of the core (INS) when it arrives.
"""

import re
from dataclasses import dataclass
from enum import StrEnum

# --- Luhn ------------------------------------------------------------------------------------------


def luhn_sum(digits: str) -> int:
    """Luhn sum of a string of digits, doubling every second digit from the right (not the last one)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total


def luhn_is_valid(number: str) -> bool:
    """True when `number` is made of digits only and its Luhn sum is a multiple of 10."""
    return bool(number) and number.isascii() and number.isdigit() and luhn_sum(number) % 10 == 0


def luhn_check_digit(body: str) -> str:
    """The digit to append to `body` so that `body + digit` passes Luhn."""
    if not (body.isascii() and body.isdigit()):
        raise ValueError(f"Luhn: {body!r} doit être composé de chiffres.")
    return str((10 - luhn_sum(body + "0") % 10) % 10)


# --- FINESS ----------------------------------------------------------------------------------------

CORSICA_DEPARTMENTS = ("2A", "2B")
_FINESS_RE = re.compile(r"^(?:\d{2}|2[AB])\d{7}$")

# Department code -> first chars of its FINESS numbers, for the departments whose prefix is not simply
# their code. Overseas: "97" + "0" + the DOM digit (standards §1.2: the 4th char gives the DOM).
# Mayotte: "98" (standards §1.2) followed by "05", after its former territorial code 985 [unverified].
_FINESS_PREFIXES = {
    "971": "9701",
    "972": "9702",
    "973": "9703",
    "974": "9704",
    "976": "9805",
}
_FINESS_DEPARTMENTS = {prefix: code for code, prefix in _FINESS_PREFIXES.items()}


def finess_is_well_formed(value: str) -> bool:
    """Shape only: 9 characters, digits, with ``2A``/``2B`` allowed as the first two (Corsica)."""
    return bool(_FINESS_RE.match(value))


def finess_is_valid(value: str) -> bool:
    """Hard check: well formed, and the Luhn key holds (Corsican numbers: shape only, key undocumented)."""
    if not finess_is_well_formed(value):
        return False
    if value[:2] in CORSICA_DEPARTMENTS:
        return True
    return luhn_is_valid(value)


def finess_prefix(department_code: str) -> str:
    """First characters of the FINESS numbers of a department (``35``, ``2A``, ``9701``, ``9805``)."""
    if department_code in _FINESS_PREFIXES:
        return _FINESS_PREFIXES[department_code]
    if len(department_code) == 2 and (department_code.isdigit() or department_code in CORSICA_DEPARTMENTS):
        return department_code
    raise ValueError(f"FINESS : département inconnu {department_code!r}.")


def finess_department(value: str) -> str:
    """Department code of a FINESS number (``750712184`` → ``75``, ``970100228`` → ``971``)."""
    if not finess_is_well_formed(value):
        raise ValueError(f"FINESS mal formé : {value!r}.")
    return _FINESS_DEPARTMENTS.get(value[:4], value[:2])


def finess_generate(department_code: str, serial: int) -> str:
    """A valid FINESS number of `department_code` whose digits after the prefix are `serial`.

    Corsican numbers get a key computed as if ``2A``/``2B`` read ``20``: a demo convention only, since
    their real key rule is undocumented and never checked.
    """
    prefix = finess_prefix(department_code)
    width = 8 - len(prefix)
    if not 0 <= serial < 10**width:
        raise ValueError(f"FINESS : numéro d'ordre {serial} hors limites pour le préfixe {prefix}.")
    body = f"{prefix}{serial:0{width}d}"
    digits = "20" + body[2:] if prefix in CORSICA_DEPARTMENTS else body
    return body + luhn_check_digit(digits)


# --- SIREN / SIRET ---------------------------------------------------------------------------------

LA_POSTE_SIREN = "356000000"


def siren_is_valid(value: str) -> bool:
    return len(value) == 9 and luhn_is_valid(value)


def siret_is_valid(value: str) -> bool:
    if len(value) != 14 or not (value.isascii() and value.isdigit()):
        return False
    if value.startswith(LA_POSTE_SIREN):
        return sum(ord(c) - 48 for c in value) % 5 == 0  # La Poste exception [unverified]
    return luhn_is_valid(value)


def siren_generate(serial: int) -> str:
    """A valid SIREN whose first 8 digits are `serial`."""
    if not 0 <= serial < 10**8:
        raise ValueError(f"SIREN : numéro d'ordre {serial} hors limites.")
    body = f"{serial:08d}"
    return body + luhn_check_digit(body)


def siret_generate(siren: str, establishment: int) -> str:
    """A valid SIRET of `siren`: NIC = 4-digit establishment number + the key digit of the 14 digits."""
    if not siren_is_valid(siren):
        raise ValueError(f"SIRET : SIREN invalide {siren!r}.")
    if not 0 <= establishment < 10**4:
        raise ValueError(f"SIRET : numéro d'établissement {establishment} hors limites.")
    body = f"{siren}{establishment:04d}"
    return body + luhn_check_digit(body)


# --- RPPS / ADELI / IdNat_PS -----------------------------------------------------------------------


class IdentifierType(StrEnum):
    RPPS = "RPPS"
    ADELI = "ADELI"


IDNAT_PS_PREFIX = {IdentifierType.RPPS: "8", IdentifierType.ADELI: "0"}


class InvalidIdentifierError(ValueError):
    """A national identifier that does not have the expected shape (message in French)."""


def rpps_is_well_formed(value: str) -> bool:
    """11 digits: the only hard rule on an RPPS number."""
    return len(value) == 11 and value.isascii() and value.isdigit()


def rpps_key_is_valid(value: str) -> bool:
    """Luhn over the 11 digits. A failure is a warning to record, never a reason to reject (module doc)."""
    return rpps_is_well_formed(value) and luhn_is_valid(value)


def rpps_generate(serial: int) -> str:
    """A well-formed RPPS ``10`` + 8 digits (`serial`) + Luhn key."""
    if not 0 <= serial < 10**8:
        raise ValueError(f"RPPS : numéro d'ordre {serial} hors limites.")
    body = f"10{serial:08d}"
    return body + luhn_check_digit(body)


def adeli_is_well_formed(value: str) -> bool:
    return len(value) == 9 and value.isascii() and value.isdigit()


@dataclass(frozen=True, slots=True)
class IdNatPs:
    identifier_type: IdentifierType
    identifier: str  # the RPPS or ADELI number, without the prefix

    @property
    def value(self) -> str:
        return IDNAT_PS_PREFIX[self.identifier_type] + self.identifier

    def __str__(self) -> str:
        return self.value


def idnat_ps_from_rpps(rpps: str) -> str:
    if not rpps_is_well_formed(rpps):
        raise InvalidIdentifierError(f"Le numéro RPPS {rpps!r} doit comporter 11 chiffres.")
    return "8" + rpps


def idnat_ps_from_adeli(adeli: str) -> str:
    if not adeli_is_well_formed(adeli):
        raise InvalidIdentifierError(f"Le numéro ADELI {adeli!r} doit comporter 9 chiffres.")
    return "0" + adeli


def idnat_ps_parse(value: str) -> IdNatPs:
    """Split an IdNat_PS into its type and number; the RPPS key is not checked (warning only)."""
    if value.startswith("8") and rpps_is_well_formed(value[1:]):
        return IdNatPs(IdentifierType.RPPS, value[1:])
    if value.startswith("0") and adeli_is_well_formed(value[1:]):
        return IdNatPs(IdentifierType.ADELI, value[1:])
    raise InvalidIdentifierError(
        f"Identifiant national {value!r} invalide : attendu « 8 » + RPPS (11 chiffres) "
        "ou « 0 » + ADELI (9 chiffres)."
    )


def organization_idnat_struct(*, finess: str, siret: str) -> str:
    """IdNat_Struct of a structure: ``1`` + its own FINESS, else ``3`` + its SIRET, else ""
    (standards §1.1; ``2`` + SIREN is unverified and not produced)."""
    if finess:
        return "1" + finess
    if siret:
        return "3" + siret
    return ""
