"""Deterministic demo data for the directory, and one demo account per role (``seed_demo``).

Everything is drawn from ``random.Random`` objects seeded from ``(seed, stream name)``: the same seed
gives the same identifiers, names and links, run after run and machine after machine. Identifiers carry
valid keys (FINESS, SIREN, SIRET, RPPS); codes and labels come from the national nomenclatures
(``annuaire/standards/data/nomenclatures.json``); names, streets and communes are synthetic.

:class:`DemoData` is the single row producer; ``annuaire.bulk.write_rows`` writes its stream with
PostgreSQL COPY, or ``bulk_create`` on SQLite. Professionals are produced in chunks: their exercices,
MSSanté addresses and memberships follow each chunk, so memory stays flat at any scale.
"""

import bisect
import itertools
import random
import re
import time
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TypeVar

from django.contrib.auth import password_validation
from django.db import transaction
from django.utils import timezone

from enrs.accounts.models import User
from enrs.accounts.roles import Role
from enrs.accounts.services import user_create
from enrs.audit.services import audit_record
from enrs.core import geo

from .bulk import Method, Progress, Row, Table, flush, reset_sequences, write_rows
from .models import (
    Adherent,
    AdherentStatus,
    College,
    Commune,
    Department,
    Exercice,
    ExerciseMode,
    IdentifierType,
    MailboxAddress,
    MailboxKind,
    Professional,
    Structure,
    StructureKind,
)
from .standards import identifiers
from .standards.nomenclatures import nomenclatures

DEFAULT_SEED = 2025
REFERENCE_DATE = date(2025, 12, 31)  # "today" of the demo: membership dates never pass it


@dataclass(frozen=True)
class Scale:
    name: str
    structures: int  # Structure rows (legal entities + sites), exact
    professionals: int  # exact
    communes_per_department: int
    national: bool = False


SCALES = {
    "small": Scale("small", structures=30, professionals=500, communes_per_department=6),
    "region": Scale("region", structures=300, professionals=20_000, communes_per_department=40),
    "national": Scale(
        "national", structures=30_000, professionals=1_000_000, communes_per_department=60, national=True
    ),
}

# --- Tables written, and the order of the fields in each row --------------------------------------------

DEPARTMENTS = Table(Department, ("id", "code", "name", "region_code"))
COMMUNES = Table(
    Commune, ("id", "insee_code", "name", "department_id", "postal_code", "latitude", "longitude")
)
STRUCTURES = Table(
    Structure,
    (
        "id", "kind", "finess_ej", "finess_et", "legal_entity_id", "siren", "siret", "name",
        "category_code", "category_label", "sector_code", "sector_label", "address_line", "postal_code",
        "commune_id", "latitude", "longitude", "is_active", "created_at", "updated_at",
    ),
)  # fmt: skip
PROFESSIONALS = Table(
    Professional,
    (
        "id", "idnat_ps", "identifier_type", "rpps", "adeli", "civility_code", "last_name", "first_name",
        "profession_code", "profession_label", "category_code", "specialty_code", "specialty_label",
        "is_active", "rpps_key_valid", "created_at", "updated_at",
    ),
)  # fmt: skip
EXERCICES = Table(
    Exercice, ("id", "professional_id", "structure_id", "role_code", "exercise_mode", "created_at")
)
MAILBOXES = Table(MailboxAddress, ("id", "address", "kind", "professional_id", "structure_id", "created_at"))
ADHERENTS = Table(
    Adherent,
    (
        "id", "structure_id", "professional_id", "college", "status", "membership_start", "membership_end",
        "created_at", "updated_at",
    ),
)  # fmt: skip
TABLES = (DEPARTMENTS, COMMUNES, STRUCTURES, PROFESSIONALS, EXERCICES, MAILBOXES, ADHERENTS)
MODELS = tuple(table.model for table in TABLES)

# --- Synthetic French words (no Faker at run time) ---------------------------------------------------

FEMALE_FIRST_NAMES = (
    "Marie", "Nathalie", "Isabelle", "Sylvie", "Catherine", "Françoise", "Valérie", "Christine", "Sandrine",
    "Stéphanie", "Véronique", "Sophie", "Céline", "Chantal", "Patricia", "Anne", "Brigitte", "Julie",
    "Aurélie", "Camille", "Laure", "Émilie", "Claire", "Hélène", "Caroline", "Virginie", "Audrey", "Laetitia",
    "Mélanie", "Élodie", "Pauline", "Manon", "Léa", "Chloé", "Emma", "Inès", "Sarah", "Laura", "Marion",
    "Charlotte", "Anaïs", "Lucie", "Mathilde", "Clémence", "Justine", "Margaux", "Océane", "Agathe",
    "Juliette", "Louise", "Alice", "Solène", "Gaëlle", "Nolwenn", "Maëlle", "Annick", "Soizic", "Morgane",
    "Bérénice", "Noémie",
)  # fmt: skip
MALE_FIRST_NAMES = (
    "Jean", "Philippe", "Michel", "Alain", "Patrick", "Nicolas", "Christophe", "Pierre", "Christian", "Éric",
    "Frédéric", "Laurent", "Stéphane", "David", "Pascal", "Daniel", "Sébastien", "Julien", "Thierry",
    "Olivier", "Bernard", "Thomas", "Alexandre", "Gérard", "Didier", "Dominique", "Vincent", "François",
    "Bruno", "Guillaume", "Jérôme", "Antoine", "Mathieu", "Romain", "Maxime", "Hugo", "Lucas", "Louis",
    "Arthur", "Paul", "Benjamin", "Quentin", "Florian", "Kévin", "Yann", "Erwan", "Gwenaël", "Loïc", "Ronan",
    "Tanguy", "Corentin", "Baptiste", "Adrien", "Clément", "Théo", "Raphaël", "Gabriel", "Yves", "Hervé",
    "Joël",
)  # fmt: skip
LAST_NAMES = (
    "MARTIN", "BERNARD", "THOMAS", "PETIT", "ROBERT", "RICHARD", "DURAND", "DUBOIS", "MOREAU", "LAURENT",
    "SIMON", "MICHEL", "LEFEBVRE", "LEROY", "ROUX", "DAVID", "BERTRAND", "MOREL", "FOURNIER", "GIRARD",
    "BONNET", "DUPONT", "LAMBERT", "FONTAINE", "ROUSSEAU", "VINCENT", "MULLER", "LEFÈVRE", "FAURE", "ANDRÉ",
    "MERCIER", "BLANC", "GUÉRIN", "BOYER", "GARNIER", "CHEVALIER", "FRANÇOIS", "LEGRAND", "GAUTHIER",
    "GARCIA", "PERRIN", "ROBIN", "CLÉMENT", "MORIN", "NICOLAS", "HENRY", "ROUSSEL", "MATHIEU", "GAUTIER",
    "MASSON", "MARCHAND", "DUVAL", "DENIS", "DUMONT", "MARIE", "LEMAIRE", "NOËL", "MEYER", "DUFOUR",
    "MEUNIER", "BRUN", "BLANCHARD", "GIRAUD", "JOLY", "RIVIÈRE", "LUCAS", "BRUNET", "GAILLARD", "BARBIER",
    "ARNAUD", "MARTINEZ", "GÉRARD", "ROCHE", "RENARD", "SCHMITT", "ROY", "LEROUX", "COLIN", "VIDAL", "CARON",
    "PICARD", "ROGER", "FABRE", "AUBERT", "LEMOINE", "RENAUD", "DUMAS", "LACROIX", "OLIVIER", "PHILIPPE",
    "BOURGEOIS", "PIERRE", "BENOÎT", "REY", "LECLERC", "PAYET", "ROLLAND", "LECLERCQ", "GUILLAUME", "LECOMTE",
    "LOPEZ", "JEAN", "DUPUY", "GUILLOT", "HUBERT", "BERGER", "CARPENTIER", "SANCHEZ", "DUPUIS", "MOULIN",
    "LOUIS", "DESCHAMPS", "HUET", "VASSEUR", "PEREZ", "BOUCHER", "FLEURY", "ROYER", "KLEIN", "JACQUET",
    "ADAM", "PARIS", "POIRIER", "MARTY", "AUBRY", "GUYOT", "CARRÉ", "CHARLES", "RENAULT", "CHARPENTIER",
    "MÉNARD", "MAILLARD", "BARON", "BERTIN", "BAILLY", "HERVÉ", "SCHNEIDER", "FERNANDEZ", "LE GALL", "COLLET",
    "LÉGER", "BOUVIER", "JULIEN", "PRÉVOST", "MILLET", "PERROT", "DANIEL", "LE ROUX", "COUSIN", "GERMAIN",
    "BRETON", "BESSON", "LANGLOIS", "RÉMY", "LE GOFF", "PELLETIER", "LÉVÊQUE", "PERRIER", "LEBLANC", "BARRÉ",
    "LEBRUN", "MARCHAL", "WEBER", "MALLET", "HAMON", "BOULANGER", "JACOB", "MONNIER", "MICHAUD", "RODRIGUEZ",
    "GUICHARD", "GILLET", "ÉTIENNE", "GRONDIN", "POULAIN", "TESSIER", "CHEVALLIER", "COLLIN", "CHAUVIN",
    "DA SILVA", "BOUCHET", "GAY", "LEMAÎTRE", "BÉNARD", "MARÉCHAL", "HUMBERT", "REYNAUD", "ANTOINE", "HOARAU",
    "PERRET", "BARTHÉLEMY", "CORDIER", "PICHON", "LEJEUNE", "GILBERT", "LAMY", "DELAUNAY", "PASQUIER",
    "CARLIER", "LAPORTE", "KERMARREC",
)  # fmt: skip
FIRST_NAMES = FEMALE_FIRST_NAMES + MALE_FIRST_NAMES
STREETS = (
    "rue de la Gare", "avenue Jean Jaurès", "rue Victor Hugo", "place de l'Église", "boulevard Pasteur",
    "rue du Général de Gaulle", "rue de la République", "avenue de la Libération", "rue des Écoles",
    "rue Jules Ferry", "rue du Moulin", "chemin des Vignes", "rue de Verdun", "allée des Tilleuls",
    "rue Gambetta", "rue de Paris", "place du Marché", "rue Nationale", "avenue du Maréchal Foch",
    "rue Carnot", "rue de la Mairie", "rue du Château", "impasse des Lilas", "rue Émile Zola",
    "quai des Tanneurs", "rue Anatole France", "rue du Stade", "rue de Bretagne", "boulevard de la Liberté",
    "rue Saint-Michel", "avenue des Sports", "rue Louis Pasteur", "rue Jean Moulin", "rue de l'Hôpital",
    "route de Nantes", "rue des Rosiers", "rue Georges Clemenceau", "rue du Port", "rue Pierre Curie",
    "rue Albert Camus",
)  # fmt: skip
_COMMUNE_STEMS = (
    "Saint-Martin", "Saint-Pierre", "Sainte-Anne", "Saint-Aubin", "Saint-Germain", "Notre-Dame", "Ker",
    "Plou", "Lan", "Ville", "Mont", "Beau", "Bourg", "Château", "Fontaine", "Roche", "Val", "Bois", "Pont",
    "Mesnil", "Clair", "Vieux", "Neuf", "Grand", "Haut", "Bel", "Cour", "Font", "Mar", "Lou",
)  # fmt: skip
_COMMUNE_TAILS = (
    "-sur-Mer", "-la-Forêt", "-le-Grand", "-les-Bains", "-sur-Loire", "-en-Vallée", "-du-Bois", "-des-Champs",
    "villiers", "fleur", "mont", "val", "gastel", "ec", "oët", "-la-Rivière", "-le-Vieux", "-sur-Oust",
    "-de-Bretagne", "-aux-Moines", "court", "bourg", "vil", "-le-Château", "-sous-Bois", "-la-Plaine",
)  # fmt: skip
SAINTS = (
    "Saint-Joseph", "Sainte-Marie", "Saint-Vincent", "Saint-Luc", "Sainte-Thérèse", "Saint-Michel",
    "Saint-Yves", "Sainte-Anne", "Saint-Jean", "Saint-François", "Sainte-Claire", "Saint-Augustin", "Pasteur",
    "Jules Verne", "Les Cèdres", "du Parc", "de l'Europe", "des Ormeaux", "La Sagesse", "du Littoral",
)  # fmt: skip
RESIDENCES = (
    "Les Tilleuls", "Les Glycines", "Le Clos Fleuri", "Les Jardins d'Automne", "Les Hortensias",
    "La Roseraie", "Les Charmilles", "Le Grand Chêne", "Les Camélias", "Ty Maen", "Les Mimosas", "La Source",
    "Les Bruyères", "Le Bois Joli", "Les Magnolias", "L'Ermitage", "La Vallée", "Les Lavandes",
    "Les Peupliers", "Kerlivio",
)  # fmt: skip
PHARMACY_NAMES = (
    "du Centre", "de la Gare", "des Halles", "du Marché", "de la Mairie", "du Port", "de l'Église",
    "des Écoles", "du Château", "de la Place", "du Canal", "des Lices", "de la Poste", "du Stade",
    "des Remparts",
)  # fmt: skip
_PASSWORD_WORDS = (
    "lavande", "granit", "horizon", "goeland", "ardoise", "bruyere", "falaise", "lagune", "menhir", "ressac",
    "cormoran", "embruns", "aubepine", "tourbe", "galet", "phare", "ajonc", "estran", "varech", "bocage",
    "chouette", "ecume", "fougere", "marais", "noisette", "osier", "peuplier", "quartz", "roseau", "sureau",
    "tilleul", "vallon",
)  # fmt: skip

# --- What the directory is made of -----------------------------------------------------------------------


@dataclass(frozen=True)
class StructureSpec:
    key: str
    category: str  # TRE_R66 ("" for structures without FINESS)
    sector: str  # TRE_R02
    names: tuple[
        str, ...
    ]  # templates: {commune} {saint} {residence} {street} {surname} {pharmacy} {department}
    sites: tuple[int, int]  # geographic sites per legal entity (min, max); structures without FINESS: 1 row
    pool: str  # where professionals work: hospital, ehpad, had, pharmacy, lab, cabinet, or "" (nobody)
    college: int | None  # GCS collège when the structure joins
    adhesion_rate: float
    weight: float  # share of the structures drawn at random (after the mandatory ones)
    finess: bool = True
    legal_form: str = ""  # prefix of the legal entity's name (SELARL …)
    org_mailbox_rate: float = 0.0
    app_mailbox: bool = False


S = StructureSpec
STRUCTURE_SPECS = {
    spec.key: spec
    for spec in (
        S("chu", "101", "SA01", ("Centre hospitalier universitaire de {commune}",), (2, 5), "hospital",
          College.PUBLIC_ESTABLISHMENTS, 1.0, 0, org_mailbox_rate=1.0, app_mailbox=True),
        S("ch", "355", "SA01", ("Centre hospitalier de {commune}",), (1, 3), "hospital",
          College.PUBLIC_ESTABLISHMENTS, 0.8, 5, org_mailbox_rate=0.8, app_mailbox=True),
        S("chs", "292", "SA01", ("Centre hospitalier spécialisé de {commune}",), (1, 2), "hospital",
          College.PUBLIC_ESTABLISHMENTS, 0.7, 1, org_mailbox_rate=0.6),
        S("espic", "365", "SA03",
          ("Fondation hospitalière {saint}", "Hôpital privé d'intérêt collectif {saint}"),
          (1, 2), "hospital", College.PUBLIC_ESTABLISHMENTS, 0.7, 1.5, org_mailbox_rate=0.6),
        S("clinique", "365", "SA04", ("Clinique {saint}", "Polyclinique de {commune}"), (1, 2), "hospital",
          College.PRIVATE_ESTABLISHMENTS, 0.5, 4, legal_form="SAS", org_mailbox_rate=0.6),
        S("chirurgie", "128", "SA04", ("Clinique chirurgicale {saint}",), (1, 1), "hospital",
          College.PRIVATE_ESTABLISHMENTS, 0.5, 1.5, legal_form="SAS", org_mailbox_rate=0.5),
        S("ssr", "109", "SA04", ("Centre de soins de suite et de réadaptation {saint}",), (1, 1), "hospital",
          College.PRIVATE_ESTABLISHMENTS, 0.4, 1.5, legal_form="SAS", org_mailbox_rate=0.4),
        S("had", "127", "SA03", ("Hospitalisation à domicile {department}", "HAD du pays de {commune}"),
          (1, 2), "had", College.HOME_HOSPITALISATION, 0.9, 0.8, org_mailbox_rate=0.8),
        S("dialyse", "141", "SA34", ("Centre de dialyse de {commune}",), (1, 1), "hospital",
          College.PRIVATE_ESTABLISHMENTS, 0.4, 1, org_mailbox_rate=0.4),
        S("ehpad", "500", "SA17", ("EHPAD {residence}",), (1, 3), "ehpad",
          College.MEDICO_SOCIAL_ESTABLISHMENTS, 0.5, 8, org_mailbox_rate=0.4),
        S("ssiad", "354", "SA17", ("SSIAD de {commune}",), (1, 1), "ehpad",
          College.MEDICO_SOCIAL_ESTABLISHMENTS, 0.5, 1.5, org_mailbox_rate=0.3),
        S("pharmacie", "620", "SA33", ("Pharmacie {pharmacy}",), (1, 1), "pharmacy", None, 0, 12,
          legal_form="SELARL"),
        S("labo", "611", "SA25", ("Laboratoire de biologie médicale {surname}", "Biolab {commune}"), (1, 4),
          "lab", None, 0, 3, legal_form="SELAS", org_mailbox_rate=0.5),
        S("centre_sante", "124", "SA05", ("Centre de santé de {commune}",), (1, 1), "cabinet",
          College.HEALTH_SERVICES_AND_NETWORKS, 0.6, 2.5, org_mailbox_rate=0.5),
        S("msp", "603", "SA52", ("Maison de santé pluriprofessionnelle de {commune}",), (1, 1), "cabinet",
          College.HEALTH_SERVICES_AND_NETWORKS, 0.6, 3.5, org_mailbox_rate=0.5),
        S("cpts", "604", "SA63", ("CPTS du pays de {commune}",), (1, 1), "",
          College.HEALTH_SERVICES_AND_NETWORKS, 0.9, 0.6, org_mailbox_rate=0.7),
        S("cabinet_groupe", "", "SA08", ("Cabinet médical {street}", "Cabinet paramédical de {commune}",
          "Cabinet de kinésithérapie {street}", "Cabinet infirmier de {commune}"), (1, 1), "cabinet", None, 0,
          18,
          finess=False),
        S("cabinet", "", "SA07", ("Cabinet du docteur {surname}", "Cabinet infirmier {surname}"), (1, 1),
          "cabinet", None, 0, 8, finess=False),
        S("association", "", "SA28", ("Association des usagers de la santé {department}",
          "Association des patients et usagers de {commune}"), (1, 1), "",
          College.PATIENT_ASSOCIATIONS, 1.0, 0.5, finess=False),
    )
}  # fmt: skip
# One of each, in every region, before the random fill: every collège and every pool exists at any scale.
MANDATORY_STRUCTURES = (
    "chu", "ch", "clinique", "had", "ehpad", "pharmacie", "labo", "centre_sante", "msp", "cpts",
    "cabinet_groupe", "association",
)  # fmt: skip
POOLS = ("hospital", "ehpad", "had", "pharmacy", "lab", "cabinet")


@dataclass(frozen=True)
class ProfessionSpec:
    code: str  # TRE_G15
    weight: float  # share of the professionals
    women: float  # share of women
    liberal: float  # share whose main exercice is liberal
    salaried_pools: tuple[tuple[str, float], ...]
    liberal_pool: str
    mail_domain: str  # MSSanté domain of liberal professionals: <mail_domain>.mssante.fr
    mail_rate: float
    specialties: tuple[tuple[str, float], ...] = ()  # (savoir-faire code, weight)
    specialty_rate: float = 0.0


P = ProfessionSpec
# Physicians' specialties (codes of G15_10/SMxx), weighted roughly like the French RPPS.
_PHYSICIAN_SPECIALTIES = (
    ("SM54", 45), ("SM53", 4), ("SM02", 5), ("SM42", 5), ("SM04", 4), ("SM44", 4), ("SM59", 3), ("SM40", 3),
    ("SM20", 3), ("SM38", 3), ("SM15", 2), ("SM24", 2), ("SM32", 2), ("SM41", 2), ("SM18", 2), ("SM08", 2),
    ("SM25", 1.5), ("SM14", 1.5), ("SM34", 1.5), ("SM48", 1.5), ("SM30", 1), ("SM36", 1), ("SM27", 1),
    ("SM16", 1), ("SM12", 1), ("SM03", 1), ("SM01", 0.5),
)  # fmt: skip
BIOLOGY_SPECIALTIES = frozenset({"SM03"})
PROFESSION_SPECS = (
    P("60", 40, 0.86, 0.18, (("hospital", 0.68), ("ehpad", 0.2), ("had", 0.06), ("cabinet", 0.06)), "cabinet",
      "infirmier", 0.2, (("SI01", 2), ("SI02", 1), ("SI03", 1), ("SI04", 1), ("SI05", 1)), 0.02),
    P("10", 22, 0.5, 0.55, (("hospital", 0.9), ("cabinet", 0.1)), "cabinet", "medecin", 0.45,
      _PHYSICIAN_SPECIALTIES, 1.0),
    P("70", 9, 0.5, 0.85, (("hospital", 0.7), ("ehpad", 0.3)), "cabinet", "kine", 0.15),
    P("21", 7, 0.68, 0.35, (("pharmacy", 0.7), ("hospital", 0.2), ("lab", 0.1)), "pharmacy", "pharmacien",
      0.4),
    P("40", 4, 0.48, 0.9, (("hospital", 0.5), ("cabinet", 0.5)), "cabinet", "chirurgien-dentiste", 0.3,
      (("SCD01", 5), ("SCD02", 2), ("SCD03", 1)), 0.08),
    P("50", 2.5, 0.97, 0.3, (("hospital", 1.0),), "cabinet", "sage-femme", 0.35),
    P("98", 3, 0.7, 0.0, (("hospital", 1.0),), "cabinet", "pro", 0.15),
    P("91", 2.5, 0.96, 0.8, (("hospital", 0.6), ("ehpad", 0.4)), "cabinet", "orthophoniste", 0.1),
    P("86", 2, 0.75, 0.0, (("lab", 0.8), ("hospital", 0.2)), "cabinet", "pro", 0.05),
    P("80", 1.5, 0.7, 0.95, (("hospital", 0.5), ("ehpad", 0.5)), "cabinet", "podologue", 0.1),
    P("94", 1.2, 0.88, 0.2, (("hospital", 0.6), ("ehpad", 0.4)), "cabinet", "pro", 0.08),
    P("96", 0.8, 0.88, 0.3, (("hospital", 0.7), ("ehpad", 0.3)), "cabinet", "pro", 0.08),
    P("95", 0.8, 0.93, 0.3, (("hospital", 0.8), ("ehpad", 0.2)), "cabinet", "pro", 0.08),
    P("92", 0.5, 0.85, 0.6, (("hospital", 1.0),), "cabinet", "pro", 0.1),
    P("26", 0.4, 0.45, 0.9, (("hospital", 1.0),), "cabinet", "pro", 0.05),
)  # fmt: skip

ADHERENT_STATUSES = (
    AdherentStatus.MEMBER,
    AdherentStatus.CANDIDATE,
    AdherentStatus.RESIGNED,
    AdherentStatus.EXCLUDED,
)
ADHERENT_STATUS_WEIGHTS = (0.78, 0.10, 0.08, 0.04)
LIBERAL_PHYSICIAN_ADHESION_RATE = 0.04
OTHER_LIBERAL_ADHESION_RATE = 0.02
SECOND_EXERCICE_RATE = 0.15
CHUNK = 5_000  # professionals produced before their exercices, addresses and memberships

# RPPS of the demo: "10" + 8 digits + key, the 8 digits drawn in 90 000 000 to 99 999 999, a range the RPPS
# has not reached, so that no demo identity is a real professional's. The stride is coprime with 10^7:
# serial(i) = BASE + (start + i * STRIDE) mod 10^7 never repeats for i < 10^7.
RPPS_BASE, RPPS_SPAN, RPPS_STRIDE = 90_000_000, 10_000_000, 3_456_789
SIREN_BASE, SIREN_SPAN, SIREN_STRIDE = 10_000_000, 90_000_000, 7_919  # 7 919 is prime, coprime with 9·10^7
FINESS_EJ_FIRST, FINESS_ET_FIRST = 780_000, 100  # typical shapes: 35078xxxx (EJ), 35000xxxx (ET)
FINESS_EJ_FIRST_SHORT, FINESS_ET_FIRST_SHORT = 5_000, 100  # 4-digit serials of overseas prefixes (9701…)


def _rng(seed: int, stream: str) -> random.Random:
    # Demo data: reproducibility is the point, nothing here protects a secret. A string seed is hashed
    # with SHA-512 by `random`, so streams are independent and stable across processes.
    return random.Random(f"enrs-demo:{seed}:{stream}")  # noqa: S311


def _slug(text: str, separator: str = "-") -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    return re.sub(r"[^a-z0-9]+", separator, ascii_text).strip(separator)


_DOMAIN_ABBREVIATIONS = (
    ("centre hospitalier universitaire", "chu"),
    ("centre hospitalier specialise", "chs"),
    ("centre hospitalier", "ch"),
    ("maison de sante pluriprofessionnelle", "msp"),
    ("laboratoire de biologie medicale", "lbm"),
    ("hospitalisation a domicile", "had"),
    ("centre de sante", "cds"),
    ("centre de soins de suite et de readaptation", "ssr"),
    ("hopital prive d'interet collectif", "hpic"),
)


def _domain_stem(name: str) -> str:
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii").lower()
    for long, short in _DOMAIN_ABBREVIATIONS:
        text = text.replace(long, short)
    words = [
        w for w in re.split(r"[^a-z0-9]+", text) if w and w not in {"de", "du", "des", "la", "le", "l", "d"}
    ]
    stem = words[0][:40] if words else ""
    for word in words[1:]:  # whole words only, up to 40 characters
        if len(stem) + 1 + len(word) > 40:
            break
        stem = f"{stem}-{word}"
    return stem


def _cumulative(weights: Sequence[float]) -> list[float]:
    return list(itertools.accumulate(weights))


T = TypeVar("T")


def _pick(rng: random.Random, items: Sequence[T], cumulative: Sequence[float]) -> T:
    return items[bisect.bisect_right(cumulative, rng.random() * cumulative[-1])]


@dataclass(frozen=True)
class ClinicianIdentity:
    """The seeded professional the demo clinician account is linked to (by IdNat_PS)."""

    idnat_ps: str
    first_name: str
    last_name: str
    email: str


@dataclass
class _Commune:
    id: int
    name: str
    postal_code: str
    latitude: float
    longitude: float


@dataclass
class _ProfessionTables:
    """A profession spec with its precomputed lookups (labels, cumulative weights)."""

    spec: ProfessionSpec
    label: str
    salaried_pools: tuple[str, ...]
    salaried_cumulative: list[float]
    specialties: tuple[tuple[str, str], ...]  # (code, label)
    specialty_cumulative: list[float]
    domain_index: int


class DemoData:
    """The demo directory for one scale and one seed, as a stream of ``(table, row)`` for ``write_rows``.

    Ids are allocated from 1: write the stream into empty tables. ``rows()`` is single-use.
    """

    def __init__(
        self, *, scale: Scale, seed: int, departments: Sequence[geo.Department], now: datetime | None = None
    ) -> None:
        if not departments:
            raise ValueError("Aucun département à charger.")
        self.scale = scale
        self.seed = seed
        self.departments = sorted(departments, key=lambda d: d.code)
        self.now = now or timezone.now()
        self.codes = nomenclatures()
        rng = _rng(seed, "departments")
        self.department_weights = {d.code: rng.uniform(0.6, 1.4) for d in self.departments}
        self.clinician: ClinicianIdentity | None = None
        self.expected = {
            DEPARTMENTS: len(self.departments),
            COMMUNES: sum(self._commune_count(d) for d in self.departments),
            STRUCTURES: scale.structures,
            PROFESSIONALS: scale.professionals,
        }
        # Filled while rows are produced.
        self._communes: dict[str, list[_Commune]] = {}
        self._sites: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)  # (dept, pool) → sites
        # MSSanté domain stems, each once; a site is (structure id, domain index). The professions' domains
        # come first, so that no structure takes one of them.
        self._domains: list[str] = list(dict.fromkeys(spec.mail_domain for spec in PROFESSION_SPECS))
        self._domain_taken: set[str] = set(self._domains)
        self._structure_id = 0
        self._mailbox_id = 0
        self._adherent_id = 0
        self._exercice_id = 0
        self._department_ids: dict[str, int] = {}
        self._ej_serials: dict[str, int] = {}
        self._et_serials: dict[str, int] = {}
        self._siren_start = 0
        self._siren_count = 0
        self._site_lists: dict[tuple[str, str], list[tuple[int, int]]] = {}
        # Mailboxes and memberships of structures, written after the structures (one COPY each).
        self._structure_mailboxes: list[Row] = []
        self._structure_adherents: list[Row] = []

    # --- stream ---------------------------------------------------------------------------------------

    def rows(self) -> Iterator[tuple[Table, Row]]:
        yield from self._department_rows()
        yield from self._commune_rows()
        yield from self._structure_rows()
        for table, rows in ((MAILBOXES, self._structure_mailboxes), (ADHERENTS, self._structure_adherents)):
            for row in rows:
                yield table, row
            rows.clear()
        yield from self._professional_rows()

    # --- geography ------------------------------------------------------------------------------------

    @staticmethod
    def _is_overseas(department: geo.Department) -> bool:
        return len(department.code) == 3

    def _commune_count(self, department: geo.Department) -> int:
        cap = 30 if self._is_overseas(department) else 600
        return min(self.scale.communes_per_department, cap)

    def _department_rows(self) -> Iterator[tuple[Table, Row]]:
        for department_id, d in enumerate(self.departments, start=1):
            self._department_ids[d.code] = department_id
            yield DEPARTMENTS, (department_id, d.code, d.name, d.region_code)

    def _postal_code(self, rng: random.Random, department: geo.Department) -> str:
        if self._is_overseas(department):
            return f"{department.code}{rng.randrange(10) * 10:02d}"
        if department.code == "2A":
            return f"200{rng.randrange(10)}0"
        if department.code == "2B":
            return f"202{rng.randrange(10)}0"
        return f"{department.code}{rng.randrange(100) * 10:03d}"

    def _commune_rows(self) -> Iterator[tuple[Table, Row]]:
        rng = _rng(self.seed, "communes")
        commune_id = 0
        for d in self.departments:
            count = self._commune_count(d)
            overseas = self._is_overseas(d)
            numbers = sorted(rng.sample(range(1, 35 if overseas else 700), count))
            names: set[str] = set()
            communes = self._communes[d.code] = []
            for number in numbers:
                name = ""
                for _ in range(20):  # a few synthetic homonyms are fine (France has some), most are unique
                    name = rng.choice(_COMMUNE_STEMS) + rng.choice(_COMMUNE_TAILS)
                    if name not in names:
                        break
                names.add(name)
                commune_id += 1
                commune = _Commune(
                    id=commune_id,
                    name=name,
                    postal_code=self._postal_code(rng, d),
                    latitude=round(d.lat + rng.uniform(-0.35, 0.35), 6),
                    longitude=round(d.lon + rng.uniform(-0.5, 0.5), 6),
                )
                communes.append(commune)
                insee = f"{d.code}{number:02d}" if overseas else f"{d.code}{number:03d}"
                yield (
                    COMMUNES,
                    (commune_id, insee, name, self._department_ids[d.code], commune.postal_code,
                     commune.latitude, commune.longitude),
                )  # fmt: skip

    # --- structures -----------------------------------------------------------------------------------

    def _structure_rows(self) -> Iterator[tuple[Table, Row]]:
        rng = _rng(self.seed, "structures")
        self._ej_serials = {d.code: self._first_serial(d, legal_entity=True) for d in self.departments}
        self._et_serials = {d.code: self._first_serial(d, legal_entity=False) for d in self.departments}
        self._siren_start = rng.randrange(SIREN_SPAN)
        self._siren_count = 0
        codes = [d.code for d in self.departments]
        by_code = {d.code: d for d in self.departments}
        all_cumulative = _cumulative([self.department_weights[c] for c in codes])
        quota = self.scale.structures
        regions = sorted({d.region_code for d in self.departments})
        mandatory_rows = len(regions) * sum(
            1 + STRUCTURE_SPECS[k].sites[0] if STRUCTURE_SPECS[k].finess else 1 for k in MANDATORY_STRUCTURES
        )
        if mandatory_rows > quota:
            raise ValueError(
                f"Échelle {self.scale.name} : {quota} structures ne suffisent pas ({mandatory_rows})."
            )
        for region in regions:
            region_codes = [c for c in codes if by_code[c].region_code == region]
            region_cumulative = _cumulative([self.department_weights[c] for c in region_codes])
            main = max(region_codes, key=lambda c: (self.department_weights[c], c))
            for key in MANDATORY_STRUCTURES:
                spec = STRUCTURE_SPECS[key]
                code = main if key == "chu" else _pick(rng, region_codes, region_cumulative)
                yield from self._structure_group(rng, spec, by_code[code], spec.sites[0], mandatory=True)
        fill = [s for s in STRUCTURE_SPECS.values() if s.weight > 0]
        fill_cumulative = _cumulative([s.weight for s in fill])
        while (remaining := quota - self._structure_id) > 0:
            spec = _pick(rng, fill, fill_cumulative)
            department = by_code[_pick(rng, codes, all_cumulative)]
            if spec.finess:
                if remaining < 1 + spec.sites[0]:
                    spec = STRUCTURE_SPECS["cabinet"]
                    sites = 1
                else:
                    sites = min(rng.randint(*spec.sites), remaining - 1)
            else:
                sites = 1
            yield from self._structure_group(rng, spec, department, sites, mandatory=False)
        self._resolve_site_lists()

    def _first_serial(self, department: geo.Department, *, legal_entity: bool) -> int:
        short = len(identifiers.finess_prefix(department.code)) == 4
        if legal_entity:
            return FINESS_EJ_FIRST_SHORT if short else FINESS_EJ_FIRST
        return FINESS_ET_FIRST_SHORT if short else FINESS_ET_FIRST

    def _next_finess(self, department: geo.Department, *, legal_entity: bool) -> str:
        serials = self._ej_serials if legal_entity else self._et_serials
        serial = serials[department.code]
        serials[department.code] = serial + 1
        return identifiers.finess_generate(department.code, serial)

    def _next_siren(self) -> str:
        serial = SIREN_BASE + (self._siren_start + self._siren_count * SIREN_STRIDE) % SIREN_SPAN
        self._siren_count += 1
        return identifiers.siren_generate(serial)

    def _domain(self, name: str) -> int:
        stem = _domain_stem(name) or "structure"
        candidate, n = stem, 1
        while candidate in self._domain_taken:
            n += 1
            candidate = f"{stem}-{n}"
        self._domain_taken.add(candidate)
        self._domains.append(candidate)
        return len(self._domains) - 1

    def _structure_name(
        self, rng: random.Random, spec: StructureSpec, commune: _Commune, d: geo.Department
    ) -> str:
        template = rng.choice(spec.names)
        return template.format(
            commune=commune.name,
            saint=rng.choice(SAINTS),
            residence=rng.choice(RESIDENCES),
            street=rng.choice(STREETS),
            surname=rng.choice(LAST_NAMES).title(),
            pharmacy=rng.choice(PHARMACY_NAMES),
            department=d.name,
        )

    def _structure_group(
        self, rng: random.Random, spec: StructureSpec, d: geo.Department, sites: int, *, mandatory: bool
    ) -> Iterator[tuple[Table, Row]]:
        communes = self._communes[d.code]
        home = communes[0] if spec.key == "chu" else rng.choice(communes)
        name = self._structure_name(rng, spec, home, d)
        siren = self._next_siren()
        category_label = self.codes.structure_categories.get(spec.category, "")
        sector_label = self.codes.sectors[spec.sector]
        now = self.now

        def row(structure_id: int, kind: str, finess_ej: str, finess_et: str | None, parent: int | None,
                siret: str, row_name: str, commune: _Commune, active: bool) -> Row:  # fmt: skip
            return (
                structure_id, kind, finess_ej, finess_et, parent, siren, siret, row_name, spec.category,
                category_label, spec.sector, sector_label, f"{rng.randint(1, 120)} {rng.choice(STREETS)}",
                commune.postal_code, commune.id, round(commune.latitude + rng.uniform(-0.01, 0.01), 6),
                round(commune.longitude + rng.uniform(-0.01, 0.01), 6), active, now, now,
            )  # fmt: skip

        if spec.finess:
            self._structure_id += 1
            member_id = self._structure_id
            finess_ej = self._next_finess(d, legal_entity=True)
            legal_name = f"{spec.legal_form} {name}" if spec.legal_form else name
            yield (
                STRUCTURES,
                row(member_id, StructureKind.LEGAL_ENTITY, finess_ej, None, None, "", legal_name, home, True),
            )
            for k in range(sites):
                commune = home if k == 0 else rng.choice(communes)
                site_name = name if k == 0 else f"{name} — site de {commune.name}"
                self._structure_id += 1
                active = mandatory or rng.random() < 0.98
                finess_et = self._next_finess(d, legal_entity=False)
                siret = identifiers.siret_generate(siren, k + 1)
                yield STRUCTURES, row(
                    self._structure_id, StructureKind.SITE, finess_ej, finess_et, member_id, siret, site_name,
                    commune, active,
                )  # fmt: skip
                self._register_site(rng, spec, d, self._structure_id, site_name, first=k == 0)
        else:
            self._structure_id += 1
            member_id = self._structure_id
            siret = identifiers.siret_generate(siren, 1)
            yield STRUCTURES, row(
                member_id, StructureKind.SITE, "", None, None, siret, name, home,
                mandatory or rng.random() < 0.98,
            )  # fmt: skip
            self._register_site(rng, spec, d, member_id, name, first=True)
        if spec.college is not None and (mandatory or rng.random() < spec.adhesion_rate):
            self._structure_adherents.append(
                self._adherent_row(rng, structure_id=member_id, college=spec.college)
            )

    def _register_site(
        self,
        rng: random.Random,
        spec: StructureSpec,
        d: geo.Department,
        structure_id: int,
        name: str,
        *,
        first: bool,
    ) -> None:
        domain = self._domain(name)
        if spec.pool:
            self._sites[(d.code, spec.pool)].append((structure_id, domain))
        if rng.random() < spec.org_mailbox_rate:
            mailbox = "accueil" if spec.pool == "ehpad" else "secretariat"
            address = f"{mailbox}@{self._domains[domain]}.mssante.fr"
            self._structure_mailboxes.append(
                self._structure_mailbox(address, structure_id, MailboxKind.ORGANIZATIONAL)
            )
        if spec.app_mailbox and first:
            address = f"dpi@{self._domains[domain]}.mssante.fr"
            self._structure_mailboxes.append(
                self._structure_mailbox(address, structure_id, MailboxKind.APPLICATION)
            )

    def _structure_mailbox(self, address: str, structure_id: int, kind: str) -> Row:
        self._mailbox_id += 1
        return (self._mailbox_id, address, kind, None, structure_id, self.now)

    def _resolve_site_lists(self) -> None:
        """For every (department, pool): its sites, or the region's, or the country's, or any site."""
        by_region: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
        by_pool: dict[str, list[tuple[int, int]]] = defaultdict(list)
        every: list[tuple[int, int]] = []
        for (code, pool), sites in sorted(self._sites.items()):
            region = next(d.region_code for d in self.departments if d.code == code)
            by_region[(region, pool)].extend(sites)
            by_pool[pool].extend(sites)
            every.extend(sites)
        self._site_lists = {
            (d.code, pool): self._sites.get((d.code, pool))
            or by_region.get((d.region_code, pool))
            or by_pool.get(pool)
            or every
            for d in self.departments
            for pool in POOLS
        }

    # --- memberships ----------------------------------------------------------------------------------

    def _adherent_row(
        self,
        rng: random.Random,
        *,
        college: int,
        structure_id: int | None = None,
        professional_id: int | None = None,
    ) -> Row:
        status = rng.choices(ADHERENT_STATUSES, ADHERENT_STATUS_WEIGHTS)[0]
        start: date | None = None
        end: date | None = None
        if status != AdherentStatus.CANDIDATE:
            start = date(2012, 1, 1) + timedelta(days=rng.randrange(5_000))
            if status in (AdherentStatus.RESIGNED, AdherentStatus.EXCLUDED):
                end = min(start + timedelta(days=rng.randint(30, 3_000)), REFERENCE_DATE)
        self._adherent_id += 1
        return (
            self._adherent_id,
            structure_id,
            professional_id,
            int(college),
            status,
            start,
            end,
            self.now,
            self.now,
        )

    # --- professionals --------------------------------------------------------------------------------

    def _profession_tables(self) -> list[_ProfessionTables]:
        tables = []
        for spec in PROFESSION_SPECS:
            specialties = tuple(
                (code, self.codes.specialty_label(spec.code, code)) for code, _ in spec.specialties
            )
            missing = [code for code, label in specialties if not label]
            if missing or spec.code not in self.codes.professions:
                raise ValueError(f"Code absent des nomenclatures : {spec.code} {missing}.")
            pools, pool_weights = zip(*spec.salaried_pools, strict=True)
            tables.append(
                _ProfessionTables(
                    spec=spec,
                    label=self.codes.professions[spec.code],
                    salaried_pools=pools,
                    salaried_cumulative=_cumulative(pool_weights),
                    specialties=specialties,
                    specialty_cumulative=_cumulative([w for _, w in spec.specialties]),
                    domain_index=self._domains.index(spec.mail_domain),
                )
            )
        return tables

    def _professional_rows(self) -> Iterator[tuple[Table, Row]]:
        rng = _rng(self.seed, "professionals")
        professions = self._profession_tables()
        profession_cumulative = _cumulative([p.spec.weight for p in professions])
        departments = self.departments
        department_cumulative = _cumulative([self.department_weights[d.code] for d in departments])
        site_lists = self._site_lists
        domains = self._domains
        rpps_start = rng.randrange(RPPS_SPAN)
        first_slugs = [_slug(n, "-") for n in FIRST_NAMES]
        last_slugs = [_slug(n, "-") for n in LAST_NAMES]
        n_female, n_first, n_last = len(FEMALE_FIRST_NAMES), len(FIRST_NAMES), len(LAST_NAMES)
        mail_seen: dict[int, int] = {}
        forced = {College.LIBERAL_PHYSICIANS: False, College.OTHER_LIBERAL_PROFESSIONALS: False}
        rpps_type, civil, agent = IdentifierType.RPPS.value, "C", "M"
        salaried, liberal_mode = ExerciseMode.SALARIED.value, ExerciseMode.LIBERAL.value
        now = self.now
        random_ = rng.random
        exercices: list[Row] = []
        mailboxes: list[Row] = []
        adherents: list[Row] = []
        buffers = ((EXERCICES, exercices), (MAILBOXES, mailboxes), (ADHERENTS, adherents))

        for pid in range(1, self.scale.professionals + 1):
            profession = professions[
                bisect.bisect_right(profession_cumulative, random_() * profession_cumulative[-1])
            ]
            spec = profession.spec
            d = departments[bisect.bisect_right(department_cumulative, random_() * department_cumulative[-1])]
            woman = random_() < spec.women
            first_index = (
                int(random_() * n_female) if woman else n_female + int(random_() * (n_first - n_female))
            )
            last_index = int(random_() * n_last)
            specialty_code = specialty_label = ""
            if spec.specialties and random_() < spec.specialty_rate:
                specialty_code, specialty_label = profession.specialties[
                    bisect.bisect_right(
                        profession.specialty_cumulative, random_() * profession.specialty_cumulative[-1]
                    )
                ]
            rpps = identifiers.rpps_generate(RPPS_BASE + (rpps_start + (pid - 1) * RPPS_STRIDE) % RPPS_SPAN)
            idnat_ps = "8" + rpps
            last_name, first_name = LAST_NAMES[last_index], FIRST_NAMES[first_index]
            yield PROFESSIONALS, (
                pid, idnat_ps, rpps_type, rpps, "", "MME" if woman else "M", last_name, first_name, spec.code,
                profession.label, agent if random_() < 0.02 else civil, specialty_code, specialty_label,
                random_() < 0.99, True, now, now,
            )  # fmt: skip

            # Main exercice: liberal (cabinet, officine, laboratory) or salaried (hospital, EHPAD …).
            liberal = random_() < spec.liberal
            if specialty_code in BIOLOGY_SPECIALTIES:
                pool = "lab"
            elif liberal:
                pool = spec.liberal_pool
            else:
                pool = profession.salaried_pools[
                    bisect.bisect_right(
                        profession.salaried_cumulative, random_() * profession.salaried_cumulative[-1]
                    )
                ]
            sites = site_lists[(d.code, pool)]
            structure_id, site_domain = sites[int(random_() * len(sites))]
            self._exercice_id += 1
            exercices.append((
                self._exercice_id, pid, structure_id, self._role(rng, pool, liberal, spec.code),
                liberal_mode if liberal else salaried, now,
            ))  # fmt: skip
            if random_() < SECOND_EXERCICE_RATE:
                second_pool = "hospital" if liberal else pool
                second_sites = site_lists[(d.code, second_pool)]
                second_id, _ = second_sites[int(random_() * len(second_sites))]
                if second_id != structure_id:
                    self._exercice_id += 1
                    role = "FON-AU" if liberal else "FON-22"
                    exercices.append((self._exercice_id, pid, second_id, role, salaried, now))

            # MSSanté personal address: the profession's domain for liberals, the employer's otherwise.
            address = ""
            if random_() < spec.mail_rate:
                domain = profession.domain_index if liberal else site_domain
                key = (domain * n_first + first_index) * n_last + last_index
                homonyms = mail_seen.get(key, 0)
                mail_seen[key] = homonyms + 1
                suffix = str(homonyms + 1) if homonyms else ""
                local_part = f"{first_slugs[first_index]}.{last_slugs[last_index]}{suffix}"
                address = f"{local_part}@{domains[domain]}.mssante.fr"
                self._mailbox_id += 1
                mailboxes.append((self._mailbox_id, address, MailboxKind.PERSONAL.value, pid, None, now))

            if spec.code == "10" and self.clinician is None and address:
                self.clinician = ClinicianIdentity(idnat_ps, first_name, last_name, address)

            # GCS membership of liberal professionals (collèges 4 and 5).
            if liberal:
                college = (
                    College.LIBERAL_PHYSICIANS if spec.code == "10" else College.OTHER_LIBERAL_PROFESSIONALS
                )
                rate = LIBERAL_PHYSICIAN_ADHESION_RATE if spec.code == "10" else OTHER_LIBERAL_ADHESION_RATE
                if not forced[college] or random_() < rate:
                    forced[college] = True
                    adherents.append(self._adherent_row(rng, professional_id=pid, college=college))

            if pid % CHUNK == 0 or pid == self.scale.professionals:
                for table, rows in buffers:  # one COPY per table and per chunk
                    for row in rows:
                        yield table, row
                    rows.clear()

    @staticmethod
    def _role(rng: random.Random, pool: str, liberal: bool, profession_code: str) -> str:
        """TRE_R21 role of a main exercice."""
        if pool == "pharmacy":
            return "FON-03" if liberal else "FON-05"
        if pool == "lab":
            if liberal:
                return "FON-15"
            return "FON-41" if profession_code in ("10", "21") else "FON-33"
        if liberal:
            draw = rng.random()
            return "FON-01" if draw < 0.85 else "FON-17" if draw < 0.95 else "FON-22"
        if profession_code == "60" and rng.random() < 0.05:
            return "FON-43"
        return "FON-33"


# --- Demo accounts ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoAccountSpec:
    username: str
    role: Role
    first_name: str
    last_name: str


DEMO_ACCOUNTS = (
    DemoAccountSpec("demo-clinicien", Role.CLINICIAN, "", ""),  # named after the seeded professional
    DemoAccountSpec("demo-gcs", Role.GCS_STAFF, "Camille", "Le Goff"),
    DemoAccountSpec("demo-ars", Role.ARS_ANALYST, "Dominique", "Bernard"),
    DemoAccountSpec("demo-admin", Role.ADMIN, "Claude", "Morvan"),
)


@dataclass(frozen=True)
class DemoAccount:
    username: str
    role: Role
    password: str  # "" when not shown (account kept from before, password changed since)
    created: bool


def demo_password(seed: int, username: str) -> str:
    """The demo password of `username` for `seed`: known by design, for demo mode only."""
    rng = _rng(seed, f"password:{username}")
    words = [rng.choice(_PASSWORD_WORDS).capitalize() for _ in range(3)]
    return "-".join([*words, f"{rng.randrange(10, 100)}"])


def demo_accounts_create(*, seed: int, clinician: ClinicianIdentity | None) -> list[DemoAccount]:
    """Create the demo account of each role that does not exist yet; existing ones are left untouched."""
    accounts = []
    existing = set(
        User.objects.filter(username__in=[a.username for a in DEMO_ACCOUNTS]).values_list(
            "username", flat=True
        )
    )
    for spec in DEMO_ACCOUNTS:
        if spec.username in existing:
            accounts.append(DemoAccount(spec.username, spec.role, "", created=False))
            continue
        password = demo_password(seed, spec.username)
        first_name, last_name, email, idnat_ps = spec.first_name, spec.last_name, "", ""
        if spec.role == Role.CLINICIAN and clinician is not None:
            first_name, last_name = clinician.first_name, clinician.last_name.title()
            email, idnat_ps = clinician.email, clinician.idnat_ps
        user = User(username=spec.username, first_name=first_name, last_name=last_name, email=email)
        password_validation.validate_password(password, user)
        user_create(
            username=spec.username,
            password=password,
            role=spec.role,
            first_name=first_name,
            last_name=last_name,
            email=email,
            idnat_ps=idnat_ps,
        )
        accounts.append(DemoAccount(spec.username, spec.role, password, created=True))
    return accounts


def demo_accounts_status(*, seed: int) -> list[DemoAccount]:
    """The demo accounts that exist, with their password when it is still the demo one for `seed`."""
    users = {u.username: u for u in User.objects.filter(username__in=[a.username for a in DEMO_ACCOUNTS])}
    accounts = []
    for spec in DEMO_ACCOUNTS:
        user = users.get(spec.username)
        if user is None:
            continue
        password = demo_password(seed, spec.username)
        accounts.append(
            DemoAccount(
                spec.username, spec.role, password if user.check_password(password) else "", created=False
            )
        )
    return accounts


# --- Orchestration ---------------------------------------------------------------------------------------


class SeedError(Exception):
    """The demo data cannot be loaded as asked (French message for the operator)."""


@dataclass
class SeedReport:
    scale: str
    seed: int
    region_code: str | None
    counts: dict[Table, int] = field(default_factory=dict)
    duration: float = 0.0
    accounts: list[DemoAccount] = field(default_factory=list)

    @property
    def total_rows(self) -> int:
        return sum(self.counts.values())


def annuaire_is_empty() -> bool:
    return not any(model._default_manager.exists() for model in MODELS)


def departments_for(scale: Scale, region_code: str) -> list[geo.Department]:
    if scale.national:
        return list(geo.DEPARTMENTS.values())
    if region_code not in geo.REGIONS:
        raise SeedError(f"Région inconnue : {region_code!r} (code INSEE de région attendu, par exemple 53).")
    return geo.departments_of(region_code)


def seed_demo(
    *,
    scale: str,
    region_code: str,
    seed: int = DEFAULT_SEED,
    reset: bool = False,
    create_accounts: bool = True,
    method: Method = "auto",
    progress: Progress | None = None,
    on_plan: Callable[[DemoData], None] | None = None,
) -> SeedReport:
    """Load the demo directory (and the demo accounts) in one transaction.

    Refuses to write into a directory that holds data unless `reset`, which empties the directory tables
    (TRUNCATE … CASCADE) and deletes the demo accounts first.
    """
    if scale not in SCALES:
        raise SeedError(f"Échelle inconnue : {scale!r} (small, region ou national).")
    spec = SCALES[scale]
    departments = departments_for(spec, region_code)
    started = time.perf_counter()
    report = SeedReport(scale=scale, seed=seed, region_code=None if spec.national else region_code)
    with transaction.atomic():
        if not annuaire_is_empty():
            if not reset:
                raise SeedError(
                    "L'annuaire contient déjà des données : relancez avec --reset pour les remplacer, "
                    "ou avec --if-empty pour ne rien faire dans ce cas."
                )
            flush(MODELS)
        if reset:
            # Demo accounts that already left traces in the audit trail are kept (the trail protects
            # its actors); the others are recreated with their demo password.
            User.objects.filter(
                username__in=[a.username for a in DEMO_ACCOUNTS], audit_events__isnull=True
            ).delete()
        data = DemoData(scale=spec, seed=seed, departments=departments)
        if on_plan is not None:
            on_plan(data)
        written = write_rows(data.rows(), method=method, progress=progress)
        reset_sequences(MODELS)
        report.counts = {table: written.get(table.model, 0) for table in TABLES}
        if create_accounts:
            report.accounts = demo_accounts_create(seed=seed, clinician=data.clinician)
        audit_record(
            action="annuaire.seed_demo",
            detail={
                "scale": scale,
                "seed": seed,
                "region": report.region_code,
                "reset": reset,
                "counts": {str(table.model._meta.label): count for table, count in report.counts.items()},
            },
        )
    report.duration = time.perf_counter() - started
    return report
