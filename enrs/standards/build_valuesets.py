"""Build ``enrs/standards/data/valuesets.json``: XDS / CDA value sets for the DMP, telemedicine, MSSanté.

The application never reads the ANS kit at run time (production has no copy of it): this script extracts the
codes into a small committed JSON file, read by ``enrs.standards.valuesets``.

    python -m enrs.standards.build_valuesets [--kit DIR] [--output FILE] [--check]

Extracted from the CI-SIS kit (``jeuxDeValeurs/``, IHE SVS files), with the SVS reader of
``annuaire.standards.build_nomenclatures``: J07 typeCode, J08 confidentialityCode, J02
healthcareFacilityTypeCode, J04 practiceSettingCode, J01 authorSpecialty (every concept, whatever its
codeSystem). The other tables are not in the kit; they are kept below by hand, each with its source.
Pure code: no Django import.
"""

from pathlib import Path
from typing import Any

from annuaire.standards.build_nomenclatures import DEFAULT_KIT as DEFAULT_KIT  # the kit the tests read
from annuaire.standards.build_nomenclatures import _concepts, _value_set_version, run_builder

OUTPUT = Path(__file__).resolve().parent / "data" / "valuesets.json"

KIT_VALUE_SETS = {
    # name in the JSON → file in jeuxDeValeurs/
    "type_code": "JDV_J07_XdsTypeCode_CISIS.xml",
    "confidentiality": "JDV_J08_XdsConfidentialityCode_CISIS.xml",
    "facility_type": "JDV_J02_XdsHealthcareFacilityTypeCode_CISIS.xml",
    "practice_setting": "JDV_J04_XdsPracticeSettingCode_CISIS.xml",
    "author_specialty": "JDV_J01_XdsAuthorSpecialty_CISIS.xml",
}

# --- Tables kept by hand (not in the CDA kit) --------------------------------------------------------
_TERMINO = "ansforge/IG-terminologie-de-sante"

# JDV_J06_XdsClassCode_CISIS (OID 1.2.250.1.213.1.1.5.462, version 20230922120000): codes of
# TRE_A03-ClasseDocument (OID 1.2.250.1.213.1.1.4.1), labels as published in the ValueSet resource
# of the ANS terminology IG. The TRE_A10 URN member (digital signature) is left out.
CLASS_SYSTEM = "1.2.250.1.213.1.1.4.1"
CLASS_CODES = {
    "10": "Compte rendu",
    "11": "Synthèse",
    "31": "Imagerie médicale",
    "42": "Prescription",
    "43": "Dispensation",
    "44": "Plan de soins, protocole de soins",
    "45": "Traitement administré",
    "52": "Certificat, déclaration",
    "60": "Données de remboursement",
    "90": "Autres documents déposés par le patient",
    "95": "Document de gestion",
    "99": "Document technique",
}

# typeCode (J07) → classCode (J06). The ANS derives it with ConceptMaps ASS_X04 / ASS_X16, which are not in
# the kit: only the type codes that /work/shared/domain/standards.md §4 lists under a class are mapped
# (the lists there come from the J07 file of the kit and the ASS_X16 mapping). Any other type code raises
# KeyError in valuesets.class_for_type: add it here with its source before using it.
TYPE_TO_CLASS = {
    # Reports, class 10
    "11488-4": "10",  # CR ou fiche de consultation ou de visite
    "11490-0": "10",  # Lettre de liaison à la sortie d'un établissement de soins
    "34112-3": "10",  # CR hospitalier (séjour)
    "11502-2": "10",  # CR d'examens biologiques
    "15507-7": "10",  # CR de passage aux urgences
    "34874-8": "10",  # CR opératoire
    "77436-4": "10",  # CR d'anesthésie
    "34749-2": "10",  # CR de consultation pré-anesthésique
    "34794-8": "10",  # CR de réunion de concertation pluridisciplinaire
    "60568-3": "10",  # CR d'anatomie et de cytologie pathologiques
    "85208-7": "10",  # CR de télémédecine
    "75496-0": "10",  # Demande d'acte de télémédecine
    "96349-6": "10",  # Lettre d'adressage
    # Imaging, class 31
    "18748-4": "31",  # CR d'imagerie médicale
    "IMG-KOS": "31",  # Référence d'objets d'un examen d'imagerie (TRE_A05)
    # Syntheses, class 11
    "18761-7": "11",  # Note de transfert
    "34133-9": "11",  # Synthèse d'épisode de soins
    "60591-5": "11",  # Synthèse médicale
    # Prescriptions, class 42
    "57833-6": "42",  # Prescription de produits de santé
    "PRESC-BIO": "42",
    "PRESC-KINE": "42",
    "PRESC-INF": "42",
    # Certificates / vaccination, class 52
    "87273-9": "52",  # Note de vaccination
    # Management documents, class 95
    "59284-0": "95",  # Attestation de consentement
    # Patient's own expression, class 90
    "EXPPAT_1": "90",
    "EXPPAT_2": "90",
    "EXPPAT_3": "90",
}

# formatCode of CDA level 1 (JDV_J10 generic, JDV_J60 DMP): ConceptMap ASS_A12-CorresMediaTypeCDANonStructure-
# XdsFormatCode-CISIS maps the nonXMLBody media type to these codes of TRE_A11-IheFormatCode, whose OID
# 1.3.6.1.4.1.19376.1.2.3 is given in the PDSm DocumentReference profile (constr-bind-format); labels from
# the JDV_J60-FormatCode-DMP ValueSet of the ANS terminology IG.
FORMAT_SYSTEM = "1.3.6.1.4.1.19376.1.2.3"
FORMAT_CODES = {
    "urn:ihe:iti:xds-sd:pdf:2008": "Document à corps non structuré en Pdf/A-1",
    "urn:ihe:iti:xds-sd:text:2008": "Document à corps non structuré en texte brut",
    "urn:ihe:iti-fr:xds-sd:rtf:2010": "Document à corps non structuré en format rtf",
    "urn:ihe:iti-fr:xds-sd:jpeg:2010": "Document à corps non structuré en format jpeg",
    "urn:ihe:iti-fr:xds-sd:tiff:2010": "Document à corps non structuré en format tiff",
}
MEDIA_TYPE_TO_FORMAT = {  # ASS_A12, as above
    "application/pdf": "urn:ihe:iti:xds-sd:pdf:2008",
    "text/plain": "urn:ihe:iti:xds-sd:text:2008",
    "text/rtf": "urn:ihe:iti-fr:xds-sd:rtf:2010",
    "image/jpeg": "urn:ihe:iti-fr:xds-sd:jpeg:2010",
    "image/tiff": "urn:ihe:iti-fr:xds-sd:tiff:2010",
}

# contentTypeCode of the submission set (JDV_J59-ContentTypeCode-DMP): the four codes the hl7v2-cda IG
# proposes for PV1-2 (I→03, O→07, E→07, R→19, N→97). They are TRE_R209-TypeActivite codes (OID
# 1.2.250.1.213.2.2, version 20260629120000; labels copied from it). That J59 draws these codes from TRE_R209
# is read from the JDV_J03-XdsContentTypeCode-CISIS binding text, not from J59 itself: [unverified].
CONTENT_TYPE_SYSTEM = "1.2.250.1.213.2.2"
CONTENT_TYPE_CODES = {
    "03": "Hospitalisation complète (non compris hospitalisation de semaine)",
    "07": "Consultation Soins Externes",
    "19": "Traitement et Cure Ambulatoire",
    "97": "Type d'activité indifferencié",
}


def _hand_table(source: str, system: str, labels: dict[str, str]) -> dict[str, Any]:
    codes = {code: {"codeSystem": system, "displayName": label} for code, label in labels.items()}
    return {"source": source, "codes": codes}


def build(kit_dir: Path) -> dict[str, Any]:
    """The value sets, as written to the JSON file (deterministic: sorted keys)."""
    jdv = kit_dir / "jeuxDeValeurs"
    data: dict[str, Any] = {
        "_generated_by": "python -m enrs.standards.build_valuesets (ne pas modifier à la main)",
    }
    for name, filename in KIT_VALUE_SETS.items():
        path = jdv / filename
        codes = {
            code: {"codeSystem": system, "displayName": label} for code, system, label in _concepts(path)
        }
        if not codes:
            raise ValueError(f"{filename} : aucun concept.")
        data[name] = {"source": f"{filename} (dateMaj {_value_set_version(path)})", "codes": codes}
    data["class_code"] = _hand_table(
        f"JDV_J06_XdsClassCode_CISIS 20230922120000 (TRE_A03), {_TERMINO}", CLASS_SYSTEM, CLASS_CODES
    )
    data["format_code"] = _hand_table(
        f"TRE_A11-IheFormatCode via ASS_A12 et JDV_J60-FormatCode-DMP, {_TERMINO}",
        FORMAT_SYSTEM,
        FORMAT_CODES,
    )
    data["content_type"] = _hand_table(
        f"TRE_R209-TypeActivite 20260629120000 (extrait JDV_J59, non vérifié), {_TERMINO}",
        CONTENT_TYPE_SYSTEM,
        CONTENT_TYPE_CODES,
    )
    unknown = sorted(set(TYPE_TO_CLASS) - set(data["type_code"]["codes"]))
    if unknown or not set(TYPE_TO_CLASS.values()) <= set(CLASS_CODES):
        raise ValueError(f"Correspondance typeCode → classCode invalide : {unknown}")
    data["type_to_class"] = {
        "source": "shared/domain/standards.md §4 (classes listées par typeCode, ASS_X16)",
        "map": dict(TYPE_TO_CLASS),
    }
    data["media_type_to_format"] = {"source": f"ASS_A12, {_TERMINO}", "map": dict(MEDIA_TYPE_TO_FORMAT)}
    return data


def main(argv: list[str] | None = None) -> int:
    description = (__doc__ or "").splitlines()[0]
    return run_builder(argv, description=description, build=build, output=OUTPUT, name="build_valuesets")


if __name__ == "__main__":
    raise SystemExit(main())
