"""French regions and departments (INSEE COG, 2016 regions). Pure data, no Django import.

Coordinates are an approximate centre of each department (WGS84), used to place synthetic demo
communes and as a map default; they are not an official geography.
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Department:
    code: str  # INSEE code: "01".."95", "2A", "2B", "971".."976"
    name: str
    region_code: str
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Region:
    code: str
    name: str


REGIONS: dict[str, Region] = {
    r.code: r
    for r in (
        Region("01", "Guadeloupe"),
        Region("02", "Martinique"),
        Region("03", "Guyane"),
        Region("04", "La Réunion"),
        Region("06", "Mayotte"),
        Region("11", "Île-de-France"),
        Region("24", "Centre-Val de Loire"),
        Region("27", "Bourgogne-Franche-Comté"),
        Region("28", "Normandie"),
        Region("32", "Hauts-de-France"),
        Region("44", "Grand Est"),
        Region("52", "Pays de la Loire"),
        Region("53", "Bretagne"),
        Region("75", "Nouvelle-Aquitaine"),
        Region("76", "Occitanie"),
        Region("84", "Auvergne-Rhône-Alpes"),
        Region("93", "Provence-Alpes-Côte d'Azur"),
        Region("94", "Corse"),
    )
}

_D = Department
DEPARTMENTS: dict[str, Department] = {
    d.code: d
    for d in (
        _D("01", "Ain", "84", 46.10, 5.35),
        _D("02", "Aisne", "32", 49.56, 3.56),
        _D("03", "Allier", "84", 46.39, 3.19),
        _D("04", "Alpes-de-Haute-Provence", "93", 44.10, 6.24),
        _D("05", "Hautes-Alpes", "93", 44.66, 6.26),
        _D("06", "Alpes-Maritimes", "93", 43.94, 7.12),
        _D("07", "Ardèche", "84", 44.75, 4.42),
        _D("08", "Ardennes", "44", 49.62, 4.63),
        _D("09", "Ariège", "76", 42.92, 1.50),
        _D("10", "Aube", "44", 48.30, 4.16),
        _D("11", "Aude", "76", 43.10, 2.41),
        _D("12", "Aveyron", "76", 44.28, 2.68),
        _D("13", "Bouches-du-Rhône", "93", 43.54, 5.09),
        _D("14", "Calvados", "28", 49.09, -0.36),
        _D("15", "Cantal", "84", 45.05, 2.67),
        _D("16", "Charente", "75", 45.72, 0.20),
        _D("17", "Charente-Maritime", "75", 45.78, -0.67),
        _D("18", "Cher", "24", 47.06, 2.49),
        _D("19", "Corrèze", "75", 45.36, 1.88),
        _D("21", "Côte-d'Or", "27", 47.42, 4.77),
        _D("22", "Côtes-d'Armor", "53", 48.44, -2.86),
        _D("23", "Creuse", "75", 46.09, 2.02),
        _D("24", "Dordogne", "75", 45.10, 0.74),
        _D("25", "Doubs", "27", 47.16, 6.36),
        _D("26", "Drôme", "84", 44.68, 5.17),
        _D("27", "Eure", "28", 49.11, 1.00),
        _D("28", "Eure-et-Loir", "24", 48.39, 1.37),
        _D("29", "Finistère", "53", 48.26, -4.06),
        _D("2A", "Corse-du-Sud", "94", 41.86, 8.99),
        _D("2B", "Haute-Corse", "94", 42.39, 9.21),
        _D("30", "Gard", "76", 43.99, 4.18),
        _D("31", "Haute-Garonne", "76", 43.36, 1.17),
        _D("32", "Gers", "76", 43.69, 0.45),
        _D("33", "Gironde", "75", 44.83, -0.57),
        _D("34", "Hérault", "76", 43.58, 3.37),
        _D("35", "Ille-et-Vilaine", "53", 48.15, -1.64),
        _D("36", "Indre", "24", 46.78, 1.58),
        _D("37", "Indre-et-Loire", "24", 47.26, 0.69),
        _D("38", "Isère", "84", 45.26, 5.58),
        _D("39", "Jura", "27", 46.73, 5.70),
        _D("40", "Landes", "75", 43.97, -0.78),
        _D("41", "Loir-et-Cher", "24", 47.62, 1.43),
        _D("42", "Loire", "84", 45.73, 4.17),
        _D("43", "Haute-Loire", "84", 45.13, 3.81),
        _D("44", "Loire-Atlantique", "52", 47.35, -1.69),
        _D("45", "Loiret", "24", 47.91, 2.34),
        _D("46", "Lot", "76", 44.62, 1.61),
        _D("47", "Lot-et-Garonne", "75", 44.37, 0.46),
        _D("48", "Lozère", "76", 44.52, 3.50),
        _D("49", "Maine-et-Loire", "52", 47.39, -0.56),
        _D("50", "Manche", "28", 49.08, -1.33),
        _D("51", "Marne", "44", 48.95, 4.24),
        _D("52", "Haute-Marne", "44", 48.11, 5.23),
        _D("53", "Mayenne", "52", 48.15, -0.66),
        _D("54", "Meurthe-et-Moselle", "44", 48.79, 6.16),
        _D("55", "Meuse", "44", 48.99, 5.38),
        _D("56", "Morbihan", "53", 47.85, -2.81),
        _D("57", "Moselle", "44", 49.04, 6.66),
        _D("58", "Nièvre", "27", 47.12, 3.50),
        _D("59", "Nord", "32", 50.45, 3.22),
        _D("60", "Oise", "32", 49.41, 2.42),
        _D("61", "Orne", "28", 48.62, 0.13),
        _D("62", "Pas-de-Calais", "32", 50.49, 2.29),
        _D("63", "Puy-de-Dôme", "84", 45.73, 3.14),
        _D("64", "Pyrénées-Atlantiques", "75", 43.26, -0.76),
        _D("65", "Hautes-Pyrénées", "76", 43.05, 0.16),
        _D("66", "Pyrénées-Orientales", "76", 42.60, 2.52),
        _D("67", "Bas-Rhin", "44", 48.67, 7.55),
        _D("68", "Haut-Rhin", "44", 47.86, 7.27),
        _D("69", "Rhône", "84", 45.87, 4.64),
        _D("70", "Haute-Saône", "27", 47.64, 6.09),
        _D("71", "Saône-et-Loire", "27", 46.64, 4.54),
        _D("72", "Sarthe", "52", 47.99, 0.22),
        _D("73", "Savoie", "84", 45.48, 6.44),
        _D("74", "Haute-Savoie", "84", 46.04, 6.43),
        _D("75", "Paris", "11", 48.86, 2.35),
        _D("76", "Seine-Maritime", "28", 49.66, 1.03),
        _D("77", "Seine-et-Marne", "11", 48.63, 2.93),
        _D("78", "Yvelines", "11", 48.82, 1.84),
        _D("79", "Deux-Sèvres", "75", 46.56, -0.32),
        _D("80", "Somme", "32", 49.96, 2.28),
        _D("81", "Tarn", "76", 43.79, 2.17),
        _D("82", "Tarn-et-Garonne", "76", 44.09, 1.28),
        _D("83", "Var", "93", 43.46, 6.22),
        _D("84", "Vaucluse", "93", 44.01, 5.18),
        _D("85", "Vendée", "52", 46.67, -1.30),
        _D("86", "Vienne", "75", 46.56, 0.46),
        _D("87", "Haute-Vienne", "75", 45.89, 1.24),
        _D("88", "Vosges", "44", 48.20, 6.38),
        _D("89", "Yonne", "27", 47.84, 3.56),
        _D("90", "Territoire de Belfort", "27", 47.63, 6.93),
        _D("91", "Essonne", "11", 48.52, 2.24),
        _D("92", "Hauts-de-Seine", "11", 48.85, 2.25),
        _D("93", "Seine-Saint-Denis", "11", 48.91, 2.48),
        _D("94", "Val-de-Marne", "11", 48.78, 2.47),
        _D("95", "Val-d'Oise", "11", 49.08, 2.13),
        _D("971", "Guadeloupe", "01", 16.19, -61.58),
        _D("972", "Martinique", "02", 14.65, -61.02),
        _D("973", "Guyane", "03", 4.00, -53.00),
        _D("974", "La Réunion", "04", -21.12, 55.53),
        _D("976", "Mayotte", "06", -12.82, 45.15),
    )
}


def region_name(code: str) -> str:
    region = REGIONS.get(code)
    return region.name if region else f"région {code}"


def departments_of(region_code: str) -> list[Department]:
    return [d for d in DEPARTMENTS.values() if d.region_code == region_code]
