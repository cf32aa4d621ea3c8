"""Vector tests of the pure format code of the imports: Lambert-93, encoding detection, line reading, the RPPS
and FINESS extraction parsers. No database."""

import io
import math

import pytest

from annuaire.standards import finess_extract, lambert93, rpps_extract
from annuaire.standards.finess_extract import FinessGeo, FinessRowParser, FinessSite
from annuaire.standards.nomenclatures import nomenclatures
from annuaire.standards.rpps_extract import (
    COLUMNS,
    ActivityRecord,
    EncodingSniffer,
    ExtractFormatError,
    Line,
    Rejection,
    RppsRowParser,
)

HEADER = "|".join(COLUMNS) + "|"

# --- Lambert-93 -------------------------------------------------------------------------------------------


def test_lambert93_constants_are_those_published_by_ign() -> None:
    # IGN's constants for Lambert-93 (n, C, Ys), as quoted by its conversion notes and many implementations.
    assert lambert93.K.n == pytest.approx(0.7256077650532670, abs=1e-12)
    assert lambert93.K.c == pytest.approx(11_754_255.426096, abs=1e-3)
    assert lambert93.K.rho0 + lambert93.FALSE_NORTHING == pytest.approx(12_655_612.049876, abs=1e-3)


def test_lambert93_origin_is_46_5_north_3_east() -> None:
    # By definition (EPSG:2154): the false origin (700 000, 6 600 000) is at 46°30'N on the 3°E meridian.
    latitude, longitude = lambert93.to_lat_lon(700_000, 6_600_000)
    assert latitude == pytest.approx(46.5, abs=1e-10)
    assert longitude == pytest.approx(3.0, abs=1e-10)


@pytest.mark.parametrize(
    ("x", "y", "latitude", "longitude", "tolerance"),
    [
        # A FINESS site's Lambert-93 pair and its WGS84 position, from a third-party FINESS parser's tests.
        (882_408.3, 6_543_019.6, 45.96240165432614, 5.355651287573366, 1e-9),
        # The Eiffel Tower, 48.8584 N 2.2945 E = X 648 237, Y 6 862 272 (converter page, rounded to metres).
        (648_237, 6_862_272, 48.8584, 2.2945, 2e-5),
    ],
)
def test_lambert93_to_lat_lon_reference_points(
    x: float, y: float, latitude: float, longitude: float, tolerance: float
) -> None:
    got = lambert93.to_lat_lon(x, y)
    assert got[0] == pytest.approx(latitude, abs=tolerance)
    assert got[1] == pytest.approx(longitude, abs=tolerance)


@pytest.mark.parametrize(
    ("latitude", "longitude"), [(48.8530, 2.3499), (43.2965, 5.3698), (51.05, 2.37), (41.9, 8.7)]
)
def test_lambert93_round_trip(latitude: float, longitude: float) -> None:
    x, y = lambert93.from_lat_lon(latitude, longitude)
    assert lambert93.is_plausible(x, y)
    back = lambert93.to_lat_lon(x, y)
    assert math.isclose(back[0], latitude, abs_tol=1e-10)
    assert math.isclose(back[1], longitude, abs_tol=1e-10)


def test_lambert93_notre_dame_de_paris() -> None:
    # Notre-Dame de Paris (48.8530 N, 2.3499 E) lies at about X 652 500, Y 6 861 900 in Lambert-93.
    x, y = lambert93.from_lat_lon(48.8530, 2.3499)
    assert 652_000 < x < 653_000
    assert 6_861_500 < y < 6_862_500


# --- Encoding detection and lines ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b"Nom|Pr\xc3\xa9nom\n"], "utf-8"),
        ([b"Nom|Pr\xe9nom\n"], "windows-1252"),
        ([b"plain ascii\n"], "utf-8"),
        ([b"\xef\xbb\xbfNom|Pr\xc3\xa9nom\n"], "utf-8-sig"),
        ([b"\xef", b"\xbb", b"\xbfNom\n"], "utf-8-sig"),  # a BOM split between reads
        ([b"Pr\xc3", b"\xa9nom\n"], "utf-8"),  # "é" split between two buffers is still UTF-8
        ([b"C\x9cur de ville\n"], "windows-1252"),  # "œ" is 0x9C in Windows-1252 (not in Latin-1)
        ([b"caf\xc3"], "utf-8"),  # cut inside the last character: UTF-8, truncated
        ([], "utf-8"),
        ([b"\xef\xbb"], "utf-8"),  # two bytes of a BOM and nothing else: a UTF-8 character cut short
        ([b"\xef\xbbA"], "windows-1252"),  # "ï»A": not UTF-8
    ],
)
def test_encoding_sniffer(chunks: list[bytes], expected: str) -> None:
    assert rpps_extract.detect_encoding(chunks) == expected


def test_the_sniffer_reports_a_cut_character() -> None:
    sniffer = EncodingSniffer()
    sniffer.feed(b"Cl\xc3")
    assert sniffer.encoding() == "utf-8"
    assert sniffer.incomplete_tail


def test_iter_lines_numbers_decodes_and_reports_bytes() -> None:
    data = b"\xef\xbb\xbfen-t\xc3\xaate\r\nligne \xff deux\nsans\x00nul\ndernier"
    read: list[int] = []
    lines = list(rpps_extract.iter_lines(io.BytesIO(data), "utf-8-sig", on_bytes=read.append, report_every=2))
    assert [line.number for line in lines] == [1, 2, 3, 4]
    assert lines[0].text == "en-tête"  # BOM and CRLF gone
    assert lines[1].text is None  # not UTF-8: rejected by the caller, with the line number
    assert lines[2].text == "sansnul"  # NUL cannot go into PostgreSQL
    assert [line.terminated for line in lines] == [True, True, True, False]
    assert sum(read) == len(data)


def test_undecodable_line_rejection() -> None:
    line = Line(7, None, b"CO\x81RRE", True)
    rejection = rpps_extract.undecodable(line, "windows-1252")
    assert (rejection.line, rejection.reason, rejection.kind) == (
        7,
        "caractères illisibles en Windows-1252",
        "encoding",
    )


# --- RPPS header ----------------------------------------------------------------------------------------


def test_header_with_trailing_separator() -> None:
    header = rpps_extract.parse_header(HEADER)
    assert header.width == 56
    assert header.positions["idnat"] == 2
    assert header.positions["role"] == 52


def test_header_of_older_extractions_without_role_columns() -> None:
    header = rpps_extract.parse_header("|".join(COLUMNS[:52]) + "|")
    assert header.width == 52
    assert "role" not in header.positions


def test_header_is_matched_loosely_and_by_name() -> None:
    shuffled = list(reversed(COLUMNS))
    shuffled[shuffled.index("Nom d'exercice")] = "NOM D\u2019EXERCICE"  # case, typographic apostrophe
    shuffled[shuffled.index("Libellé profession")] = "Libelle  profession"  # no accent, two spaces
    header = rpps_extract.parse_header("\ufeff" + "|".join(shuffled))
    assert header.positions["last_name"] == shuffled.index("NOM D\u2019EXERCICE")
    assert header.positions["idnat"] == 53


def test_header_missing_columns_is_refused_with_their_names() -> None:
    columns = [c for c in COLUMNS if c not in ("Code profession", "Nom d'exercice")]
    with pytest.raises(
        ExtractFormatError, match="colonnes absentes : « Nom d'exercice », « Code profession »"
    ):
        rpps_extract.parse_header("|".join(columns))


@pytest.mark.parametrize(
    ("first_line", "message"),
    [
        ("finess;etalab;109;2025-01-15", "extraction FINESS.*import_finess"),
        ("Nom;Prénom;RPPS;Profession", "première ligne devrait être l'en-tête"),
    ],
)
def test_header_of_another_file_is_refused(first_line: str, message: str) -> None:
    with pytest.raises(ExtractFormatError, match=message):
        rpps_extract.parse_header(first_line)


# --- RPPS rows ------------------------------------------------------------------------------------------


def line(**values: str) -> str:
    unknown = set(values) - set(COLUMNS)
    assert not unknown, unknown
    return "|".join(values.get(column, "") for column in COLUMNS) + "|"


def physician(**overrides: str) -> dict[str, str]:
    values = {
        "Type d'identifiant PP": "8",
        "Identifiant PP": "10600000011",
        "Identification nationale PP": "810600000011",
        "Code civilité": "MME",
        "Nom d'exercice": "LE GALL",
        "Prénom d'exercice": "Anne-Sophie",
        "Code profession": "10",
        "Libellé profession": "Médecin",
        "Code catégorie professionnelle": "C",
        "Code type savoir-faire": "S",
        "Code savoir-faire": "SM54",
        "Libellé savoir-faire": "Médecine Générale",
        "Code mode exercice": "L",
        "Identifiant technique de la structure": "C35100000101",
        "Raison sociale site": "CABINET DU DR LE GALL",
        "Numéro Voie (coord. structure)": "12",
        "Indice répétition voie (coord. structure)": "B",
        "Libellé type de voie (coord. structure)": "Rue",
        "Libellé Voie (coord. structure)": "DE LA MONNAIE",
        "Code postal (coord. structure)": "35000",
        "Code commune (coord. structure)": "35238",
        "Code secteur d'activité": "SA07",
    }
    values.update(overrides)
    return values


@pytest.fixture
def parser() -> RppsRowParser:
    return RppsRowParser(rpps_extract.parse_header(HEADER), nomenclatures())


def test_accepted_row(parser: RppsRowParser) -> None:
    record = parser.parse(2, line(**physician()))
    assert isinstance(record, ActivityRecord)
    assert (record.idnat_ps, record.identifier_type, record.rpps, record.adeli) == (
        "810600000011",
        "RPPS",
        "10600000011",
        "",
    )
    assert record.rpps_key_valid
    assert (record.last_name, record.first_name, record.civility_code) == ("LE GALL", "Anne-Sophie", "MME")
    assert (record.profession_code, record.profession_label, record.category_code) == ("10", "Médecin", "C")
    assert (record.specialty_code, record.specialty_label, record.specialty_rank) == (
        "SM54",
        "Médecine Générale",
        0,
    )
    assert (record.exercise_mode, record.role_code) == (
        "L",
        "FON-AU",
    )  # no role given: "Fonction non définie"
    assert record.site is not None
    assert record.site.key == "TC35100000101"
    assert record.site.address_line == "12B Rue DE LA MONNAIE"
    assert (record.site.postal_code, record.site.commune_code) == ("35000", "35238")
    assert (record.site.sector_code, record.site.sector_label) == ("SA07", "Cabinet individuel")


def test_a_failing_rpps_key_is_a_warning_not_a_rejection(parser: RppsRowParser) -> None:
    # 10003461033 is an ANS sample RPPS whose Luhn key fails.
    record = parser.parse(
        2,
        line(**physician(**{"Identifiant PP": "10003461033", "Identification nationale PP": "810003461033"})),
    )
    assert isinstance(record, ActivityRecord)
    assert record.rpps_key_valid is False


def test_adeli_professional_without_activity(parser: RppsRowParser) -> None:
    values = {
        "Type d'identifiant PP": "0",
        "Identifiant PP": "351234567",
        "Identification nationale PP": "0351234567",
        "Nom d'exercice": "ROUXEL",
        "Code profession": "96",
    }
    record = parser.parse(3, line(**values))
    assert isinstance(record, ActivityRecord)
    assert (record.identifier_type, record.adeli, record.rpps, record.rpps_key_valid) == (
        "ADELI",
        "351234567",
        "",
        True,
    )
    assert record.site is None
    assert (record.exercise_mode, record.role_code, record.specialty_rank) == ("", "", 2)


def test_site_fallbacks(parser: RppsRowParser) -> None:
    values = physician(
        **{
            "Identifiant technique de la structure": "",
            "Numéro SIRET site": "21000001400014",
            "Raison sociale site": "",
            "Enseigne commerciale site": "",
            "Code postal (coord. structure)": "",
            "Bureau cedex (coord. structure)": "35510 CESSON SEVIGNE",
            "Code commune (coord. structure)": "97801",
            "Code rôle": "FON-17",
        }
    )
    record = parser.parse(4, line(**values))
    assert isinstance(record, ActivityRecord)
    assert record.site is not None
    assert record.site.key == "S21000001400014"
    assert (record.site.siret, record.site.siren) == ("21000001400014", "210000014")
    assert record.site.name == "Structure 21000001400014"
    assert record.site.postal_code == "35510"
    assert record.role_code == "FON-17"


def test_a_line_without_the_trailing_separator_reads_too(parser: RppsRowParser) -> None:
    assert isinstance(parser.parse(2, line(**physician())[:-1]), ActivityRecord)


@pytest.mark.parametrize(
    ("overrides", "reason", "has_key"),
    [
        (
            {"Identifiant PP": "1060000001"},
            "numéro RPPS mal formé « 1060000001 » : 11 chiffres attendus",
            False,
        ),
        (
            {"Identification nationale PP": "810600000029"},
            "identification nationale PP « 810600000029 » incohérente avec l'identifiant : "
            "« 810600000011 » attendu",
            False,
        ),
        ({"Type d'identifiant PP": "3"}, "type d'identifiant PP inconnu « 3 » (8 = RPPS, 0 = ADELI)", False),
        (
            {
                "Type d'identifiant PP": "0",
                "Identifiant PP": "35123456",
                "Identification nationale PP": "035123456",
            },
            "numéro ADELI mal formé « 35123456 » : 9 chiffres attendus",
            False,
        ),
        ({"Nom d'exercice": "  "}, "nom d'exercice vide", True),
        ({"Code profession": "99"}, "code profession inconnu « 99 » (TRE_G15)", True),
        (
            {"Code catégorie professionnelle": "Z"},
            "code catégorie professionnelle inconnu « Z » (TRE_R09)",
            True,
        ),
        ({"Code civilité": "MLLE"}, "code civilité inconnu « MLLE » (TRE_R81)", True),
        ({"Code mode exercice": "X"}, "code mode d'exercice inconnu « X » (TRE_R23)", True),
        ({"Code mode exercice": ""}, "activité en structure sans mode d'exercice", True),
        ({"Code savoir-faire": "SM54SM54SM54"}, "code savoir-faire trop long « SM54SM54SM54 »", True),
        (
            {"Numéro FINESS site": "352000013"},
            "numéro FINESS site « 352000013 » : clé de contrôle (Luhn) fausse",
            True,
        ),
        (
            {"Numéro FINESS site": "35200001"},
            "numéro FINESS site mal formé « 35200001 » : 9 caractères attendus",
            True,
        ),
        (
            {"Numéro FINESS établissement juridique": "352990015"},
            "numéro FINESS établissement juridique « 352990015 » : clé de contrôle (Luhn) fausse",
            True,
        ),
        (
            {"Numéro SIRET site": "21000005500018"},
            "numéro SIRET site invalide « 21000005500018 » (14 chiffres, clé de Luhn)",
            True,
        ),
        (
            {"Numéro SIREN site": "210000015"},
            "numéro SIREN site invalide « 210000015 » (9 chiffres, clé de Luhn)",
            True,
        ),
        (
            {"Numéro SIRET site": "21000005500017", "Numéro SIREN site": "210000014"},
            "SIRET « 21000005500017 » et SIREN « 210000014 » du site incohérents",
            True,
        ),
        (
            {"Identifiant technique de la structure": "C 351"},
            "identifiant technique de structure invalide « C 351 »",
            True,
        ),
        ({"Code secteur d'activité": "SA99"}, "code secteur d'activité inconnu « SA99 » (TRE_R02)", True),
        ({"Code rôle": "fonction-01"}, "code rôle invalide « fonction-01 »", True),
    ],
)
def test_rejection_rules(
    parser: RppsRowParser, overrides: dict[str, str], reason: str, has_key: bool
) -> None:
    result = parser.parse(9, line(**physician(**overrides)))
    assert isinstance(result, Rejection)
    assert (result.line, result.reason) == (9, reason)
    # Once the identity is read, a rejection still names the professional (who is then not "absent").
    assert result.key == ("810600000011" if has_key else "")
    assert result.raw == line(**physician(**overrides))


def test_wrong_column_count(parser: RppsRowParser) -> None:
    result = parser.parse(17, "8|10600000011|810600000011|||MME")
    assert isinstance(result, Rejection)
    assert result.reason == "nombre de colonnes incorrect : 6 au lieu de 56"
    assert result.kind == rpps_extract.COLUMN_COUNT


def test_truncation_check() -> None:
    short = Rejection(
        30, "nombre de colonnes incorrect : 20 au lieu de 56", "", kind=rpps_extract.COLUMN_COUNT
    )
    rpps_extract.check_not_truncated(
        Line(30, "x", b"x", True), short
    )  # a break ends it: an ordinary bad line
    rpps_extract.check_not_truncated(Line(30, "x", b"x", False), object())  # complete line, no final break
    rpps_extract.check_not_truncated(None, None)  # header only
    with pytest.raises(
        ExtractFormatError, match=r"Fichier tronqué : la dernière ligne \(n° 30\) est incomplète"
    ):
        rpps_extract.check_not_truncated(Line(30, "x", b"x", False), short)


# --- FINESS ---------------------------------------------------------------------------------------------

# A real line of the national file (CH de Fleyriat), as published.
FLEYRIAT = (
    "structureet;010000024;010780054;CH DE FLEYRIAT;CENTRE HOSPITALIER DE BOURG-EN-BRESSE FLEYRIAT;;;900;RTE;"
    "DE PARIS;;;451;01;AIN;01440 VIRIAT;0474454647;0474454114;355;Centre Hospitalier (C.H.);1102;"
    "Centres Hospitaliers;26010004500012;8610Z;03;ARS établissements Publics de santé dotation globale;1;"
    "Etablissement public de santé;1979-02-13;1979-02-13;2020-02-04;"
)


def test_finess_header() -> None:
    assert finess_extract.parse_header("finess;etalab;111;2026-05-12").version == "etalab;111;2026-05-12"
    with pytest.raises(ExtractFormatError, match=r"extraction RPPS.*import_rpps"):
        finess_extract.parse_header(HEADER)
    with pytest.raises(ExtractFormatError, match="finess;etalab;"):
        finess_extract.parse_header("Nom;Prénom;RPPS")


def test_finess_real_line() -> None:
    site = FinessRowParser().parse(2, FLEYRIAT)
    assert site == FinessSite(
        line=2,
        finess_et="010000024",
        finess_ej="010780054",
        name="CENTRE HOSPITALIER DE BOURG-EN-BRESSE FLEYRIAT",
        address_line="900 RTE DE PARIS",
        postal_code="01440",
        commune_code="01451",
        category_code="355",
        category_label="Centre Hospitalier (C.H.)",
        siret="26010004500012",
        siren="260100045",
    )


def test_finess_line_of_older_extractions_without_numuai() -> None:
    assert isinstance(FinessRowParser().parse(2, FLEYRIAT[:-1]), FinessSite)


def test_finess_quoted_fields() -> None:
    text = (
        'structureet;352000061;;"LIEU DE VIE ""TY GLAZ""";"LIEU DE VIE ET D\'ACCUEIL ""TY GLAZ""";;;1;LD;'
        "KERGUELEN;;;238;35;ILLE ET VILAINE;35000 RENNES;;;462;Lieux de Vie et d'Accueil;;;;;;;;;"
        "2019-04-01;2019-03-18;2025-05-07;"
    )
    site = FinessRowParser().parse(9, text)
    assert isinstance(site, FinessSite)
    assert site.name == 'LIEU DE VIE ET D\'ACCUEIL "TY GLAZ"'
    assert site.address_line == "1 LD KERGUELEN"


@pytest.mark.parametrize(
    ("department", "commune", "insee"),
    [("01", "451", "01451"), ("2A", "004", "2A004"), ("9D", "411", "97411"), ("9F", "606", "97606"),
     ("9J", "613", "98613"), ("9Z", "001", ""), ("35", "", ""), ("35", "23", "")],
)  # fmt: skip
def test_finess_insee_code(department: str, commune: str, insee: str) -> None:
    assert finess_extract.insee_code(department, commune) == insee


def test_finess_geolocation_lambert93_and_other_projections() -> None:
    parser = FinessRowParser()
    geo = parser.parse(
        17,
        "geolocalisation;010000024;870215.7;6571590.5;1,ATLASANTE,100,IGN,BD_ADRESSE,V2.2,LAMBERT_93;2021-01-04",
    )
    assert isinstance(geo, FinessGeo)
    assert (geo.latitude, geo.longitude) == (46.222745, 5.208596)  # Viriat, Ain
    overseas = parser.parse(
        18,
        "geolocalisation;970400024;338637.0;7688924.0;1,ATLASANTE,100,IGN,BD_ADRESSE,V2.2,UTM_N40;2023-11-13",
    )
    assert isinstance(overseas, FinessGeo)
    assert (overseas.latitude, overseas.longitude) == (None, None)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            FLEYRIAT.replace("010000024", "010000025"),
            "numéro FINESS ET « 010000025 » : clé de contrôle (Luhn) fausse",
        ),
        (
            FLEYRIAT.replace("010780054", "0107800"),
            "numéro FINESS EJ mal formé « 0107800 » : 9 caractères attendus",
        ),
        (
            FLEYRIAT.replace("26010004500012", "26010004500013"),
            "numéro SIRET invalide « 26010004500013 » (14 chiffres, clé de Luhn)",
        ),
        (
            FLEYRIAT.replace("CH DE FLEYRIAT;CENTRE HOSPITALIER DE BOURG-EN-BRESSE FLEYRIAT", ";"),
            "raison sociale vide",
        ),
        (FLEYRIAT.replace(";355;", ";C55;"), "code catégorie d'établissement invalide « C55 »"),
        (";".join(FLEYRIAT.split(";")[:20]), "nombre de colonnes incorrect : 20 au lieu de 32"),
        ("structurej;010780054;;CH", "type de ligne inconnu « structurej »"),
        ('structureet;"010000024', "guillemets mal fermés"),
        ("geolocalisation;010000024;abc;6571590.5;x,LAMBERT_93;2021-01-04", "coordonnées illisibles"),
        (
            "geolocalisation;010000024;12;34;x,LAMBERT_93;2021-01-04",
            "coordonnées Lambert-93 hors de la France métropolitaine",
        ),
        ("geolocalisation;010000024;870215.7", "nombre de colonnes incorrect : 3 au lieu de 6"),
    ],
)  # fmt: skip
def test_finess_rejections(text: str, reason: str) -> None:
    result = FinessRowParser().parse(5, text)
    assert isinstance(result, Rejection)
    assert (result.line, result.reason) == (5, reason)


def test_finess_duplicate_et_is_rejected_the_second_time() -> None:
    parser = FinessRowParser()
    assert isinstance(parser.parse(2, FLEYRIAT), FinessSite)
    duplicate = parser.parse(9, FLEYRIAT)
    assert isinstance(duplicate, Rejection)
    assert (duplicate.reason, duplicate.key) == ("FINESS ET 010000024 en double (déjà ligne 2)", "010000024")
