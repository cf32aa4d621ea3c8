"""Cost of ``seed_demo --scale national`` on PostgreSQL: wall time, rows/s, peak memory, size on disk.

    createdb -h 127.0.0.1 -U postgres enrs_bench_seed
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/enrs_bench_seed .venv/bin/python manage.py migrate
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/enrs_bench_seed .venv/bin/python bench/seed_national.py
    dropdb -h 127.0.0.1 -U postgres enrs_bench_seed

Runs the same code as the command (``annuaire.demo.seed_demo``: one transaction, COPY, ~1 000 000
professionals over every department), replacing whatever the directory holds (``--reset``), and prints:
wall time (including the commit), rows written per table and per second, the peak RSS of this process
(``resource.getrusage``: the row producer and writer; PostgreSQL's own memory is not in it), and the
size of each table with its indexes.
"""

import argparse
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/enrs_bench_seed"


def _setup_django() -> None:
    os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    os.environ["REDIS_URL"] = ""  # demo mode: the demo accounts are created, as with the command
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["DJANGO_SETTINGS_MODULE"] = "enrs.settings.base"  # DEBUG off: no query log in memory
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="national", choices=["small", "region", "national"])
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    _setup_django()

    from django.conf import settings
    from django.db import connection

    from annuaire import demo

    if connection.vendor != "postgresql":
        print("Ce banc mesure le chargement par COPY : DATABASE_URL doit viser PostgreSQL.", file=sys.stderr)
        return 2
    rss_before = _peak_rss_mb()
    started = time.perf_counter()
    report = demo.seed_demo(
        scale=args.scale,
        region_code=settings.ENRS_REGION_CODE,
        seed=args.seed if args.seed is not None else demo.DEFAULT_SEED,
        reset=True,
    )
    wall = time.perf_counter() - started
    rss_peak = _peak_rss_mb()

    print(f"seed_demo --scale {args.scale} on {connection.settings_dict['NAME']} (PostgreSQL)")
    print(f"  wall time          {wall:8.1f} s   (one transaction, COPY, commit included)")
    print(f"  rows written       {report.total_rows:>10,}")
    print(f"  rows/s             {report.total_rows / wall:>10,.0f}")
    print(f"  peak RSS           {rss_peak:8.1f} MB  (after django.setup: {rss_before:.1f} MB)")
    with connection.cursor() as cursor:
        for table, count in report.counts.items():
            cursor.execute("SELECT pg_total_relation_size(%s)", [table.model._meta.db_table])
            (size,) = cursor.fetchone() or (0,)
            print(f"  {table.label:<24}{count:>10,} rows  {size / 2**20:8.1f} MB with indexes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
