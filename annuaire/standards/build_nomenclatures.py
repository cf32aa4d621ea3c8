"""Build ``annuaire/standards/data/nomenclatures.json`` from the ANS CI-SIS value sets (JDV XML files).

The application never reads the kit at run time (production has no copy of it): this script extracts the
codes the directory needs into a small committed JSON file, read by ``annuaire.standards.nomenclatures``.

    python -m annuaire.standards.build_nomenclatures [--kit DIR] [--output FILE] [--check]

Extracted from the kit (``jeuxDeValeurs/``):
* JDV_J01_XdsAuthorSpecialty_CISIS.xml → professions (TRE_G15, ``G15_10`` Médecin …) and the
  savoir-faire of physicians (``G15_10/SMxx``), dentists (``G15_40/SCDxx``) and nurses (``G15_60/SIxx``);
* JDV_J02_XdsHealthcareFacilityTypeCode_CISIS.xml → activity sectors (TRE_R02, ``SAxx``).

The other tables are not in the kit; they are kept below by hand, each with its source. Pure code: no
Django import.
"""

import argparse
import json
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

SVS_NS = {"svs": "urn:ihe:iti:svs:2008"}
J01 = "JDV_J01_XdsAuthorSpecialty_CISIS.xml"
J02 = "JDV_J02_XdsHealthcareFacilityTypeCode_CISIS.xml"
TRE_G15_OID = "1.2.250.1.213.1.1.4.5"  # codeSystem of the G15_* concepts in J01
TRE_R02_OID = "1.2.250.1.71.4.2.4"  # codeSystem of the SA* concepts in J02

DEFAULT_KIT = Path(__file__).resolve().parents[3] / "shared" / "standards" / "ans-cda-kit"
OUTPUT = Path(__file__).resolve().parent / "data" / "nomenclatures.json"

_PROFESSION_RE = re.compile(r"^G15_(\d{2})$")
# Savoir-faire kept per profession: ordinal specialties of physicians (SM), dentists (SCD) and the
# advanced-practice mentions of nurses (SI).
_SPECIALTY_RE = re.compile(r"^G15_(10/SM\d{2}|40/SCD\d{2}|60/SI\d{2})$")
_SPECIALTY_LABEL_RE = re.compile(r"^.+? - (?P<label>.+?) \((?:SM|SCD|SI)\)$")
_SECTOR_RE = re.compile(r"^SA\d{2}$")

# --- Tables kept by hand (not in the CDA kit) --------------------------------------------------------
# Each comes from the ANS terminology repository ansforge/ig-terminlogie-de-sante
# (input/DM/input/fsh/Template/ontoserver/…), labels copied as published.

# TRE_R66 CategorieEtablissement: a short list of real categories, from JDV_J55_CategorieEG_ROR.fsh
# (version 20241025120000), which lists TRE_R66 codes with their labels. CHU are category 101 (CHR).
STRUCTURE_CATEGORIES = {
    "101": "Centre hospitalier régional (CHR)",
    "106": "Centre hospitalier (ex Hôpital local)",
    "109": "Etablissement de santé privé autorisé en soins de suite et de réadaptation (SSR)",
    "124": "Centre de santé",
    "127": "Hospitalisation à domicile (HAD)",
    "128": "Etablissement de soins chirurgicaux",
    "129": "Etablissement de soins médicaux",
    "131": "Centre de lutte contre cancer",
    "141": "Centre de dialyse",
    "292": "Centre hospitalier spécialisé de lutte contre les maladies mentales",
    "354": "Service de soins infirmiers à domicile (SSIAD)",
    "355": "Centre hospitalier (CH)",
    "365": "Etablissement de soins pluridisciplinaire",
    "500": "Etablissement d'hébergement pour personnes âgées dépendantes",
    "603": "Maison de santé (L6223-3)",
    "604": "Communauté Professionnelle Territoriale de Santé (CPTS)",
    "606": "Dispositif d'appui à la coordination (DAC)",
    "611": "Laboratoire de biologie médicale (LBM)",
    "617": "Maison médicale de garde (MMG)",
    "620": "Pharmacie d'officine",
    "696": "Groupement de coopération sanitaire de moyens",
    "697": "Groupement de coopération sanitaire, Etablissement de santé",
}

# TRE_R23 ModeExercice: codesystems/TRE_R23_ModeExercice.fsh (version 20231215120000), complete.
EXERCISE_MODES = {
    "S": "Salarié",
    "L": "Libéral, indépendant, artisan, commerçant",
    "B": "Bénévole",
}

# TRE_R21 Fonction: the roles the demo uses, from JDV_J108_EnsembleFonction_RASS.fsh (20241213120000).
ROLES = {
    "FON-01": "Titulaire de cabinet",
    "FON-02": "Associé dans une société d'exercice (SEL ou SCP)",
    "FON-03": "Titulaire d'officine",
    "FON-05": "Adjoint",
    "FON-09": "Responsable d'établissement",
    "FON-15": "Directeur de laboratoire",
    "FON-17": "Collaborateur",
    "FON-22": "Remplaçant, intérimaire, intermittent",
    "FON-33": "Salarié en poste fixe",
    "FON-41": "Biologiste médical",
    "FON-43": "Cadre de santé",
    "FON-AU": "Fonction non définie",
}

# TRE_R81 Civilite: codesystems/TRE_R81_Civilite.fsh (20231215120000); MLLE, closed in 2016, left out.
CIVILITIES = {"M": "Monsieur", "MME": "Madame"}

# TRE_R09 CategorieProfessionnelle: TRE_R09_CategorieProfessionnelle.fsh (version 20260223120000);
# F (Fonctionnaire), deprecated on 2026-02-23, left out.
PROFESSIONAL_CATEGORIES = {"C": "Civil", "E": "Etudiant", "M": "Agent public"}

HAND_KEPT_SOURCE = "ansforge/ig-terminlogie-de-sante, input/DM/input/fsh/Template/ontoserver"


def _concepts(path: Path) -> list[tuple[str, str, str]]:
    """(code, codeSystem, displayName) of every Concept of an IHE SVS value set file."""
    tree = ET.parse(path)  # noqa: S314 — a trusted, committed ANS file, not user input
    return [
        (c.get("code", ""), c.get("codeSystem", ""), c.get("displayName", ""))
        for c in tree.iterfind(".//svs:Concept", SVS_NS)
    ]


def _value_set_version(path: Path) -> str:
    value_set = ET.parse(path).find("svs:ValueSet", SVS_NS)  # noqa: S314 — trusted committed ANS file
    if value_set is None:
        raise ValueError(f"{path.name}: pas d'élément ValueSet.")
    return value_set.get("dateMaj", "")


def build(kit_dir: Path) -> dict[str, Any]:
    """The nomenclature tables, as written to the JSON file (deterministic: sorted keys)."""
    jdv = kit_dir / "jeuxDeValeurs"
    professions: dict[str, str] = {}
    specialties: dict[str, dict[str, str]] = {}
    for code, system, label in _concepts(jdv / J01):
        if system != TRE_G15_OID:
            continue
        if match := _PROFESSION_RE.match(code):
            professions[match.group(1)] = label
        elif match := _SPECIALTY_RE.match(code):
            profession, specialty = match.group(1).split("/")
            label_match = _SPECIALTY_LABEL_RE.match(label)
            specialties.setdefault(profession, {})[specialty] = (
                label_match.group("label") if label_match else label
            )
    sectors = {
        code: label
        for code, system, label in _concepts(jdv / J02)
        if system == TRE_R02_OID and _SECTOR_RE.match(code)
    }
    if not professions or not specialties.get("10") or not sectors:
        raise ValueError(f"Jeux de valeurs incomplets dans {jdv}.")

    def table(source: str, codes: dict[str, Any]) -> dict[str, Any]:
        return {"source": source, "codes": codes}

    return {
        "_generated_by": "python -m annuaire.standards.build_nomenclatures (ne pas modifier à la main)",
        "professions": table(f"TRE_G15 via {J01} (dateMaj {_value_set_version(jdv / J01)})", professions),
        "specialties": table(
            f"TRE_G15 savoir-faire via {J01} (dateMaj {_value_set_version(jdv / J01)})", specialties
        ),
        "sectors": table(f"TRE_R02 via {J02} (dateMaj {_value_set_version(jdv / J02)})", sectors),
        "structure_categories": table(
            f"TRE_R66 (extrait) via JDV_J55_CategorieEG_ROR 20241025120000, {HAND_KEPT_SOURCE}",
            STRUCTURE_CATEGORIES,
        ),
        "exercise_modes": table(f"TRE_R23 20231215120000, {HAND_KEPT_SOURCE}", EXERCISE_MODES),
        "roles": table(
            f"TRE_R21 (extrait) via JDV_J108_EnsembleFonction_RASS 20241213120000, {HAND_KEPT_SOURCE}", ROLES
        ),
        "civilities": table(f"TRE_R81 20231215120000, {HAND_KEPT_SOURCE}", CIVILITIES),
        "professional_categories": table(
            f"TRE_R09 20260223120000, {HAND_KEPT_SOURCE}", PROFESSIONAL_CATEGORIES
        ),
    }


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True) + "\n"


def run_builder(
    argv: list[str] | None,
    *,
    description: str,
    build: Callable[[Path], dict[str, Any]],
    output: Path,
    name: str,
) -> int:
    """Command line shared by the value-set builders: write `output`, or `--check` that it is current."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--kit", type=Path, default=DEFAULT_KIT, help="dossier du kit CDA de l'ANS")
    parser.add_argument("--output", type=Path, default=output)
    parser.add_argument("--check", action="store_true", help="échoue si le fichier n'est pas à jour")
    args = parser.parse_args(argv)
    text = render(build(args.kit))
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} n'est pas à jour : relancez {name}.", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"{args.output} écrit.")
    return 0


def main(argv: list[str] | None = None) -> int:
    description = (__doc__ or "").splitlines()[0]
    return run_builder(argv, description=description, build=build, output=OUTPUT, name="build_nomenclatures")


if __name__ == "__main__":
    raise SystemExit(main())
