"""Namespaces, ebRIM/XDS identifiers and the code tables the DMP double checks metadata against.

Pure constants. The IHE identifiers are the ones of IHE ITI TF-3 (XDS.b metadata); the French code
tables follow the CI-SIS value sets (JDV_J06/J07/J08/J02/J04, formatCode ConceptMaps) as described in
`/work/shared/domain/standards.md` §4. When `enrs.standards.valuesets` (generated from the ANS kit) is
importable the double uses it instead of the short built-in tables below (see `codes.py`).
"""

from __future__ import annotations

# --- XML namespaces ---------------------------------------------------------------------------------
SOAP = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
XOP = "http://www.w3.org/2004/08/xop/include"
XDSB = "urn:ihe:iti:xds-b:2007"
LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
HL7 = "urn:hl7-org:v3"

NSMAP_RESPONSE = {"soap": SOAP, "wsa": WSA}

# --- WS-Addressing actions ----------------------------------------------------------------------------
ACTION_ITI41 = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
ACTION_ITI43 = "urn:ihe:iti:2007:RetrieveDocumentSet"
ACTION_ITI18 = "urn:ihe:iti:2007:RegistryStoredQuery"
ACTION_ITI57 = "urn:ihe:iti:2010:UpdateDocumentSet"
ACTION_FAULT = "http://www.w3.org/2005/08/addressing/soap/fault"


def response_action(action: str) -> str:
    return action + "Response"


# --- ebRIM statuses ------------------------------------------------------------------------------------
STATUS_SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
STATUS_FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
STATUS_PARTIAL = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"
SEVERITY_ERROR = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"
SEVERITY_WARNING = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Warning"
APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
ARCHIVED = "urn:asip:ci-sis:2010:StatusType:Archived"  # DMP-specific (ITI-57 availability update)
DELETED = "urn:asip:ci-sis:2010:StatusType:Deleted"
AVAILABILITY_STATUSES = (APPROVED, DEPRECATED, ARCHIVED, DELETED)

# --- XDS object types, classification schemes and identification schemes -----------------------------
DOCUMENT_ENTRY_STABLE = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
SUBMISSION_SET_NODE = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
ASSOC_HAS_MEMBER = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
ASSOC_RPLC = "urn:ihe:iti:2007:AssociationType:RPLC"
ASSOC_UPDATE_AVAILABILITY = "urn:ihe:iti:2010:AssociationType:UpdateAvailabilityStatus"

DE_CLASS_CODE = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
DE_CONFIDENTIALITY = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
DE_FORMAT_CODE = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
DE_FACILITY_TYPE = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"
DE_PRACTICE_SETTING = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead"
DE_TYPE_CODE = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
DE_EVENT_CODE = "urn:uuid:2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4"
DE_AUTHOR = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
DE_PATIENT_ID = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
DE_UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"

SS_UNIQUE_ID = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"
SS_SOURCE_ID = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
SS_PATIENT_ID = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
SS_CONTENT_TYPE = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"

# Document-entry classifications: scheme → (attribute name used in messages, value-set name, required)
DE_CODED: dict[str, tuple[str, str, bool]] = {
    DE_CLASS_CODE: ("classCode", "class_code", True),
    DE_TYPE_CODE: ("typeCode", "type_code", True),
    DE_CONFIDENTIALITY: ("confidentialityCode", "confidentiality", True),
    DE_FORMAT_CODE: ("formatCode", "format_code", True),
    DE_FACILITY_TYPE: ("healthcareFacilityTypeCode", "facility_type", True),
    DE_PRACTICE_SETTING: ("practiceSettingCode", "practice_setting", True),
}

# --- Stored queries ------------------------------------------------------------------------------------
FIND_DOCUMENTS = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
GET_DOCUMENTS = "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4"

# --- French identifiers ---------------------------------------------------------------------------------
INS_OIDS = {"1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9", "1.2.250.1.213.1.4.10", "1.2.250.1.213.1.4.11"}
CONFIDENTIALITY_DMP_SYSTEM = "1.2.250.1.213.1.1.4.13"
VISIBILITY_CODES = ("MASQUE_PS", "INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX")

# --- Built-in code tables (fallback when enrs.standards.valuesets is absent): value set → {(code, system)}
_LOINC = "2.16.840.1.113883.6.1"
_HL7_CONF = "2.16.840.1.113883.5.25"
_J02 = "1.2.250.1.71.4.2.4"
_J04 = "1.2.250.1.213.1.1.4.9"
_A03 = "1.2.250.1.213.1.1.4.1"
_A05 = "1.2.250.1.213.1.1.4.12"
_IHE_FORMAT = "1.3.6.1.4.1.19376.1.2.3"
_FR_FORMAT = "1.2.250.1.213.1.1.4.2.282"

_LOINC_TYPES = (
    "11488-4", "11490-0", "34112-3", "11502-2", "15507-7", "34874-8", "77436-4", "34749-2", "34794-8",
    "60568-3", "85208-7", "75496-0", "96349-6", "18748-4", "18761-7", "34133-9", "60591-5", "57833-6",
    "87273-9", "59284-0",
)  # fmt: skip
_J04_CODES = (
    "AMBULATOIRE",
    "AMO",
    "DEPISTAGE",
    "ESSMS",
    "ETABLISSEMENT",
    "HAD",
    "MAD",
    "PALLIATIF",
    "SAD",
    "SAMU_SMUR",
)

BUILTIN_CODES: dict[str, set[tuple[str, str]]] = {
    "confidentiality": {("N", _HL7_CONF), ("R", _HL7_CONF), ("V", _HL7_CONF)}
    | {(code, CONFIDENTIALITY_DMP_SYSTEM) for code in VISIBILITY_CODES},
    "class_code": {(c, _A03) for c in ("10", "11", "31", "42", "43", "44", "45", "52", "60", "90", "95")},
    "type_code": {(c, _LOINC) for c in _LOINC_TYPES}
    | {
        (c, _A05)
        for c in ("IMG-KOS", "PRESC-BIO", "PRESC-KINE", "PRESC-INF", "EXPPAT_1", "EXPPAT_2", "EXPPAT_3")
    },
    "format_code": {
        ("urn:ihe:iti:xds-sd:pdf:2008", _IHE_FORMAT),
        ("urn:ihe:iti:xds-sd:text:2008", _IHE_FORMAT),
        ("urn:ihe:iti-fr:xds-sd:rtf:2010", _IHE_FORMAT),
        ("urn:ihe:iti-fr:xds-sd:jpeg:2010", _IHE_FORMAT),
        ("urn:ihe:iti-fr:xds-sd:tiff:2010", _IHE_FORMAT),
        ("urn:asip:ci-sis:ldl-ees:2017", _FR_FORMAT),
        ("urn:asip:ci-sis:vsm:2012", _FR_FORMAT),
    },
    "facility_type": {(f"SA{n:02d}", _J02) for n in range(1, 100)}
    | {("EXP_PATIENT", "1.2.250.1.213.1.1.4.6"), ("SNR", "1.2.250.1.213.1.1.4.6")},
    "practice_setting": {(c, _J04) for c in _J04_CODES},
}
