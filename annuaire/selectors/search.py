"""The directory search: professionals and structures from one search box, and their detail reads.

One box takes names, first names, identifiers (RPPS, IdNat_PS, ADELI, FINESS EJ/ET, SIREN, SIRET, MSSanté
address), commune names, professions and specialties; filters (profession, specialty, department,
structure, kind of structure) narrow the results.

How a query is read (`parse_query`, pure Python):

* an identifier shape wins: 11 digits → RPPS; ``8`` + 11 digits or ``0`` + 9 digits → IdNat_PS;
  9 characters of FINESS shape → FINESS (ET or EJ), SIREN, or ADELI for a professional; 14 digits → SIRET;
  anything with ``@`` → MSSanté address. Exact matches only;
* otherwise the text is normalised (`normalize`: lower case, no accents, punctuation → spaces, the twin of
  the SQL function ``enrs_search_norm``); titles (« Dr », « Mme » …) are dropped; words that name a
  profession or a specialty (« infirmière », « cardiologue », « sage-femme ») are recognised from the
  national nomenclatures plus a few usual forms; on PostgreSQL, words that spell a commune exactly are
  recognised too (« saint malo », « st malo »).

Two readings are then searched together and merged: the whole text as a name, and — when something was
recognised — the recognised filters with the remaining words as a name. « Paris Jean » thus finds
Dr Jean PARIS first, then the Jeans who work in Paris.

Ranking, on PostgreSQL (migration 0003): each name phrase is matched against a small lexicon of distinct
normalised last names, first names and structure-name words with ``pg_trgm`` (``<%``: word similarity ≥
``pg_trgm.word_similarity_threshold``, 0.6 by default, which accepts « Dupon »/« Dupond » for DUPONT and
« Lefebre » for LEFEBVRE, and rejects DUMONT), scored ``word_similarity + similarity`` (2 for an exact
name). Each matching name then gives one list of professionals read from a covering btree index in name
order, ``LIMIT offset + limit + 1``, merged here by (score, normalised last name, first name, id). Every
list being sorted like the final order, the first rows of each list are enough: the cost depends on the
page, not on how many « Martin » there are. The lists that can score best run first (one UNION ALL
query), the others only when those did not fill the page. Phrases are also split in two and read as last
name + first name, in both orders (« Jean Martin » / « Martin Jean »); a one-word query matches last
names a little before first names. Filters on where people work (department, structure, kind of
structure, a commune named in the text) are first read as the ids of the professionals concerned (one
query), passed to the lists as an array. Structures: every word must be in the name (full-text,
``simple`` configuration), typos through the same lexicon; exact words first, then name order.

Pagination: offset/limit with « more results » (one extra row fetched), no COUNT(*): counting every
« Martin » of a million rows on each page would cost more than the page itself, and a directory user
refines the query rather than reading page 40. Results stop at `MAX_RESULTS`.

On SQLite (embedded demo, no ``unaccent``/``pg_trgm``) the search falls back to ``icontains`` on each
word, in name order: identifiers and filters work, accents, typos and commune names do not.
"""

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Generic, TypeVar

from django.db import connection
from django.db.models import (
    BooleanField,
    Case,
    Exists,
    F,
    FloatField,
    Func,
    Model,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    TextField,
    Value,
    When,
    prefetch_related_objects,
)
from django.db.models.expressions import Combinable
from django.db.models.functions import Lower

from ..models import Exercice, MailboxAddress, MailboxKind, Professional, Structure
from ..standards import identifiers
from ..standards.nomenclatures import nomenclatures

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_RESULTS = 1_000  # offset + limit: beyond, refine the query
EXPANSIONS_PER_FIELD = 5  # lexicon names kept per phrase and per field (last name, first name, word)
MAX_WORDS = 6
TITLES = frozenset({"dr", "docteur", "pr", "professeur", "m", "mme", "mlle", "mr", "madame", "monsieur"})
STOP_WORDS = frozenset(
    {"a", "au", "aux", "d", "de", "des", "du", "en", "et", "l", "la", "le", "les", "sur", "sous"}
)
ABBREVIATIONS = {"st": "saint", "ste": "sainte"}  # in commune and structure names
SCOPE_EXERCICES_MAX = 20_000  # who works in a filter's scope, read as ids up to this; beyond, a subquery

# Scores: a lexicon match scores word_similarity + similarity, 2.0 when exact.
EXACT_IDENTIFIER_SCORE = 3.0
RELATED_IDENTIFIER_SCORE = 2.5  # professionals of a structure given by its FINESS / SIRET
FIRST_NAME_ONLY_PENALTY = 0.05
FILTER_ONLY_SCORE = 1.0  # « infirmier », « Rennes »: every row of the recognised filters, in name order

T = TypeVar("T", bound=Model)


# --- Normalisation and query reading (pure Python) -----------------------------------------------------

# Letters that unaccent spells with two letters or without a combining mark (NFKD leaves them alone).
_UNACCENT_EXTRA = str.maketrans(
    {"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE", "ß": "ss", "ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "đ": "d"}
)
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def normalize(text: str) -> str:
    """Lower case, accents removed, every run of other characters turned into one space: the Python twin
    of the SQL ``enrs_search_norm`` (migration 0003), checked against it by the tests."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_UNACCENT_EXTRA))
    bare = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    return _NOT_ALNUM.sub(" ", bare).strip()


@dataclass(frozen=True, slots=True)
class Identifier:
    kind: str  # one of the IDENTIFIER_LABELS keys
    value: str

    @property
    def label(self) -> str:
        return IDENTIFIER_LABELS[self.kind]


IDENTIFIER_LABELS = {
    "rpps": "RPPS",
    "idnat": "identifiant national (IdNat_PS)",
    "nine": "FINESS, SIREN ou ADELI",
    "siret": "SIRET",
    "mailbox": "adresse MSSanté",
}
_SEPARATORS = re.compile(r"[\s.\-]+")


def identifier_of(text: str) -> Identifier | None:
    """The identifier `text` is shaped like, if any (spaces, dots and dashes inside numbers are ignored)."""
    text = text.strip()
    if "@" in text and " " not in text:
        return Identifier("mailbox", text.lower())
    compact = _SEPARATORS.sub("", text).upper()
    if not compact:
        return None
    if compact.isdigit():
        if len(compact) == 11:
            return Identifier("rpps", compact)
        if (len(compact) == 12 and compact[0] == "8") or (len(compact) == 10 and compact[0] == "0"):
            return Identifier("idnat", compact)
        if len(compact) == 14:
            return Identifier("siret", compact)
    if identifiers.finess_is_well_formed(compact):  # 9 digits, or 2A / 2B + 7 digits
        return Identifier("nine", compact)
    return None


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """Phrases (normalised) that name a profession or a specialty, with the codes they stand for."""

    professions: dict[str, tuple[str, ...]]
    specialties: dict[str, tuple[str, ...]]


# Usual ways of naming professions and physicians' specialties, besides the nomenclature labels.
_PROFESSION_FORMS = {
    "10": ("medecin", "medecins"),
    "21": ("pharmacien", "pharmacienne", "pharmaciens"),
    "26": ("audioprothesiste",),
    "28": ("opticien", "opticienne", "opticien lunetier"),
    "40": ("dentiste", "dentistes", "chirurgien dentiste"),
    "50": ("sage femme", "sages femmes", "maieuticien"),
    "60": ("infirmier", "infirmiere", "infirmiers", "infirmieres", "ide"),
    "70": ("kine", "kines", "kinesitherapeute", "kinesitherapeutes", "kinesitherapie"),
    "80": ("podologue", "pedicure", "pedicure podologue"),
    "91": ("orthophoniste",),
    "92": ("orthoptiste",),
    "94": ("ergotherapeute",),
    "95": ("dieteticien", "dieteticienne"),
    "96": ("psychomotricien", "psychomotricienne"),
    "98": ("manipulateur radio", "manipulatrice radio", "manipulateur", "manipulatrice"),
}
_SPECIALTY_FORMS = {
    ("SM54", "SM53", "SM26"): ("generaliste", "medecin generaliste", "medecine generale"),
    ("SM04",): ("cardiologue", "cardiologie", "cardio"),
    ("SM02",): ("anesthesiste", "anesthesie", "anesthesiste reanimateur"),
    ("SM40",): ("pediatre", "pediatrie"),
    ("SM42", "SM43"): ("psychiatre", "pedopsychiatre", "psychiatrie"),
    ("SM44", "SM55"): ("radiologue", "radiologie"),
    ("SM19", "SM20", "SM51", "SM52"): ("gynecologue", "gyneco", "gynecologie", "obstetricien"),
    ("SM15",): ("dermatologue", "dermato", "dermatologie"),
    ("SM38",): ("ophtalmologue", "ophtalmologiste", "ophtalmo", "ophtalmologie"),
    ("SM18",): ("geriatre", "geriatrie"),
    ("SM59",): ("urgentiste",),
    ("SM41",): ("pneumologue", "pneumologie"),
    ("SM32",): ("neurologue", "neurologie"),
    ("SM24",): ("gastro enterologue", "gastroenterologue", "gastro"),
    ("SM48",): ("rhumatologue", "rhumatologie"),
    ("SM30",): ("nephrologue", "nephrologie"),
    ("SM16",): ("endocrinologue", "endocrino"),
    ("SM34", "SM39"): ("orl", "oto rhino laryngologiste"),
    ("SM12",): ("urologue",),
    ("SM08",): ("orthopediste", "chirurgien orthopediste"),
    ("SM14",): ("chirurgien visceral",),
    ("SM03",): ("biologiste",),
    ("SM25",): ("medecin du travail",),
    ("SM27",): ("interniste",),
    ("SM35", "SM36", "SM37"): ("oncologue", "cancerologue"),
    ("SM01",): ("anatomopathologiste",),
}


@cache
def vocabulary() -> Vocabulary:
    codes = nomenclatures()
    professions: dict[str, set[str]] = {}
    specialties: dict[str, set[str]] = {}
    for code, label in codes.professions.items():
        professions.setdefault(normalize(label), set()).add(code)
    for code, forms in _PROFESSION_FORMS.items():
        for form in forms:
            professions.setdefault(form, set()).add(code)
    for per_profession in codes.specialties.values():
        for code, label in per_profession.items():
            specialties.setdefault(normalize(label), set()).add(code)
    for specialty_codes, forms in _SPECIALTY_FORMS.items():
        for form in forms:
            specialties.setdefault(form, set()).update(specialty_codes)
    return Vocabulary(
        professions={k: tuple(sorted(v)) for k, v in professions.items()},
        specialties={k: tuple(sorted(v)) for k, v in specialties.items()},
    )


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    text: str
    identifier: Identifier | None = None
    words: tuple[str, ...] = ()  # normalised words of the query (titles and one-letter words dropped)
    professions: tuple[str, ...] = ()  # codes recognised in the words
    specialties: tuple[str, ...] = ()
    rest: tuple[str, ...] = ()  # words once the recognised profession / specialty words are out

    @property
    def recognised(self) -> bool:
        return bool(self.professions or self.specialties)


def _spans(words: Sequence[str], longest: int) -> Iterable[tuple[int, int]]:
    """(start, end) of every run of consecutive words, longest first."""
    for size in range(min(longest, len(words)), 0, -1):
        for start in range(len(words) - size + 1):
            yield start, start + size


def parse_query(text: str) -> ParsedQuery:
    text = " ".join(text.split())[:200]
    identifier = identifier_of(text)
    if identifier is not None:
        return ParsedQuery(text=text, identifier=identifier)
    words = tuple(w for w in normalize(text).split() if w not in TITLES and (len(w) > 1 or w.isdigit()))
    words = words[:MAX_WORDS]
    vocab = vocabulary()
    taken = [False] * len(words)
    professions: set[str] = set()
    specialties: set[str] = set()
    for start, end in _spans(words, 4):
        if any(taken[start:end]):
            continue
        phrase = " ".join(words[start:end])
        found = vocab.specialties.get(phrase) or ()
        target = specialties
        if not found:
            found, target = vocab.professions.get(phrase) or (), professions
        if found:
            target.update(found)
            taken[start:end] = [True] * (end - start)
    rest = tuple(w for w, t in zip(words, taken, strict=True) if not t)
    return ParsedQuery(
        text=text,
        words=words,
        professions=tuple(sorted(professions)),
        specialties=tuple(sorted(specialties)),
        rest=rest,
    )


# --- Results ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommuneMatch:
    id: int
    label: str  # « Rennes (35) »


@dataclass(frozen=True, slots=True)
class Interpretation:
    """How the query was read, for the user."""

    identifier: str = ""  # label of the identifier kind, or ""
    professions: tuple[str, ...] = ()  # labels
    specialties: tuple[str, ...] = ()
    communes: tuple[str, ...] = ()
    name: str = ""  # the words searched as a name when something else was recognised

    def __bool__(self) -> bool:
        return bool(self.identifier or self.professions or self.specialties or self.communes)


@dataclass(frozen=True)
class SearchPage(Generic[T]):
    results: list[T]
    offset: int
    limit: int
    has_next: bool
    interpretation: Interpretation = field(default_factory=Interpretation)

    @property
    def has_previous(self) -> bool:
        return self.offset > 0

    @property
    def number(self) -> int:
        """Page number, from 1."""
        return self.offset // self.limit + 1

    @property
    def first_index(self) -> int:
        return self.offset + 1

    @property
    def last_index(self) -> int:
        return self.offset + len(self.results)


def clamp_page(*, limit: int, offset: int) -> tuple[int, int]:
    limit = max(1, min(limit, MAX_LIMIT))
    offset = max(0, min(offset, MAX_RESULTS - limit))
    return limit, offset


# --- SQL helpers ----------------------------------------------------------------------------------------


class SearchNorm(Func):
    """``enrs_search_norm(expr)``: the normalised text the search indexes are built on."""

    function = "enrs_search_norm"
    output_field = TextField()


class SortName(Func):
    """``lower(enrs_unaccent(expr))``: the name order of structures (accents and case ignored), indexed."""

    template = "lower(enrs_unaccent(%(expressions)s))"
    output_field = TextField()


class UnindexedSortName(SortName):
    """The same order written ``enrs_unaccent(lower(expr))``, which no index provides: for lists filtered
    by words of the name, so that PostgreSQL sorts the matches (GIN) instead of walking the name index
    until it meets some (the words of a name cluster in name order: every « Pharmacie … » sits far down
    the alphabet, and incremental sort would still walk there)."""

    template = "enrs_unaccent(lower(%(expressions)s))"


class NameHasWords(Func):
    """Full-text match of a structure's normalised name against a ``to_tsquery`` string, written as the
    GIN index of migration 0003 is (``django.contrib.postgres``' SearchVector adds a COALESCE that the
    index does not have)."""

    output_field = BooleanField()
    conditional = True

    def as_sql(
        self,
        compiler: Any,
        connection: Any,
        function: str | None = None,
        template: str | None = None,
        arg_joiner: str | None = None,
        **extra_context: Any,
    ) -> tuple[str, Any]:
        name_sql, name_params = compiler.compile(self.source_expressions[0])
        query_sql, query_params = compiler.compile(self.source_expressions[1])
        return (
            f"to_tsvector('simple'::regconfig, enrs_search_norm({name_sql})) "
            f"@@ to_tsquery('simple'::regconfig, {query_sql})",
            [*name_params, *query_params],
        )


class AnyOf(Func):
    """``expr = ANY(%s::bigint[])``: one array parameter, which PostgreSQL hashes and estimates well
    (an IN list of a thousand placeholders would be parsed again in every branch of the UNION)."""

    output_field = BooleanField()
    conditional = True

    def __init__(self, expression: Any, values: Sequence[int]) -> None:
        super().__init__(expression)
        self.values = list(values)

    def as_sql(
        self,
        compiler: Any,
        connection: Any,
        function: str | None = None,
        template: str | None = None,
        arg_joiner: str | None = None,
        **extra_context: Any,
    ) -> tuple[str, Any]:
        sql, params = compiler.compile(self.source_expressions[0])
        return f"{sql} = ANY(%s::bigint[])", [*params, self.values]


def _is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def _name_key(field_name: str) -> Func:
    """Sort key of a professional's name: its normalised form (indexed) on PostgreSQL, lower case
    elsewhere."""
    return SearchNorm(field_name) if _is_postgresql() else Lower(field_name)


def _structure_key() -> Func:
    return SortName("name") if _is_postgresql() else Lower("name")


Expansions = dict[str, dict[str, list[tuple[str, float]]]]  # phrase → field → [(term, score)]

_ANALYSIS_TERMS_SQL = """
SELECT 'T', q.phrase, t.field::text, t.term, t.score
FROM unnest(%s::text[]) AS q (phrase)
CROSS JOIN LATERAL (
    SELECT field, term, word_similarity(q.phrase, term) + similarity(q.phrase, term) AS score
    FROM annuaire_search_term
    WHERE field = ANY (%s::text[]) AND q.phrase <%% term
    ORDER BY score DESC, term
    LIMIT 50
) AS t
"""
_ANALYSIS_COMMUNES_SQL = """
SELECT 'C', enrs_search_norm(c.name), c.id::text, c.name || ' (' || d.code || ')', 0
FROM annuaire_commune c JOIN annuaire_department d ON d.id = c.department_id
WHERE enrs_search_norm(c.name) = ANY (%s::text[])
"""


def _analyse(
    phrases: Sequence[str], fields: Sequence[str], commune_candidates: Sequence[str] = ()
) -> tuple[Expansions, dict[str, list[CommuneMatch]]]:
    """One query: the lexicon names close to each phrase (best first, `EXPANSIONS_PER_FIELD` per field),
    and the communes named exactly by a candidate phrase."""
    parts, params = [], []
    if phrases:
        parts.append(_ANALYSIS_TERMS_SQL)
        params += [list(phrases), list(fields)]
    if commune_candidates:
        parts.append(_ANALYSIS_COMMUNES_SQL)
        params.append(list(commune_candidates))
    expansions: Expansions = {}
    communes: dict[str, list[CommuneMatch]] = {}
    if not parts:
        return expansions, communes
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        rows = cursor.fetchall()
    for kind, key, a, b, score in rows:
        if kind == "T":
            per_field = expansions.setdefault(key, {}).setdefault(a, [])
            if len(per_field) < EXPANSIONS_PER_FIELD:
                per_field.append((b, float(score)))
        else:
            communes.setdefault(key, []).append(CommuneMatch(int(a), b))
    for matches in communes.values():
        matches.sort(key=lambda m: m.label)
    return expansions, communes


def _commune_candidates(words: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Phrases of 1 to 4 consecutive words (« st » also read « saint ») → their span in `words`."""
    candidates: dict[str, tuple[int, int]] = {}
    for start, end in _spans(words, 4):
        span = words[start:end]
        for phrase in (" ".join(span), " ".join(ABBREVIATIONS.get(w, w) for w in span)):
            candidates.setdefault(phrase, (start, end))
    return candidates


def _recognise_communes(
    words: Sequence[str], candidates: dict[str, tuple[int, int]], found: dict[str, list[CommuneMatch]]
) -> tuple[list[CommuneMatch], tuple[str, ...]]:
    """The communes of the longest recognised phrase, and the words left once it is out."""
    best: tuple[int, int] | None = None
    matches: list[CommuneMatch] = []
    for phrase, span in candidates.items():
        if phrase in found and (best is None or span[1] - span[0] > best[1] - best[0]):
            best, matches = span, found[phrase]
    if best is None:
        return [], tuple(words)
    return matches, tuple(words[: best[0]]) + tuple(words[best[1] :])


# --- Ranked lists ---------------------------------------------------------------------------------------

# A sort key equal on every row (the planner drops it, so an index order still applies).
_NO_KEY = Value("", output_field=TextField())


@dataclass(frozen=True)
class Ranked:
    """One ranked list: (pk, score, key1, key2) rows in the final order, and the best score it can hold."""

    rows: QuerySet[Any, tuple[int, float, str, str]]
    bound: float


def _ranked(
    qs: QuerySet[Any],
    score: float | Combinable,
    keys: tuple[Any, Any],
    size: int,
    bound: float | None = None,
) -> Ranked:
    """`qs` as (pk, score, key1, key2) rows in the final order — score first —, cut to `size` rows.

    Only these four columns are read, so a list can be answered from a covering index."""
    if not isinstance(score, Combinable):
        bound = float(score)
        score = Value(bound, output_field=FloatField())
    assert bound is not None, "a computed score needs its bound"
    qs = qs.annotate(_score=score, _key1=keys[0], _key2=keys[1]).order_by("-_score", "_key1", "_key2", "pk")
    return Ranked(qs.values_list("pk", "_score", "_key1", "_key2")[:size], bound)


def _run(lists: Sequence[Ranked], best: dict[int, tuple[float, str, str]]) -> None:
    """One UNION ALL query for `lists`; keep each pk's best (score, key1, key2) in `best`."""
    querysets = [ranked.rows for ranked in lists]
    combined = querysets[0] if len(querysets) == 1 else querysets[0].union(*querysets[1:], all=True)
    for pk, score, key1, key2 in combined:
        kept = best.get(pk)
        if kept is None or score > kept[0]:
            best[pk] = (score, key1 or "", key2 or "")


def _merge(lists: Sequence[Ranked], *, offset: int, limit: int) -> tuple[list[int], bool]:
    """The page of pks (and whether more follow) from ranked lists merged by (best score, key1, key2, pk).

    Each list is sorted in that order, so its first `offset + limit + 1` rows are enough. The lists of the
    best possible score run first; the others only when the first did not find enough rows scoring above
    them: « Martin » rarely needs its typo neighbours (« Martinez ») to fill a page. So: 1 query, or 2."""
    if not lists:
        return [], False
    size = offset + limit + 1
    ordered_lists = sorted(lists, key=lambda ranked: -ranked.bound)
    top = ordered_lists[0].bound
    first = [ranked for ranked in ordered_lists if ranked.bound >= top]
    others = ordered_lists[len(first) :]
    best: dict[int, tuple[float, str, str]] = {}
    _run(first, best)
    if others:
        threshold = others[0].bound
        if sum(1 for score, _, _ in best.values() if score > threshold) < size:
            _run(others, best)
    ordered = sorted(best, key=lambda pk: (-best[pk][0], best[pk][1], best[pk][2], pk))
    window = ordered[offset:size]
    return window[:limit], len(window) > limit


def _in_order(qs: QuerySet[T], pks: list[int]) -> list[T]:
    if not pks:
        return []
    rows = qs.in_bulk(pks)
    return [rows[pk] for pk in pks if pk in rows]


# --- Professionals ------------------------------------------------------------------------------------


def _scope_structures(
    *,
    department: str | None = None,
    structure: int | None = None,
    sector: str | None = None,
    communes: Sequence[int] = (),
) -> QuerySet[Structure] | None:
    """The structures a professional must work at for the given filters, or None without such filters.
    A legal entity (EJ) stands for itself and its sites."""
    structures = Structure.objects.all()
    filtered = False
    if department:
        structures, filtered = structures.filter(commune__department__code=department), True
    if structure is not None:
        structures, filtered = structures.filter(Q(pk=structure) | Q(legal_entity_id=structure)), True
    if sector:
        structures, filtered = structures.filter(sector_code=sector), True
    if communes:
        structures, filtered = structures.filter(commune_id__in=list(communes)), True
    return structures if filtered else None


def _works_at(structures: QuerySet[Structure]) -> Q | None:
    """Professionals with an exercice at one of `structures`; None when nobody works there.

    One query reads who works there when that is at most `SCOPE_EXERCICES_MAX` exercices (a department,
    a commune, a structure): passed as an array of ids, the filter costs one hash probe per row the name
    index yields, and the planner knows how selective it is. The read streams (no DISTINCT, which would
    read a whole large scope before stopping): past the limit, the condition stays a subquery instead —
    such a scope holds enough professionals for the name order to meet them quickly."""
    exercices = Exercice.objects.filter(structure__in=structures.order_by().values("pk"))
    rows = list(exercices.order_by().values_list("professional_id", flat=True)[: SCOPE_EXERCICES_MAX + 1])
    if not rows:
        return None
    if len(rows) > SCOPE_EXERCICES_MAX:
        return Q(Exists(exercices.filter(professional_id=OuterRef("pk"))))
    ids = sorted(set(rows))
    return Q(AnyOf(F("pk"), ids)) if _is_postgresql() else Q(pk__in=ids)


def _professional_base(
    *, profession: str | None, specialty: str | Sequence[str] | None, scope: Q | None
) -> QuerySet[Professional]:
    qs = Professional.objects.all()
    if profession:
        qs = qs.filter(profession_code=profession)
    if specialty:
        qs = qs.filter(specialty_code__in=[specialty] if isinstance(specialty, str) else list(specialty))
    if scope is not None:
        qs = qs.filter(scope)
    return qs


def _professional_identifier_lists(
    base: QuerySet[Professional], identifier: Identifier, size: int
) -> list[Ranked]:
    """Exact matches, inactive professionals included (an RPPS typed in full deserves an answer), and
    the active professionals of the structure a FINESS or SIRET names."""
    keys = (_name_key("last_name"), _name_key("first_name"))
    value = identifier.value
    exact = {
        "rpps": Q(rpps=value),
        "idnat": Q(idnat_ps=value),
        "nine": Q(adeli=value),
        "mailbox": Q(mailboxes__address=value),
    }.get(identifier.kind)
    lists = []
    if exact is not None:
        lists.append(_ranked(base.filter(exact), EXACT_IDENTIFIER_SCORE, keys, size))
    # A site's FINESS, or a legal entity's: its sites carry it as their FINESS EJ.
    sites = {
        "nine": Q(finess_et=value) | Q(finess_ej=value),
        "siret": Q(siret=value),
    }.get(identifier.kind)
    if sites is not None:
        works_there = _works_at(Structure.objects.filter(sites))
        if works_there is not None:
            active = base.filter(works_there, is_active=True)
            lists.append(_ranked(active, RELATED_IDENTIFIER_SCORE, keys, size))
    return lists


def _professional_name_lists(
    base: QuerySet[Professional], words: Sequence[str], expansions: Expansions, size: int
) -> list[Ranked]:
    """The ranked lists of `words` read as a name: the whole phrase as a last name or as a first name,
    and every split into two phrases as last name + first name, in both orders."""
    qs = base.alias(_last=SearchNorm("last_name"), _first=SearchNorm("first_name"))
    keys = (F("_last"), F("_first"))
    lists = []
    phrase = " ".join(words)
    for term, score in expansions.get(phrase, {}).get("L", []):
        lists.append(_ranked(qs.filter(_last=term), score, keys, size))
    for term, score in expansions.get(phrase, {}).get("F", []):  # one word is more often a last name
        lists.append(_ranked(qs.filter(_first=term), score - FIRST_NAME_ONLY_PENALTY, keys, size))
    for cut in range(1, len(words)):
        one, two = " ".join(words[:cut]), " ".join(words[cut:])
        for last_phrase, first_phrase in ((one, two), (two, one)):
            lasts = expansions.get(last_phrase, {}).get("L", [])
            firsts = expansions.get(first_phrase, {}).get("F", [])
            if not lasts or not firsts:
                continue
            pair_score = (
                Case(*(When(_last=t, then=Value(s)) for t, s in lasts), output_field=FloatField())
                + Case(*(When(_first=t, then=Value(s)) for t, s in firsts), output_field=FloatField())
            ) / Value(2.0)
            bound = (lasts[0][1] + firsts[0][1]) / 2  # expansions come best first
            pair = qs.filter(_last__in=[t for t, _ in lasts], _first__in=[t for t, _ in firsts])
            lists.append(_ranked(pair, pair_score, keys, size, bound))
    return lists


def _name_phrases(words: Sequence[str]) -> list[str]:
    """The phrases `_professional_name_lists` looks up: the whole, and both halves of every split."""
    phrases = [" ".join(words)]
    for cut in range(1, len(words)):
        phrases += [" ".join(words[:cut]), " ".join(words[cut:])]
    return list(dict.fromkeys(p for p in phrases if p))


def _specialty_label_table() -> dict[str, str]:
    return {code: label for table in nomenclatures().specialties.values() for code, label in table.items()}


def professional_search(
    *,
    query: str = "",
    profession: str | None = None,
    specialty: str | Sequence[str] | None = None,
    department: str | None = None,
    structure: int | None = None,
    sector: str | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> SearchPage[Professional]:
    """Professionals matching `query` and the filters, best first, with their exercices (structure,
    commune, department) prefetched.

    `department` is a department code, `structure` a structure id (a legal entity includes its sites),
    `sector` a TRE_R02 code of the structure worked at, `specialty` one code or several.
    Queries: 1 to read the query (lexicon, communes; text only), 1 per set of filters on where people
    work, 1 for the ranked lists (2 when the best ones do not fill the page), 1 for the rows and 1 for
    their exercices."""
    limit, offset = clamp_page(limit=limit, offset=offset)
    size = offset + limit + 1
    parsed = parse_query(query)
    empty = SearchPage[Professional]([], offset, limit, False)
    scope_structures = _scope_structures(department=department, structure=structure, sector=sector)
    scope = None
    if scope_structures is not None:
        scope = _works_at(scope_structures)
        if scope is None:
            return empty
    base = _professional_base(profession=profession, specialty=specialty, scope=scope)
    interpretation = Interpretation()
    if parsed.identifier is not None:
        interpretation = Interpretation(identifier=parsed.identifier.label)
        lists = _professional_identifier_lists(base, parsed.identifier, size)
    elif not parsed.words:
        keys = (_name_key("last_name"), _name_key("first_name"))
        lists = [_ranked(base.filter(is_active=True), FILTER_ONLY_SCORE, keys, size)]
    elif not _is_postgresql():
        lists = [_fallback_professionals(base.filter(is_active=True), parsed, size)]
    else:
        lists, interpretation = _professional_text_lists(
            base.filter(is_active=True), parsed, size, scope_structures
        )
    pks, has_next = _merge(lists, offset=offset, limit=limit)
    results = _in_order(Professional.objects.all(), pks)
    prefetch_exercices(results)
    return SearchPage(results, offset, limit, has_next, interpretation)


def _professional_text_lists(
    base: QuerySet[Professional],
    parsed: ParsedQuery,
    size: int,
    scope_structures: QuerySet[Structure] | None,
) -> tuple[list[Ranked], Interpretation]:
    candidates = _commune_candidates(parsed.rest)
    rest_phrases = _name_phrases(parsed.rest) if parsed.recognised else []
    phrases = list(dict.fromkeys(_name_phrases(parsed.words) + rest_phrases))
    expansions, found = _analyse(phrases, ("L", "F"), list(candidates))
    communes, rest = _recognise_communes(parsed.rest, candidates, found)

    # Reading 1: every word is part of the name.
    lists = _professional_name_lists(base, parsed.words, expansions, size)
    if not (parsed.recognised or communes):
        return lists, Interpretation()
    # Reading 2: the recognised profession, specialty and commune are filters; the rest is the name.
    narrowed = base
    if parsed.professions:
        narrowed = narrowed.filter(profession_code__in=parsed.professions)
    if parsed.specialties:
        narrowed = narrowed.filter(specialty_code__in=parsed.specialties)
    located = True
    if communes:
        structures = Structure.objects.all() if scope_structures is None else scope_structures
        in_communes = structures.filter(commune_id__in=[c.id for c in communes])
        works_there = _works_at(in_communes)
        if works_there is None:
            located = False
        else:
            narrowed = narrowed.filter(works_there)
    if located and rest:
        missing = [p for p in _name_phrases(rest) if p not in expansions]
        if missing:  # the words left once the commune is out: not read yet
            more, _ = _analyse(missing, ("L", "F"))
            expansions = {**expansions, **more}
        lists += _professional_name_lists(narrowed, rest, expansions, size)
    elif located:
        keys = (SearchNorm("last_name"), SearchNorm("first_name"))
        lists.append(_ranked(narrowed, FILTER_ONLY_SCORE, keys, size))
    codes = nomenclatures()
    interpretation = Interpretation(
        professions=tuple(codes.professions.get(c, c) for c in parsed.professions),
        specialties=tuple(dict.fromkeys(_specialty_label_table().get(c, c) for c in parsed.specialties)),
        communes=tuple(c.label for c in communes),
        name=" ".join(rest),
    )
    return lists, interpretation


def _fallback_professionals(base: QuerySet[Professional], parsed: ParsedQuery, size: int) -> Ranked:
    """SQLite (demo): every word of the query in the last or first name, in name order."""
    qs = base
    for word in parsed.text.lower().split():
        if word not in TITLES:
            qs = qs.filter(Q(last_name__icontains=word) | Q(first_name__icontains=word))
    return _ranked(qs, FILTER_ONLY_SCORE, (Lower("last_name"), Lower("first_name")), size)


def prefetch_exercices(professionals: list[Professional]) -> None:
    """Attach each professional's exercices (structure, commune, department), main exercice first."""
    prefetch_related_objects(
        professionals,
        Prefetch(
            "exercices",
            queryset=Exercice.objects.select_related("structure__commune__department").order_by("id"),
        ),
    )


def professional_get(*, pk: int) -> Professional:
    """One professional with exercices (structure, commune, department) and MSSanté addresses.
    Raises Professional.DoesNotExist. Queries: 3."""
    return Professional.objects.prefetch_related(
        Prefetch(
            "exercices",
            queryset=Exercice.objects.select_related("structure__commune__department").order_by("id"),
        ),
        Prefetch("mailboxes", queryset=MailboxAddress.objects.order_by("address")),
    ).get(pk=pk)


# --- Structures ---------------------------------------------------------------------------------------


def _structure_base(*, department: str | None, sector: str | None, kind: str | None) -> QuerySet[Structure]:
    qs = Structure.objects.all()
    if department:
        qs = qs.filter(commune__department__code=department)
    if sector:
        qs = qs.filter(sector_code=sector)
    if kind:
        qs = qs.filter(kind=kind)
    return qs


def _structure_identifier_lists(base: QuerySet[Structure], identifier: Identifier, size: int) -> list[Ranked]:
    """Exact matches, inactive structures included; a legal entity first, then its sites."""
    value = identifier.value
    condition = {
        "nine": Q(finess_et=value) | Q(finess_ej=value) | Q(siren=value),
        "siret": Q(siret=value),
        "mailbox": Q(mailboxes__address=value),
    }.get(identifier.kind)
    if condition is None:  # RPPS, IdNat_PS: identifiers of professionals
        return []
    keys = (Case(When(kind="EJ", then=Value("0")), default=Value("1")), _structure_key())
    return [_ranked(base.filter(condition), EXACT_IDENTIFIER_SCORE, keys, size)]


def _tsquery(groups: Sequence[Sequence[str]]) -> str:
    """``(a | b) & (c)``: one group of alternatives per query word (words are [a-z0-9]+, no quoting)."""
    return " & ".join("(" + " | ".join(group) + ")" for group in groups)


def _structure_word_lists(
    base: QuerySet[Structure], words: Sequence[str], expansions: Expansions, size: int, bonus: float = 0.0
) -> list[Ranked]:
    """Structures whose name holds every word: exactly (score 2), or through close words of the
    lexicon (score 1); in name order."""
    keys = (UnindexedSortName("name"), _NO_KEY)
    exact = _tsquery([[w] for w in words])
    lists = [_ranked(base.filter(NameHasWords(F("name"), Value(exact))), 2.0 + bonus, keys, size)]
    groups = []
    for word in words:
        close = [term for term, _ in expansions.get(word, {}).get("S", []) if term != word]
        groups.append([word, *close])
    if any(len(group) > 1 for group in groups):
        fuzzy = _tsquery(groups)
        lists.append(_ranked(base.filter(NameHasWords(F("name"), Value(fuzzy))), 1.0 + bonus, keys, size))
    return lists


def structure_search(
    *,
    query: str = "",
    department: str | None = None,
    sector: str | None = None,
    kind: str | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> SearchPage[Structure]:
    """Structures matching `query` and the filters, best first, with commune and department.
    Queries: 1 to read the query (lexicon, communes; text only), 1 for the ranked lists (2 when the best
    ones do not fill the page), 1 for the rows."""
    limit, offset = clamp_page(limit=limit, offset=offset)
    size = offset + limit + 1
    parsed = parse_query(query)
    base = _structure_base(department=department, sector=sector, kind=kind)
    interpretation = Interpretation()
    lists: list[Ranked] = []
    words = [ABBREVIATIONS.get(w, w) for w in parsed.words if w not in STOP_WORDS]
    if parsed.identifier is not None:
        interpretation = Interpretation(identifier=parsed.identifier.label)
        lists = _structure_identifier_lists(base, parsed.identifier, size)
    elif not words:
        lists = [_ranked(base.filter(is_active=True), FILTER_ONLY_SCORE, (_structure_key(), _NO_KEY), size)]
    elif not _is_postgresql():
        qs = base.filter(is_active=True)
        for word in parsed.text.lower().split():
            qs = qs.filter(name__icontains=word)
        lists = [_ranked(qs, FILTER_ONLY_SCORE, (_structure_key(), _NO_KEY), size)]
    else:
        active = base.filter(is_active=True)
        candidates = _commune_candidates(parsed.words)
        expansions, found = _analyse(words, ("S",), list(candidates))
        communes, rest = _recognise_communes(parsed.words, candidates, found)
        lists = _structure_word_lists(active, words, expansions, size)
        if communes:
            located = active.filter(commune_id__in=[c.id for c in communes])
            rest_words = [ABBREVIATIONS.get(w, w) for w in rest if w not in STOP_WORDS]
            if rest_words:
                lists += _structure_word_lists(located, rest_words, expansions, size, bonus=-0.25)
            else:
                lists.append(_ranked(located, 1.5, (_structure_key(), _NO_KEY), size))
            interpretation = Interpretation(communes=tuple(c.label for c in communes), name=" ".join(rest))
    pks, has_next = _merge(lists, offset=offset, limit=limit)
    results = _in_order(Structure.objects.select_related("commune__department"), pks)
    return SearchPage(results, offset, limit, has_next, interpretation)


def structure_get(*, pk: int) -> Structure:
    """One structure with commune, legal entity, sites and MSSanté addresses (organisational and
    applicative). Raises Structure.DoesNotExist. Queries: 3."""
    return (
        Structure.objects.select_related("commune__department", "legal_entity__commune__department")
        .prefetch_related(
            Prefetch(
                "sites",
                queryset=Structure.objects.select_related("commune__department").order_by(
                    _structure_key(), "id"
                ),
            ),
            Prefetch(
                "mailboxes",
                queryset=MailboxAddress.objects.filter(
                    kind__in=[MailboxKind.ORGANIZATIONAL, MailboxKind.APPLICATION]
                ).order_by("kind", "address"),
            ),
        )
        .get(pk=pk)
    )
