"""Build ``ror/standards/data/valuesets.json`` from the ANS value sets of the ROR.

The application never reads the ANS kit at run time (production has no copy of it): this script extracts the
codes the ROR needs into a small committed JSON file, read by ``ror.standards.valuesets``.

    python -m ror.standards.build_valuesets [--kit DIR] [--output FILE] [--check]

Extracted from the CI-SIS kit (``jeuxDeValeurs/``, IHE SVS files), with the SVS reader of
``annuaire.standards.build_nomenclatures``:
* JDV_J19_ModePriseEnCharge_ROR.xml → modes de prise en charge;
* JDV_J30_TemporaliteAccueil_ROR.xml → temporalités d'accueil;
* JDV_J35_SpecialisationDePriseEnCharge_ROR.xml → spécialisations de prise en charge.

The other tables are not in the kit; they are kept below by hand, each with its source (ANS terminology
repository ``ansforge/ig-terminlogie-de-sante``, read on 2026-11-24), labels copied as published.
Pure code: no Django import.
"""

from pathlib import Path
from typing import Any

from annuaire.standards.build_nomenclatures import DEFAULT_KIT as DEFAULT_KIT  # the kit the tests read
from annuaire.standards.build_nomenclatures import _concepts, _value_set_version, run_builder

OUTPUT = Path(__file__).resolve().parent / "data" / "valuesets.json"

KIT_VALUE_SETS = {
    # name in the JSON → (file in jeuxDeValeurs/, codeSystem OID of the kept concepts)
    "care_modes": ("JDV_J19_ModePriseEnCharge_ROR.xml", "1.2.250.1.213.3.3.13"),
    "reception_types": ("JDV_J30_TemporaliteAccueil_ROR.xml", "1.2.250.1.213.3.3.31"),
    "specialised_care": ("JDV_J35_SpecialisationDePriseEnCharge_ROR.xml", "1.2.250.1.213.3.3.41"),
}

# --- Tables kept by hand (not in the CDA kit) --------------------------------------------------------
_TERMINO = "ansforge/ig-terminlogie-de-sante"
_JDV_DIR = "input/DM/input/fsh/Template/ontoserver/JDV/input/fsh/valuesets"

# JDV_J20_ChampActivite_ROR (OID 1.2.250.1.213.3.4.7, version 20231030120000), codes of TRE_R227, complete.
ACTIVITY_FIELDS = {
    "01": "Médecine, Chirurgie, Obstétrique (MCO)",
    "02": "Soins Médicaux et de réadaptation (SMR)",
    "03": "Psychiatrie (PSY)",
    "04": "Médico-social (MS)",
    "05": "Ville",
}

# JDV_J238_TypeOffre_ROR (OID 1.2.250.1.213.3.4.65, version 20260730120000), codes of TRE_R244: an
# extract of the offers a regional ROR of hospitals and nursing homes uses most.
OFFER_TYPES = {
    "10": "Centre Médico-Psychologique (CMP) Adulte",
    "11": "Hôpital De Jour (HDJ)",
    "15": "Unité de Soins Intensifs Psychiatriques (USIP)",
    "16": "Unité d'hospitalisation (hors HDJ)",
    "20": "Structure des urgences polyvalentes 24h/24 7j/7",
    "21": "Accueil ou hébergement pour personnes âgées dépendantes, sans spécificité",
    "28": "Services Soins infirmiers à domicile (SSIAD)",
    "40": "Maison d'accueil spécialisée (MAS)",
    "68": "Unité d'hospitalisation fermée",
    "69": "Consultation externe en établissement de santé",
    "70": "Unité d'intervention extra-hospitalière",
    "99": "Maison de santé pluriprofessionnelle (MSP)",
    "100": "Soins Médicaux et de Réadaptation (SMR) polyvalent",
    "101": "Soins Médicaux et de Réadaptation (SMR) gériatrie",
    "102": "Soins Médicaux et de Réadaptation (SMR) locomoteur",
}

# JDV_J17_ActiviteOperationnelle_ROR, codes of TRE_R211_ActiviteOperationnelle (OID 1.2.250.1.213.3.3.12,
# version 20260730120000, 629 codes): an extract of active codes only (deprecated ones left out).
OPERATIONAL_ACTIVITIES = {
    "003": "Alcoologie",
    "004": "Algologie et Médecine de la douleur",
    "007": "Anesthésie et Médecine périopératoire",
    "013": "Cardiologie générale",
    "014": "Cardiologie interventionnelle",
    "016": "Chirurgie cervico-faciale et Oto-rhino-laryngologie (ORL)",
    "018": "Chirurgie cardiaque et gros vaisseaux (cardio-vasculaire)",
    "022": "Chirurgie gynécologique",
    "025": "Chirurgie orthopédique et traumatologique",
    "030": "Chirurgie thoracique et pulmonaire",
    "031": "Urologie (chirurgie urologique)",
    "032": "Chirurgie vasculaire et endovasculaire",
    "033": "Chirurgie digestive et viscérale fonctionnelle (hors carcinologie)",
    "037": "Dermatologie",
    "039": "Diabétologie",
    "041": "Endocrinologie",
    "046": "Gastro-entérologie",
    "050": "Gériatrie, Gérontologie",
    "051": "Psychiatrie du sujet âgé (et géronto-psychiatrie)",
    "055": "Hématologie",
    "058": "Hémodialyse en urgence",
    "059": "Hémodialyse chronique",
    "062": "Hépatologie",
    "114": "Pneumologie",
    "115": "Suivi post urgences",
    "122": "Réanimation chirurgicale",
    "126": "Réanimation médicale",
    "127": "Réanimation polyvalente",
    "128": "Réanimation spécialisée néonatale",
    "130": "Réanimation spécialisée pédiatrique",
    "131": "Rhumatologie",
    "136": "SMUR primaire",
    "138": "Surveillance post-interventionnelle SSPI (réveil)",
    "145": "Traumatologie",
}

# JDV_J187_NatureCapacite_ROR, codes of TRE_R329_NatureCapacite (OID 1.2.250.1.213.3.3.212). TRE_R329 also
# has 03 « Logement » since 2025-03-28, flagged for the FINESS value set J352: left out of J187 here.
CAPACITY_TYPES = {"01": "Lit", "02": "Place"}

# TRE_R330_TypeStatutCapacite (OID 1.2.250.1.213.3.3.213, version 20250328120000), complete.
CAPACITY_STATUSES = {
    "01": "Installé",
    "02": "Disponible",
    "03": "Occupé",
    "04": "Réservé",
    "05": "Fermé",
    "06": "Supplémentaire",
    "07": "Opérationnel",
    "08": "Installé constaté",
    "09": "Autorisé",
}
# 07 « Opérationnel »: deprecated on 2025-01-31 (« résultante d'un calcul », not to be exchanged).
DEPRECATED_CAPACITY_STATUSES = ["07"]

# JDV_J190_GenreCapacite_ROR (OID 1.2.250.1.213.3.4.23, version 20220527120000), codes of TRE_R332, complete.
CAPACITY_GENDERS = {"01": "Femme", "02": "Homme", "03": "Indifférencié", "04": "Indéterminé"}

HAND_KEPT = {
    "activity_fields": (f"JDV_J20_ChampActivite_ROR 20231030120000, {_TERMINO} {_JDV_DIR}", ACTIVITY_FIELDS),
    "offer_types": (f"JDV_J238_TypeOffre_ROR 20260730120000 (extrait), {_TERMINO}", OFFER_TYPES),
    "operational_activities": (
        f"JDV_J17 via TRE_R211_ActiviteOperationnelle 20260730120000 (extrait), {_TERMINO}",
        OPERATIONAL_ACTIVITIES,
    ),
    "capacity_types": (f"JDV_J187 via TRE_R329_NatureCapacite 20260505120000, {_TERMINO}", CAPACITY_TYPES),
    "capacity_statuses": (f"TRE_R330_TypeStatutCapacite 20250328120000, {_TERMINO}", CAPACITY_STATUSES),
    "capacity_genders": (
        f"JDV_J190_GenreCapacite_ROR 20220527120000, {_TERMINO} {_JDV_DIR}",
        CAPACITY_GENDERS,
    ),
}


def build(kit_dir: Path) -> dict[str, Any]:
    """The value sets, as written to the JSON file (deterministic: sorted keys)."""
    jdv = kit_dir / "jeuxDeValeurs"
    data: dict[str, Any] = {
        "_generated_by": "python -m ror.standards.build_valuesets (ne pas modifier à la main)",
    }
    for name, (filename, system) in KIT_VALUE_SETS.items():
        path = jdv / filename
        codes = {code: label for code, code_system, label in _concepts(path) if code_system == system}
        if not codes:
            raise ValueError(f"{filename} : aucun code du système {system}.")
        data[name] = {"source": f"{filename} (dateMaj {_value_set_version(path)})", "codes": codes}
    for name, (source, codes) in HAND_KEPT.items():
        data[name] = {"source": source, "codes": dict(codes)}
    data["capacity_statuses"]["deprecated"] = list(DEPRECATED_CAPACITY_STATUSES)
    return data


def main(argv: list[str] | None = None) -> int:
    description = (__doc__ or "").splitlines()[0]
    return run_builder(argv, description=description, build=build, output=OUTPUT, name="build_valuesets")


if __name__ == "__main__":
    raise SystemExit(main())
