"""Cost of ``import_rpps`` on a national-size extraction: 1 000 000 lines, imported three times.

    .venv/bin/python bench/import_rpps.py            # creates, migrates, then drops enrs_bench_import
    .venv/bin/python bench/import_rpps.py --rows 200000 --keep-db

What it does, on a dedicated PostgreSQL database (the equivalent of ``createdb -h 127.0.0.1 -U postgres
enrs_bench_import``, then ``migrate``, and ``dropdb`` at the end unless ``--keep-db``):

1. writes a synthetic ``PS_LibreAcces_Personne_activite`` file of ``--rows`` lines (UTF-8, the 56 columns,
   one to three activities per professional, some without activity, ~1 % of lines breaking a rule) into a
   temporary directory, deleted at the end: it is never committed;
2. imports it into an empty directory (every professional, exercice and site created);
3. imports the same file again (idempotent: nothing may change);
4. imports a modified file (1 % renamed, 1 % moved to another site, 0.5 % gone, 0.5 % new).

For each run it prints wall time (commit included), lines/s, the counts, the time spent in each phase
(hashing pass, parsing + COPY, set-based SQL), and the peak RSS of this process (``ru_maxrss``: the parser
and writer; PostgreSQL's own memory is not in it), then the size of the tables.
"""

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "enrs_bench_import"
HOST, USER = "127.0.0.1", "postgres"


def _setup_django() -> None:
    os.environ["DATABASE_URL"] = f"postgres://{USER}@{HOST}:5432/{DATABASE}"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["DJANGO_SETTINGS_MODULE"] = "enrs.settings.base"  # DEBUG off: no query log in memory
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def _admin(sql: str) -> None:
    """createdb / dropdb, through the maintenance database."""
    import psycopg

    with psycopg.connect(f"postgresql://{USER}@{HOST}:5432/postgres", autocommit=True) as admin:
        admin.execute(sql)  # a constant: the bench database name


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# --- The synthetic extraction ---------------------------------------------------------------------------


def write_extraction(path: Path, *, rows: int, version: int) -> int:
    """Write an extraction of about `rows` lines; `version` 2 is version 1 with the changes of a month."""
    from annuaire.demo import FIRST_NAMES, LAST_NAMES, STREETS
    from annuaire.standards import identifiers
    from annuaire.standards.rpps_extract import COLUMNS

    index = {name: position for position, name in enumerate(COLUMNS)}
    width = len(COLUMNS)
    professions = [
        ("10", "Médecin"), ("60", "Infirmier"), ("70", "Masseur-Kinésithérapeute"), ("21", "Pharmacien"),
        ("40", "Chirurgien-Dentiste"), ("50", "Sage-Femme"), ("60", "Infirmier"), ("60", "Infirmier"),
    ]  # fmt: skip
    modes = (("L", "Libéral, indépendant, artisan, commerçant"), ("S", "Salarié"))
    n_cabinets, n_hospitals, n_pharmacies = 60_000, 3_000, 20_000
    hospitals = [identifiers.finess_generate("35", 300_000 + k) for k in range(n_hospitals)]
    siren = [identifiers.siren_generate(30_000_000 + k) for k in range(n_pharmacies)]
    pharmacies = [identifiers.siret_generate(s, 1) for s in siren]

    def site(number: int) -> dict[str, str]:
        kind = number % 10
        if kind < 6:  # a liberal cabinet, known by its technical id only
            cabinet = number % n_cabinets
            return {
                "Identifiant technique de la structure": f"C{35_100_000_000 + cabinet}",
                "Raison sociale site": f"CABINET {LAST_NAMES[cabinet % len(LAST_NAMES)]}",
                "Code secteur d'activité": "SA07",
                "Libellé Voie (coord. structure)": STREETS[cabinet % len(STREETS)].upper(),
                "Numéro Voie (coord. structure)": str(cabinet % 120 + 1),
                "Code postal (coord. structure)": f"35{cabinet % 1000:03d}",
            }
        if kind < 9:  # a hospital: FINESS + technical id
            hospital = number % n_hospitals
            return {
                "Numéro FINESS site": hospitals[hospital],
                "Identifiant technique de la structure": f"R{10_100_000_000_000 + hospital}",
                "Raison sociale site": f"CENTRE HOSPITALIER {hospital}",
                "Code secteur d'activité": "SA01",
                "Code postal (coord. structure)": "35000",
            }
        pharmacy = number % n_pharmacies  # a pharmacy: SIRET + technical id
        return {
            "Numéro SIRET site": pharmacies[pharmacy],
            "Identifiant technique de la structure": f"R{10_200_000_000_000 + pharmacy}",
            "Raison sociale site": f"PHARMACIE {pharmacy}",
            "Code secteur d'activité": "SA33",
        }

    people = int(rows / 1.25)
    written = 0
    with path.open("w", encoding="utf-8", newline="") as stream:
        stream.write("|".join(COLUMNS) + "|\r\n")
        total_people = people + (people // 200 if version == 2 else 0)
        for person in range(total_people):
            if version == 2 and person % 200 == 7:
                continue  # gone
            rpps = identifiers.rpps_generate(20_000_000 + person)
            code, label = professions[person % len(professions)]
            last_name = LAST_NAMES[(person * 7919) % len(LAST_NAMES)]
            if version == 2 and person % 100 == 3:
                last_name += "-RENOMMÉ"
            first_name = FIRST_NAMES[(person * 104_729) % len(FIRST_NAMES)]
            activities = 0 if person % 20 == 0 else 1 + (person % 5 == 1) + (person % 17 == 2)
            base = {
                "Type d'identifiant PP": "8", "Identifiant PP": rpps,
                "Identification nationale PP": "8" + rpps,
                "Code civilité": "MME" if person % 2 else "M", "Nom d'exercice": last_name,
                "Prénom d'exercice": first_name, "Code profession": code, "Libellé profession": label,
                "Code catégorie professionnelle": "C",
            }  # fmt: skip
            if code == "10":
                base |= {"Code type savoir-faire": "S", "Code savoir-faire": "SM54",
                         "Libellé savoir-faire": "Médecine Générale"}  # fmt: skip
            for activity in range(max(activities, 1)):
                fields = [""] * width
                values = dict(base)
                if activities:
                    shift = 1 if version == 2 and person % 100 == 5 else 0  # moved to another site
                    values |= site(person * 3 + activity + shift)
                    mode = modes[0] if values.get("Code secteur d'activité") == "SA07" else modes[1]
                    values |= {"Code mode exercice": mode[0], "Libellé mode exercice": mode[1]}
                if person % 97 == 13 and activity == 0:
                    values["Code profession"] = "99"  # ~1 % of lines break a rule
                for name, value in values.items():
                    fields[index[name]] = value
                stream.write("|".join(fields) + "|\r\n")
                written += 1
    return written


# --- Runs -----------------------------------------------------------------------------------------------


def run_import(label: str, path: Path) -> None:
    from django.db import connection

    from annuaire.services import imports

    phases: dict[str, float] = {}
    current = ""
    since = started = time.perf_counter()

    def progress(phase: str, done: int, total: int | None) -> None:
        nonlocal current, since
        name = phase if phase != imports.PHASE_APPLY else f"{phase} ({done + 1}/{total})"
        if name != current:
            now = time.perf_counter()
            if current:
                phases[current] = phases.get(current, 0.0) + now - since
            current, since = name, now

    run = imports.import_rpps_file(path=path, progress=progress)
    wall = time.perf_counter() - started
    phases[current] = phases.get(current, 0.0) + time.perf_counter() - since
    summary = imports.import_summary(run)
    print(f"\n{label}: {path.name} ({path.stat().st_size / 1e6:.0f} MB, {run.encoding})")
    print(f"  wall time          {wall:8.1f} s   (one transaction, commit included)")
    print(f"  lines read         {run.rows_read:>10,}   → {run.rows_read / wall:,.0f} lines/s")
    print(
        f"  professionals      created {run.rows_created:,} · updated {run.rows_updated:,} · "
        f"unchanged {run.rows_unchanged:,} · deactivated {run.rows_deactivated:,} · rejected lines "
        f"{run.rows_rejected:,}"
    )
    print(
        f"  structures created {summary.get('structures_created', 0):,} · exercices added "
        f"{summary.get('exercices_added', 0):,} / updated {summary.get('exercices_updated', 0):,} / removed "
        f"{summary.get('exercices_removed', 0):,}"
    )
    for name, seconds in phases.items():
        print(f"    {name:<40}{seconds:8.1f} s")
    print(f"  peak RSS so far    {_peak_rss_mb():8.1f} MB  (this process; PostgreSQL not included)")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM annuaire_directorychange WHERE run_id = %s", [run.pk])
        row = cursor.fetchone()
        print(f"  change log rows    {row[0] if row else 0:>10,}")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database at the end")
    args = parser.parse_args()

    _admin(f"DROP DATABASE IF EXISTS {DATABASE}")
    _admin(f"CREATE DATABASE {DATABASE}")
    try:
        _setup_django()
        from django.core.management import call_command
        from django.db import connection

        call_command("migrate", verbosity=0)
        rss_before = _peak_rss_mb()
        with tempfile.TemporaryDirectory(prefix="enrs-bench-rpps-") as directory:
            first = Path(directory) / "PS_LibreAcces_Personne_activite_bench_v1.txt"
            second = Path(directory) / "PS_LibreAcces_Personne_activite_bench_v2.txt"
            started = time.perf_counter()
            lines = write_extraction(first, rows=args.rows, version=1)
            write_extraction(second, rows=args.rows, version=2)
            print(f"generated {lines:,} lines (+ the modified file) in {time.perf_counter() - started:.1f} s")
            print(f"peak RSS after django.setup and migrate: {rss_before:.1f} MB")
            run_import("1. first import into an empty directory", first)
            run_import("2. the same file again (must change nothing)", first)
            run_import("3. a modified file (renamed, moved, gone, new)", second)
        with connection.cursor() as cursor:
            print("\ntables:")
            for table in ("annuaire_professional", "annuaire_exercice", "annuaire_structure",
                          "annuaire_directorychange", "annuaire_importrejection"):  # fmt: skip
                cursor.execute(f"SELECT count(*), pg_total_relation_size(%s) FROM {table}", [table])  # noqa: S608
                count, size = cursor.fetchone() or (0, 0)
                print(f"  {table:<28}{count:>12,} rows {size / 2**20:9.1f} MB with indexes")
        connection.close()
    finally:
        if not args.keep_db:
            _admin(f"DROP DATABASE IF EXISTS {DATABASE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
