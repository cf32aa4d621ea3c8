"""Directory search (annuaire.selectors.search): query reading, relevance (accents, case, typos,
identifiers, communes, professions), filters, pagination, the lexicon triggers and query counts."""

from dataclasses import dataclass

import pytest
from django.db import connection

from annuaire.models import Commune, MailboxKind, Professional, Structure, StructureKind
from annuaire.selectors import search
from annuaire.selectors.search import (
    Identifier,
    identifier_of,
    normalize,
    parse_query,
    professional_get,
    professional_search,
    structure_get,
    structure_search,
)
from tests.annuaire.factories import (
    CommuneFactory,
    DepartmentFactory,
    ExerciceFactory,
    MailboxAddressFactory,
    ProfessionalFactory,
    StructureFactory,
)

# --- A small directory ------------------------------------------------------------------------------------


@dataclass
class Directory:
    rennes: Commune
    brest: Commune
    paris: Commune
    chu: Structure  # legal entity (EJ), Rennes
    chu_site: Structure  # its site (ET), Rennes
    chu_annex: Structure  # its second site, Brest
    pharmacy: Structure  # « Pharmacie de l'Église », Brest
    cabinet: Structure  # no FINESS, Paris
    helene: Professional  # Hélène LEFÈVRE, nurse, CHU site
    jean_dupont: Professional  # physician (general practice), cabinet in Paris
    jeanne_dumont: Professional  # nurse, Brest pharmacy
    jean_martin: Professional  # cardiologist, CHU site (Rennes)
    marie_martin: Professional  # nurse, CHU annex (Brest)
    paul_marie: Professional  # last name MARIE, pharmacist, Brest pharmacy
    erwan_le_gall: Professional  # physiotherapist, cabinet in Paris
    jean_paris: Professional  # Dr Jean PARIS, physician in Rennes
    jean_durand: Professional  # physician, works in Paris
    retired_martin: Professional  # Luc MARTIN, inactive
    adeli_nurse: Professional  # identified by ADELI only


def pro(last: str, first: str, *, at: Structure, **extra: object) -> Professional:
    professional = ProfessionalFactory.create(last_name=last, first_name=first, **extra)
    ExerciceFactory(professional=professional, structure=at)
    return professional


def build_directory() -> Directory:
    brittany = DepartmentFactory.create(code="35", name="Ille-et-Vilaine", region_code="53")
    finistere = DepartmentFactory.create(code="29", name="Finistère", region_code="53")
    seine = DepartmentFactory.create(code="75", name="Paris", region_code="11")
    rennes = CommuneFactory.create(
        insee_code="35238", name="Rennes", department=brittany, postal_code="35000"
    )
    brest = CommuneFactory.create(insee_code="29019", name="Brest", department=finistere, postal_code="29200")
    paris = CommuneFactory.create(insee_code="75056", name="Paris", department=seine, postal_code="75001")
    chu = StructureFactory.create(
        legal_entity=True, name="Centre hospitalier universitaire de Rennes", commune=rennes
    )
    # (legal_entity_id: « legal_entity » is the factory's trait for an EJ)
    chu_site = StructureFactory.create(
        name="Hôpital Pontchaillou",
        commune=rennes,
        finess_ej=chu.finess_ej,
        legal_entity_id=chu.pk,
        latitude=48.11,
        longitude=-1.68,
    )
    chu_annex = StructureFactory.create(
        name="Hôpital de la Mer", commune=brest, finess_ej=chu.finess_ej, legal_entity_id=chu.pk
    )
    pharmacy = StructureFactory.create(
        name="Pharmacie de l'Église",
        commune=brest,
        category_code="620",
        category_label="Pharmacie d'Officine",
        sector_code="SA33",
        sector_label="Pharmacie d'officine",
    )
    cabinet = StructureFactory.create(without_finess=True, name="Cabinet médical de la Gare", commune=paris)
    physician = {"profession_code": "10", "profession_label": "Médecin"}
    return Directory(
        rennes=rennes,
        brest=brest,
        paris=paris,
        chu=chu,
        chu_site=chu_site,
        chu_annex=chu_annex,
        pharmacy=pharmacy,
        cabinet=cabinet,
        helene=pro("LEFÈVRE", "Hélène", at=chu_site),
        jean_dupont=pro(
            "DUPONT",
            "Jean",
            at=cabinet,
            physician=True,
            specialty_code="SM54",
            specialty_label="Médecine Générale",
        ),
        jeanne_dumont=pro("DUMONT", "Jeanne", at=pharmacy),
        jean_martin=pro(
            "MARTIN",
            "Jean",
            at=chu_site,
            **physician,
            specialty_code="SM04",
            specialty_label="Cardiologie et maladies vasculaires",
        ),
        marie_martin=pro("MARTIN", "Marie", at=chu_annex),
        paul_marie=pro("MARIE", "Paul", at=pharmacy, profession_code="21", profession_label="Pharmacien"),
        erwan_le_gall=pro(
            "LE GALL", "Erwan", at=cabinet, profession_code="70", profession_label="Masseur-Kinésithérapeute"
        ),
        jean_paris=pro("PARIS", "Jean", at=chu_site, **physician),
        jean_durand=pro("DURAND", "Jean", at=cabinet, **physician),
        retired_martin=pro("MARTIN", "Luc", at=chu_site, is_active=False),
        adeli_nurse=pro("KERMARREC", "Soizic", at=pharmacy, with_adeli=True, adeli="359876543"),
    )


@pytest.fixture
def directory(db: None) -> Directory:
    return build_directory()


def department_code(structure: Structure) -> str:
    assert structure.commune is not None
    return structure.commune.department.code


def names(page: search.SearchPage[Professional]) -> list[str]:
    return [f"{p.first_name} {p.last_name}" for p in page.results]


# --- Normalisation and reading the query (pure) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hélène LEFÈVRE", "helene lefevre"),
        ("  Le-Gall ", "le gall"),
        ("L'Haÿ-les-Roses", "l hay les roses"),
        ("ŒUVRE Cœur", "oeuvre coeur"),
        ("Ærø Straße", "aero strasse"),
        ("Saint-Malo (35)", "saint malo 35"),
        ("ÉLODIE", "elodie"),
    ],
)
def test_normalize_lowers_strips_accents_and_punctuation(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.mark.django_db
def test_the_python_normalisation_is_the_twin_of_the_sql_function() -> None:
    samples = ["Hélène LEFÈVRE", "Le-Gall", "L'Haÿ-les-Roses", "ŒUVRE Cœur", "Ærø", "Noël Çà", "  a  b  "]
    with connection.cursor() as cursor:
        cursor.execute("SELECT s, enrs_search_norm(s) FROM unnest(%s::text[]) AS s", [samples])
        rows = dict(cursor.fetchall())
    assert {s: normalize(s) for s in samples} == rows


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10003461033", Identifier("rpps", "10003461033")),
        ("100 034 610 33", Identifier("rpps", "10003461033")),
        ("810003461033", Identifier("idnat", "810003461033")),
        ("0351234567", Identifier("idnat", "0351234567")),
        ("750712184", Identifier("nine", "750712184")),
        ("2A0001071", Identifier("nine", "2A0001071")),
        ("2a0001071", Identifier("nine", "2A0001071")),
        ("35600000000048", Identifier("siret", "35600000000048")),
        ("Jean.Martin@Medecin.MSSante.fr", Identifier("mailbox", "jean.martin@medecin.mssante.fr")),
        ("martin", None),
        ("35000", None),
        ("jean martin", None),
    ],
)
def test_identifier_shapes(text: str, expected: Identifier | None) -> None:
    assert identifier_of(text) == expected


def test_reading_a_query_drops_titles_and_recognises_professions_and_specialties() -> None:
    parsed = parse_query("Dr Martin cardiologue")
    assert parsed.words == ("martin", "cardiologue")
    assert parsed.specialties == ("SM04",)
    assert parsed.rest == ("martin",)

    nurse = parse_query("infirmière LEFÈVRE")
    assert nurse.professions == ("60",)
    assert nurse.rest == ("lefevre",)

    midwife = parse_query("sage-femme")
    assert midwife.professions == ("50",)
    assert midwife.rest == ()

    general = parse_query("médecin généraliste Dupont")  # the longest phrase wins
    assert general.specialties == ("SM26", "SM53", "SM54")
    assert general.professions == ()
    assert general.rest == ("dupont",)

    assert not parse_query("Dupont").recognised


# --- Relevance -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query", ["helene lefevre", "HÉLÈNE LEFÈVRE", "Lefevre", "lefèvre hélène", "LEFEVRE"]
)
def test_accents_and_case_do_not_matter(directory: Directory, query: str) -> None:
    page = professional_search(query=query)
    assert page.results[0] == directory.helene


@pytest.mark.parametrize("query", ["Dupon", "dupond", "Dupontt"])
def test_typos_find_the_intended_name(directory: Directory, query: str) -> None:
    page = professional_search(query=query)
    assert page.results[0] == directory.jean_dupont
    assert directory.jeanne_dumont not in page.results  # DUMONT is another name, not a typo of it


def test_a_typo_in_a_first_and_last_name(directory: Directory) -> None:
    assert professional_search(query="Helen Lefevr").results[0] == directory.helene


def test_first_and_last_name_in_either_order(directory: Directory) -> None:
    for query in ("jean martin", "martin jean", "Jean MARTIN"):
        page = professional_search(query=query)
        assert page.results[0] == directory.jean_martin, query
    # Marie MARTIN is a Martin, but not a Jean: after, if at all.
    page = professional_search(query="jean martin")
    assert directory.marie_martin not in page.results[:1]


def test_a_single_word_matches_last_names_before_first_names(directory: Directory) -> None:
    page = professional_search(query="marie")
    assert names(page)[:2] == ["Paul MARIE", "Marie MARTIN"]


def test_exact_names_come_before_close_ones_then_name_order(directory: Directory) -> None:
    page = professional_search(query="martin")
    # The inactive Luc MARTIN is not listed; exact MARTINs in first-name order.
    assert names(page)[:2] == ["Jean MARTIN", "Marie MARTIN"]
    assert directory.retired_martin not in page.results


def test_compound_last_names(directory: Directory) -> None:
    for query in ("le gall", "Le-Gall", "LE GALL Erwan", "erwan le gall"):
        assert professional_search(query=query).results[0] == directory.erwan_le_gall, query


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("rpps", "helene"),
        ("idnat", "helene"),
        ("adeli", "adeli_nurse"),
        ("adeli_idnat", "adeli_nurse"),
        ("mailbox", "helene"),
    ],
)
def test_identifiers_find_their_professional(directory: Directory, query: str, expected: str) -> None:
    MailboxAddressFactory(professional=directory.helene, address="helene.lefevre@chu-rennes.mssante.fr")
    nurse = directory.adeli_nurse
    text = {
        "rpps": directory.helene.rpps,
        "idnat": directory.helene.idnat_ps,
        "adeli": nurse.adeli,
        "adeli_idnat": nurse.idnat_ps,
        "mailbox": "Helene.Lefevre@CHU-Rennes.mssante.fr",
    }[query]
    page = professional_search(query=text)
    assert page.results == [getattr(directory, expected)]
    assert page.interpretation.identifier


def test_an_inactive_professional_is_found_by_identifier_only(directory: Directory) -> None:
    retired = directory.retired_martin
    assert professional_search(query=retired.rpps).results == [retired]
    assert retired not in professional_search(query="luc martin").results


def test_a_finess_lists_the_professionals_who_work_there(directory: Directory) -> None:
    site = professional_search(query=str(directory.chu_site.finess_et))
    assert set(site.results) == {directory.helene, directory.jean_martin, directory.jean_paris}
    # The legal entity's FINESS covers every site (the annex in Brest too); name order.
    entity = professional_search(query=directory.chu.finess_ej)
    assert names(entity) == ["Hélène LEFÈVRE", "Jean MARTIN", "Marie MARTIN", "Jean PARIS"]
    assert professional_search(query=directory.cabinet.siret).results == [
        directory.jean_dupont,
        directory.jean_durand,
        directory.erwan_le_gall,
    ]
    assert professional_search(query="350000000").results == []  # nobody, nothing


def test_a_recognised_specialty_filters_and_the_rest_is_the_name(directory: Directory) -> None:
    page = professional_search(query="cardiologue martin")
    assert page.results == [directory.jean_martin]
    assert page.interpretation.specialties == ("Cardiologie et maladies vasculaires",)
    assert page.interpretation.name == "martin"

    nurses = professional_search(query="infirmières")
    assert directory.helene in nurses.results
    assert directory.jean_martin not in nurses.results
    assert nurses.interpretation.professions == ("Infirmier",)


def test_a_commune_in_the_query_filters_on_where_people_work(directory: Directory) -> None:
    page = professional_search(query="martin brest")
    assert page.results == [directory.marie_martin]
    assert page.interpretation.communes == ("Brest (29)",)

    everyone = professional_search(query="Rennes")
    assert set(everyone.results) == {directory.helene, directory.jean_martin, directory.jean_paris}


def test_a_name_that_is_also_a_commune_ranks_the_person_first(directory: Directory) -> None:
    page = professional_search(query="Paris Jean")
    # Dr Jean PARIS first, then the Jeans who work in Paris.
    assert page.results[:2] == [directory.jean_paris, directory.jean_dupont]
    assert directory.jean_durand in page.results


# --- Filters ---------------------------------------------------------------------------------------------


def test_filters_without_text_list_in_name_order(directory: Directory) -> None:
    physicians = professional_search(profession="10")
    assert names(physicians) == ["Jean DUPONT", "Jean DURAND", "Jean MARTIN", "Jean PARIS"]
    assert professional_search(specialty="SM04").results == [directory.jean_martin]
    assert professional_search(specialty=["SM04", "SM54"]).results == [
        directory.jean_dupont,
        directory.jean_martin,
    ]


def test_department_filter_follows_the_exercices(directory: Directory) -> None:
    finistere = professional_search(department="29")
    assert set(finistere.results) == {
        directory.jeanne_dumont,
        directory.marie_martin,
        directory.paul_marie,
        directory.adeli_nurse,
    }
    assert professional_search(query="martin", department="29").results == [directory.marie_martin]
    assert professional_search(query="martin", department="2A").results == []


def test_structure_filter_includes_the_sites_of_a_legal_entity(directory: Directory) -> None:
    assert names(professional_search(structure=directory.chu_annex.pk)) == ["Marie MARTIN"]
    assert len(professional_search(structure=directory.chu.pk).results) == 4


def test_sector_and_profession_filters_combine(directory: Directory) -> None:
    page = professional_search(sector="SA33")
    assert set(page.results) == {directory.jeanne_dumont, directory.paul_marie, directory.adeli_nurse}
    assert professional_search(sector="SA33", profession="21").results == [directory.paul_marie]
    assert professional_search(query="jean", profession="10", department="35").results == [
        directory.jean_martin,
        directory.jean_paris,
    ]


# --- Pagination ----------------------------------------------------------------------------------------


def test_pages_follow_each_other_without_gaps_or_repeats(db: None) -> None:
    structure = StructureFactory.create(name="Maison de santé")
    created = [pro("BERNARD", f"Prénom{n:02d}", at=structure) for n in range(7)]
    created += [pro("BERNAD", "Zoé", at=structure)]  # a close name: after the exact ones
    seen = []
    offset = 0
    while True:
        page = professional_search(query="bernard", limit=3, offset=offset)
        seen += page.results
        if not page.has_next:
            break
        offset += 3
    assert seen == created
    assert page.number == 3
    assert page.has_previous
    assert professional_search(query="bernard", limit=8).has_next is False


def test_limit_and_offset_are_clamped(db: None) -> None:
    page = professional_search(query="x", limit=10_000, offset=5_000)
    assert page.limit == search.MAX_LIMIT
    assert page.offset + page.limit <= search.MAX_RESULTS


# --- Structures ------------------------------------------------------------------------------------------


def test_structures_by_words_of_their_name(directory: Directory) -> None:
    assert structure_search(query="pharmacie eglise").results == [directory.pharmacy]
    assert structure_search(query="PHARMACIE DE L'ÉGLISE").results == [directory.pharmacy]
    assert structure_search(query="pharmaci").results == [directory.pharmacy]  # typo
    assert structure_search(query="pontchailou").results == [directory.chu_site]  # typo
    # In name order, accents ignored: « Hôpital de la Mer » < « Hôpital Pontchaillou »; « hospitalier »
    # is another word, not a typo of « hôpital ».
    hospitals = structure_search(query="hopital")
    assert hospitals.results == [directory.chu_annex, directory.chu_site]


def test_structures_by_identifier_legal_entity_first(directory: Directory) -> None:
    page = structure_search(query=directory.chu.finess_ej)
    assert page.results == [directory.chu, directory.chu_annex, directory.chu_site]
    assert structure_search(query=str(directory.chu_site.finess_et)).results == [directory.chu_site]
    assert structure_search(query=directory.cabinet.siret).results == [directory.cabinet]
    assert structure_search(query=directory.pharmacy.siren).results == [directory.pharmacy]
    assert structure_search(query="10003461033").results == []  # an RPPS names no structure


def test_structures_in_a_commune_and_filters(directory: Directory) -> None:
    page = structure_search(query="brest")
    assert set(page.results) == {directory.chu_annex, directory.pharmacy}
    assert page.interpretation.communes == ("Brest (29)",)
    assert structure_search(query="pharmacie brest").results == [directory.pharmacy]
    assert structure_search(department="35", kind=StructureKind.SITE).results == [directory.chu_site]
    assert structure_search(sector="SA33").results == [directory.pharmacy]
    inactive = StructureFactory.create(name="Pharmacie du Port", commune=directory.brest, is_active=False)
    assert inactive not in structure_search(query="pharmacie").results
    assert structure_search(query=str(inactive.finess_et)).results == [inactive]


# --- Detail reads --------------------------------------------------------------------------------------


def test_professional_get_prefetches_exercices_and_mailboxes(
    directory: Directory, django_assert_num_queries
) -> None:
    ExerciceFactory(professional=directory.helene, structure=directory.pharmacy, role_code="FON-05")
    MailboxAddressFactory(professional=directory.helene, address="helene.lefevre@chu-rennes.mssante.fr")
    with django_assert_num_queries(3):
        helene = professional_get(pk=directory.helene.pk)
        structures = [(e.structure.name, department_code(e.structure)) for e in helene.exercices.all()]
        addresses = [m.address for m in helene.mailboxes.all()]
    assert structures == [("Hôpital Pontchaillou", "35"), ("Pharmacie de l'Église", "29")]
    assert addresses == ["helene.lefevre@chu-rennes.mssante.fr"]
    with pytest.raises(Professional.DoesNotExist):
        professional_get(pk=0)


def test_structure_get_prefetches_sites_and_organisational_mailboxes(
    directory: Directory, django_assert_num_queries
) -> None:
    MailboxAddressFactory(organizational=True, structure=directory.chu, address="secretariat@chu.mssante.fr")
    MailboxAddressFactory(
        kind=MailboxKind.APPLICATION, professional=None, structure=directory.chu, address="dpi@chu.mssante.fr"
    )
    with django_assert_num_queries(3):
        chu = structure_get(pk=directory.chu.pk)
        sites = [(s.name, department_code(s)) for s in chu.sites.all()]
        mailboxes = [(m.kind, m.address) for m in chu.mailboxes.all()]
        assert chu.commune is not None
        assert chu.commune.department.code == "35"
    assert sites == [("Hôpital de la Mer", "29"), ("Hôpital Pontchaillou", "35")]
    assert mailboxes == [("APP", "dpi@chu.mssante.fr"), ("ORG", "secretariat@chu.mssante.fr")]


# --- Query counts ------------------------------------------------------------------------------------------


def test_query_counts_of_the_search(directory: Directory, django_assert_num_queries) -> None:
    # Read the query (lexicon + communes), the ranked lists, the rows, their exercices.
    with django_assert_num_queries(4):
        page = professional_search(query="martin")
        [department_code(e.structure) for p in page.results for e in p.exercices.all()]
    # + the professionals of the department, read once.
    with django_assert_num_queries(5):
        professional_search(query="martin", department="35")
    # An identifier: the list, the rows, their exercices.
    with django_assert_num_queries(3):
        professional_search(query=directory.helene.rpps)
    # Structures: read the query, the ranked lists, the rows (commune and department joined).
    with django_assert_num_queries(3):
        structures = structure_search(query="pharmacie")
        [department_code(s) for s in structures.results]


def test_the_number_of_queries_does_not_grow_with_the_page(db: None, django_assert_num_queries) -> None:
    structure = StructureFactory.create(name="Centre de santé")
    for n in range(30):
        pro("ROBERT", f"Prénom{n:02d}", at=structure)
    with django_assert_num_queries(4):
        page = professional_search(query="robert", limit=25)
        [e.structure.name for p in page.results for e in p.exercices.all()]
    assert len(page.results) == 25


# --- The lexicon -----------------------------------------------------------------------------------------


def lexicon(field: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT term FROM annuaire_search_term WHERE field = %s", [field])
        return {term for (term,) in cursor.fetchall()}


@pytest.mark.django_db
def test_the_lexicon_follows_inserts_and_updates() -> None:
    professional = ProfessionalFactory.create(last_name="QUÉMÉNEUR", first_name="Gwénaëlle")
    assert "quemeneur" in lexicon("L")
    assert "gwenaelle" in lexicon("F")
    Professional.objects.filter(pk=professional.pk).update(last_name="Le Quéré")
    assert "le quere" in lexicon("L")
    StructureFactory.create(name="Clinique de l'Hermine")
    assert {"clinique", "hermine"} <= lexicon("S")
    # Typo tolerance through the lexicon, for a name added a moment ago.
    ExerciceFactory(professional=professional, structure=StructureFactory.create())
    assert professional_search(query="le querre").results == [professional]


@pytest.mark.django_db(transaction=True)
def test_the_lexicon_is_emptied_with_the_tables() -> None:
    ProfessionalFactory.create(last_name="TRUNCATED", first_name="Temp")
    assert "truncated" in lexicon("L")
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE annuaire_professional CASCADE")
    assert "truncated" not in lexicon("L")


# --- SQLite fallback (embedded demo) ------------------------------------------------------------------


def test_without_postgresql_the_search_falls_back_to_icontains(directory: Directory, monkeypatch) -> None:
    monkeypatch.setattr(search, "_is_postgresql", lambda: False)
    assert names(professional_search(query="mart")) == ["Jean MARTIN", "Marie MARTIN"]
    assert professional_search(query="Hélène").results == [directory.helene]
    assert professional_search(query=directory.helene.rpps).results == [directory.helene]
    assert professional_search(query="mart", department="29").results == [directory.marie_martin]
    assert structure_search(query="pharmacie").results == [directory.pharmacy]
