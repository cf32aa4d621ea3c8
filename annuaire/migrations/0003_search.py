"""Directory search on PostgreSQL: accent-free normalisation, name indexes, the name lexicon.

Everything here is PostgreSQL-only and invisible to Django's model state (no Meta.indexes), so the
embedded SQLite demo still migrates (it searches with ``icontains``, see ``annuaire.selectors.search``)
and ``makemigrations --check`` stays clean.

What is created, and why (figures from ``bench/annuaire_search.py`` at 1 000 000 professionals):

* extensions ``unaccent`` and ``pg_trgm``;
* ``enrs_unaccent(text)``: ``unaccent`` with its dictionary pinned, declared IMMUTABLE so that it can
  be indexed; ``enrs_search_norm(text)``: lower case, no accents, every run of non-alphanumerics turned
  into one space (« LE GALL », « Le-Gall » and « le gall » all read ``le gall``). The Python twin is
  ``annuaire.selectors.search.normalize``;
* ``annuaire_search_term``: the lexicon of distinct normalised last names (``L``), first names (``F``)
  and structure-name words (``S``), with a trigram GIN index. Typo tolerance runs on this small table
  (a few hundred thousand rows for the real RPPS, not a million), and the professionals are then read
  through plain btree indexes on the normalised names, in name order, a few rows per matching name.
  Running ``%>`` directly on a trigram index of the professional table meant rechecking every row of
  a frequent name (5 000 « Martin ») on every query: 40–130 ms instead of 1–3 ms;
* statement-level triggers keep the lexicon up to date on INSERT / UPDATE (COPY included) and empty
  it on TRUNCATE. Names that disappear stay in the lexicon: they simply match no row;
* btree indexes ``(norm(last_name), norm(first_name), id)`` and the reverse, covering the columns the
  filters read; a GIN full-text index on the normalised structure name (words, ``simple`` configuration:
  no stemming of proper names) and a btree for the structures' name order; a btree on the normalised
  commune name (commune names in the query).

Identifier lookups (RPPS, IdNat_PS, ADELI, FINESS EJ/ET, SIREN, SIRET, MSSanté address) use the unique
and btree indexes of 0001.
"""

from django.db import migrations

FORWARD = [
    "CREATE EXTENSION IF NOT EXISTS unaccent WITH SCHEMA public",
    "CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public",
    # unaccent() is STABLE (it reads its dictionary by name): pinning the dictionary makes the result
    # depend on the input only, which is what IMMUTABLE promises.
    """
    CREATE OR REPLACE FUNCTION public.enrs_unaccent(text) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
        AS $$ SELECT public.unaccent('public.unaccent'::regdictionary, $1) $$
    """,
    """
    CREATE OR REPLACE FUNCTION public.enrs_search_norm(text) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
        AS $$ SELECT pg_catalog.btrim(pg_catalog.regexp_replace(
                  pg_catalog.lower(public.enrs_unaccent($1)), '[^a-z0-9]+', ' ', 'g')) $$
    """,
    # --- professionals: exact normalised names, in name order -----------------------------------------
    # The INCLUDE columns let a filtered search (profession, department …) read index entries only,
    # fetching no table row for the names it scans and rejects.
    """
    CREATE INDEX annuaire_pro_search_last_idx ON annuaire_professional
        (public.enrs_search_norm(last_name), public.enrs_search_norm(first_name), id)
        INCLUDE (last_name, first_name, is_active, profession_code, specialty_code)
    """,
    """
    CREATE INDEX annuaire_pro_search_first_idx ON annuaire_professional
        (public.enrs_search_norm(first_name), public.enrs_search_norm(last_name), id)
        INCLUDE (last_name, first_name, is_active, profession_code, specialty_code)
    """,
    # The professionals of a set of structures (a department, a commune, a structure), index only.
    "CREATE INDEX annuaire_exercice_search_scope_idx ON annuaire_exercice (structure_id, professional_id)",
    # --- structures: words of the name, and the name order -------------------------------------------
    """
    CREATE INDEX annuaire_structure_search_words_idx ON annuaire_structure
        USING gin (to_tsvector('simple'::regconfig, public.enrs_search_norm(name)))
    """,
    # Name order of structures (accents and case ignored), for lists without words.
    """
    CREATE INDEX annuaire_structure_search_name_idx ON annuaire_structure
        (pg_catalog.lower(public.enrs_unaccent(name)), id)
    """,
    # --- communes named in the query -------------------------------------------------------------------
    "CREATE INDEX annuaire_commune_search_name_idx ON annuaire_commune (public.enrs_search_norm(name))",
    # --- the lexicon -------------------------------------------------------------------------------------
    """
    CREATE TABLE annuaire_search_term (
        field char(1) NOT NULL CHECK (field IN ('L', 'F', 'S')),
        term text NOT NULL CHECK (term <> ''),
        PRIMARY KEY (field, term)
    )
    """,
    "CREATE INDEX annuaire_search_term_trgm_idx ON annuaire_search_term USING gin (term public.gin_trgm_ops)",
    """
    CREATE FUNCTION annuaire_search_term_from_professionals() RETURNS trigger
        LANGUAGE plpgsql AS $$
    BEGIN
        -- Names repeat: normalise each distinct spelling once, not each row.
        INSERT INTO annuaire_search_term (field, term)
        SELECT field, term FROM (
            SELECT 'L' AS field, public.enrs_search_norm(name) AS term
            FROM (SELECT DISTINCT last_name AS name FROM new_rows) AS last_names
            UNION
            SELECT 'F', public.enrs_search_norm(name)
            FROM (SELECT DISTINCT first_name AS name FROM new_rows) AS first_names
        ) AS names
        WHERE term <> ''
        ON CONFLICT DO NOTHING;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION annuaire_search_term_from_structures() RETURNS trigger
        LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO annuaire_search_term (field, term)
        SELECT DISTINCT 'S', word
        FROM (SELECT DISTINCT name FROM new_rows) AS names,
             regexp_split_to_table(public.enrs_search_norm(name), ' ') AS word
        WHERE word <> ''
        ON CONFLICT DO NOTHING;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION annuaire_search_term_truncate() RETURNS trigger
        LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM annuaire_search_term WHERE field = ANY (TG_ARGV);
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER annuaire_pro_search_terms_insert AFTER INSERT ON annuaire_professional
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
        EXECUTE FUNCTION annuaire_search_term_from_professionals()
    """,
    """
    CREATE TRIGGER annuaire_pro_search_terms_update AFTER UPDATE ON annuaire_professional
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
        EXECUTE FUNCTION annuaire_search_term_from_professionals()
    """,
    """
    CREATE TRIGGER annuaire_pro_search_terms_truncate AFTER TRUNCATE ON annuaire_professional
        FOR EACH STATEMENT EXECUTE FUNCTION annuaire_search_term_truncate('L', 'F')
    """,
    """
    CREATE TRIGGER annuaire_structure_search_terms_insert AFTER INSERT ON annuaire_structure
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
        EXECUTE FUNCTION annuaire_search_term_from_structures()
    """,
    """
    CREATE TRIGGER annuaire_structure_search_terms_update AFTER UPDATE ON annuaire_structure
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
        EXECUTE FUNCTION annuaire_search_term_from_structures()
    """,
    """
    CREATE TRIGGER annuaire_structure_search_terms_truncate AFTER TRUNCATE ON annuaire_structure
        FOR EACH STATEMENT EXECUTE FUNCTION annuaire_search_term_truncate('S')
    """,
    # The rows already there.
    """
    INSERT INTO annuaire_search_term (field, term)
    SELECT field, term FROM (
        SELECT 'L' AS field, public.enrs_search_norm(name) AS term
        FROM (SELECT DISTINCT last_name AS name FROM annuaire_professional) AS last_names
        UNION
        SELECT 'F', public.enrs_search_norm(name)
        FROM (SELECT DISTINCT first_name AS name FROM annuaire_professional) AS first_names
        UNION
        SELECT 'S', word
        FROM (SELECT DISTINCT name FROM annuaire_structure) AS names,
             regexp_split_to_table(public.enrs_search_norm(name), ' ') AS word
    ) AS terms
    WHERE term <> ''
    """,
    # Statistics of the new index expressions (the planner's row estimates), without waiting for
    # autovacuum, which analyses after row changes, not after an index is created.
    "ANALYZE annuaire_professional, annuaire_structure, annuaire_commune, annuaire_exercice, annuaire_search_term",
]

BACKWARD = [
    "DROP TRIGGER IF EXISTS annuaire_structure_search_terms_truncate ON annuaire_structure",
    "DROP TRIGGER IF EXISTS annuaire_structure_search_terms_update ON annuaire_structure",
    "DROP TRIGGER IF EXISTS annuaire_structure_search_terms_insert ON annuaire_structure",
    "DROP TRIGGER IF EXISTS annuaire_pro_search_terms_truncate ON annuaire_professional",
    "DROP TRIGGER IF EXISTS annuaire_pro_search_terms_update ON annuaire_professional",
    "DROP TRIGGER IF EXISTS annuaire_pro_search_terms_insert ON annuaire_professional",
    "DROP FUNCTION IF EXISTS annuaire_search_term_truncate()",
    "DROP FUNCTION IF EXISTS annuaire_search_term_from_structures()",
    "DROP FUNCTION IF EXISTS annuaire_search_term_from_professionals()",
    "DROP TABLE IF EXISTS annuaire_search_term",
    "DROP INDEX IF EXISTS annuaire_commune_search_name_idx",
    "DROP INDEX IF EXISTS annuaire_structure_search_name_idx",
    "DROP INDEX IF EXISTS annuaire_structure_search_words_idx",
    "DROP INDEX IF EXISTS annuaire_exercice_search_scope_idx",
    "DROP INDEX IF EXISTS annuaire_pro_search_first_idx",
    "DROP INDEX IF EXISTS annuaire_pro_search_last_idx",
    "DROP FUNCTION IF EXISTS public.enrs_search_norm(text)",
    "DROP FUNCTION IF EXISTS public.enrs_unaccent(text)",
    # The extensions stay: other parts of the portal may use them.
]


def _run(statements: list[str]):
    def run(apps, schema_editor) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return  # SQLite demo: the selectors fall back to icontains
        for statement in statements:
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("annuaire", "0002_members_and_imports"),
    ]

    operations = [
        migrations.RunPython(_run(FORWARD), _run(BACKWARD), elidable=False),
    ]
