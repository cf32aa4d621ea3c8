"""Latency of the ROR orientation search at 50 000 offers: selector, page, and the raw SQL baseline.

    .venv/bin/python bench/ror_search.py                # create, load, measure, drop (about 5 minutes)
    .venv/bin/python bench/ror_search.py --keep         # keep the database for another run (--no-setup)
    .venv/bin/python bench/ror_search.py --no-setup --keep

With setup (the default) it creates a dedicated database, migrates it, loads the national demo directory
(``seed_demo --scale national --force --no-users``) and the demo ROR (``seed_ror_demo --offers 50000``),
then runs a fixed, deterministic query mix — origins at communes all over France, radius 20 to 100 km,
with and without filters (champ d'activité, activité opérationnelle, mode de prise en charge, adult
patients) and « disponible maintenant » — N times through:

* ``selector``: ``ror.selectors.offer_orientation_search`` (Django connection, row objects, stale flag);
* ``page``: the whole ``ror.views.search`` view (form, commune lookup by INSEE code, SVG map, template);
* ``raw SQL``: the very same statement (``orientation_search_sql``) run through a bare psycopg
  connection and fetched — the floor any Python layer adds to;
* ``no bbox``: the same search without the bounding box (haversine over every location) — what the
  index range scan saves; PostGIS is not installed, so the decision bbox + haversine vs PostGIS is taken
  on these figures (see the report printed at the end).

It prints p50 / p95 / p99 / max per path, the selector/raw and page/raw ratios at p95, result counts,
and the plan of one representative query (EXPLAIN ANALYZE). The database is dropped at the end unless
``--keep``.
"""

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "enrs_bench_rorsearch"
PG = {"host": "127.0.0.1", "user": "postgres", "port": "5432"}
DATABASE_URL = f"postgres://{PG['user']}@{PG['host']}:{PG['port']}/{DB_NAME}"
PYTHON = sys.executable
TARGET_P95_MS = 50.0


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=DATABASE_URL,
        REDIS_URL="",
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="enrs.settings.base",  # DEBUG off: no query log in memory
    )
    return env


def _run(args: list[str], what: str) -> float:
    started = time.perf_counter()
    print(f"… {what}", flush=True)
    subprocess.run(args, cwd=ROOT, env=_env(), check=True, stdout=subprocess.DEVNULL)  # noqa: S603
    elapsed = time.perf_counter() - started
    print(f"  {what}: {elapsed:.1f} s", flush=True)
    return elapsed


def _pg_tool(name: str, *args: str) -> None:
    """dropdb / createdb / psql against the bench server."""
    path = shutil.which(name)
    if path is None:
        raise SystemExit(f"{name} not found: install the PostgreSQL client tools")
    connection = ["-h", PG["host"], "-U", PG["user"], "-p", PG["port"]]
    subprocess.run([path, *connection, *args], check=True)  # noqa: S603


def setup(offers: int) -> None:
    _pg_tool("dropdb", "--if-exists", DB_NAME)
    _pg_tool("createdb", DB_NAME)
    manage = [PYTHON, "manage.py"]
    _run([*manage, "migrate", "--no-input"], "migrate")
    _run([*manage, "seed_demo", "--scale", "national", "--force", "--no-users"], "seed_demo --scale national")
    _run([*manage, "seed_ror_demo", "--offers", str(offers)], f"seed_ror_demo --offers {offers}")
    _pg_tool("psql", "-q", "-d", DB_NAME, "-c", "VACUUM ANALYZE")


def drop() -> None:
    _pg_tool("dropdb", "--if-exists", DB_NAME)
    print(f"database {DB_NAME} dropped")


def _setup_django() -> None:
    os.environ.update(_env())
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()


@dataclass(frozen=True)
class Query:
    insee: str
    origin: tuple[float, float]
    radius_km: int
    filters: dict[str, Any]
    available_only: bool


FILTER_SETS: list[dict[str, Any]] = [
    {},
    {"activity": "01"},
    {"activity": "01", "specialty": "013", "care_mode": "28", "age_group": "adult"},  # adult cardiology beds
    {"activity": "03"},
    {"specialty": "127"},  # réanimation polyvalente
    {"care_mode": "29"},
]
RADII = [20, 30, 50, 100]


def query_mix(size: int, seed: int) -> list[Query]:
    """A deterministic mix: communes drawn from the directory (weighted towards where structures are),
    radius, filters and « disponible maintenant » drawn independently."""
    from annuaire.models import Commune, Structure

    rng = random.Random(seed)
    commune_ids = list(
        Structure.objects.filter(commune__latitude__isnull=False)
        .order_by("pk")
        .values_list("commune_id", flat=True)
    )
    picked = [rng.choice(commune_ids) for _ in range(size)]
    communes = Commune.objects.in_bulk(set(picked))
    mix = []
    for commune_id in picked:
        commune = communes[commune_id]
        assert commune.latitude is not None
        assert commune.longitude is not None
        mix.append(
            Query(
                insee=commune.insee_code,
                origin=(commune.latitude, commune.longitude),
                radius_km=rng.choice(RADII),
                filters=rng.choice(FILTER_SETS),
                available_only=rng.random() < 0.5,
            )
        )
    return mix


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def measure(
    paths: dict[str, Callable[[Query], int]], mix: list[Query], rounds: int
) -> dict[str, dict[str, float]]:
    """Run every query of the mix through every path, interleaved (query by query), so that the load of
    a shared machine weighs the same on every path; then p50 / p95 / p99 / max per path."""
    for q in mix[: min(len(mix), 50)]:  # warm-up: plans, caches, connections
        for run in paths.values():
            run(q)
    timings: dict[str, list[float]] = {name: [] for name in paths}
    results: dict[str, list[int]] = {name: [] for name in paths}
    for _ in range(rounds):
        for q in mix:
            for name, run in paths.items():
                started = time.perf_counter()
                results[name].append(run(q))
                timings[name].append((time.perf_counter() - started) * 1000)
    out = {}
    for name, values in timings.items():
        stats = out[name] = {
            "n": len(values),
            "p50": percentile(values, 0.50),
            "p95": percentile(values, 0.95),
            "p99": percentile(values, 0.99),
            "max": max(values),
            "mean_rows": statistics.fmean(results[name]),
        }
        print(
            f"  {name:<10} n={stats['n']:<5} p50 {stats['p50']:6.2f} ms   p95 {stats['p95']:6.2f} ms   "
            f"p99 {stats['p99']:6.2f} ms   max {stats['max']:7.2f} ms   rows/query {stats['mean_rows']:5.1f}",
            flush=True,
        )
    return out


def bench(queries: int, rounds: int, seed: int) -> int:
    _setup_django()
    import psycopg
    from django.contrib.auth.models import AnonymousUser
    from django.test import RequestFactory
    from django.utils import timezone

    from enrs.accounts.models import User
    from enrs.accounts.roles import Role
    from ror import views
    from ror.models import Capacity, Offer, OfferLocation
    from ror.selectors import offer_orientation_search, orientation_search_sql

    counts = {
        "offers": Offer.objects.count(),
        "locations": OfferLocation.objects.count(),
        "capacities": Capacity.objects.count(),
    }
    print(
        f"database {DB_NAME}: {counts['offers']:,} offers, {counts['locations']:,} locations, "
        f"{counts['capacities']:,} capacity rows"
    )
    mix = query_mix(queries, seed)
    print(f"query mix: {len(mix)} queries x {rounds} rounds (seed {seed}); radius {RADII} km; "
          f"{len(FILTER_SETS)} filter sets; half with « disponible maintenant »")  # fmt: skip

    def selector(q: Query) -> int:
        return len(
            offer_orientation_search(
                origin=q.origin, radius_km=q.radius_km, available_only=q.available_only, **q.filters
            )
        )

    # Parameters bound by the server, never prepared: a prepared statement switches to a generic plan after
    # 5 runs, blind to the bounding box of each query — not the baseline we want.
    raw = psycopg.connect(
        host=PG["host"],
        user=PG["user"],
        port=PG["port"],
        dbname=DB_NAME,
        autocommit=True,
        prepare_threshold=None,
    )

    def raw_sql(q: Query) -> int:
        sql, params = orientation_search_sql(
            origin=q.origin, radius_km=q.radius_km, available_only=q.available_only, **q.filters
        )
        with raw.cursor() as cursor:
            cursor.execute(sql, params)
            return len(cursor.fetchall())

    def no_bbox(q: Query) -> int:
        sql, params = orientation_search_sql(
            origin=q.origin, radius_km=q.radius_km, available_only=q.available_only, **q.filters
        )
        # Same statement, the bounding box made always true: the haversine runs over every location.
        params.update(lat_min=-90.0, lat_max=90.0, lon_min_0=-180.0, lon_max_0=180.0)
        with raw.cursor() as cursor:
            cursor.execute(sql, params)
            return len(cursor.fetchall())

    user = User.objects.filter(role=Role.CLINICIAN).first() or User(username="bench", role=Role.CLINICIAN)
    factory = RequestFactory()

    def page(q: Query) -> int:
        data = {"origin": q.insee, "radius_km": str(q.radius_km), **q.filters}
        if q.available_only:
            data["available_only"] = "on"
        request = factory.get("/ror/recherche/", data)
        request.user = user or AnonymousUser()
        request.session = {}  # type: ignore[assignment]
        response = views.search(request)
        assert response.status_code == 200, response.status_code
        return response.content.count(b'class="ror-resultat"')

    # Check once that all paths agree on the results.
    for q in mix[:20]:
        assert selector(q) == raw_sql(q) == no_bbox(q) == page(q), q

    server = raw.info.server_version // 10000
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nlatency ({timezone.now():%Y-%m-%d %H:%M} UTC, PostgreSQL {server}, load average {load}):")
    stats = measure({"raw SQL": raw_sql, "selector": selector, "page": page, "no bbox": no_bbox}, mix, rounds)
    s_raw, s_sel, s_page, s_nobox = (stats[k] for k in ("raw SQL", "selector", "page", "no bbox"))

    print("\nratios at p95:")
    print(f"  selector / raw SQL  {s_sel['p95'] / s_raw['p95']:5.2f}")
    print(f"  page / raw SQL      {s_page['p95'] / s_raw['p95']:5.2f}")
    print(f"  no bbox / bbox      {s_nobox['p95'] / s_raw['p95']:5.2f}  (SQL, both through psycopg)")
    verdict = "OK" if s_sel["p95"] < TARGET_P95_MS else "OVER TARGET"
    print(f"\ntarget: selector p95 < {TARGET_P95_MS:.0f} ms at {counts['offers']:,} offers → {verdict}")

    wide = Query("", (48.8566, 2.3522), 100, {"activity": "01"}, True)  # Paris, 100 km: the densest case
    sql, params = orientation_search_sql(
        origin=wide.origin, radius_km=wide.radius_km, available_only=True, **wide.filters
    )
    with raw.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}", params)
        plan = [line for (line,) in cursor.fetchall()]
    print("\nplan — Paris, 100 km, MCO, disponible maintenant:")
    for line in plan:
        print(f"  {line}")
    raw.close()
    from django.db import connections

    connections.close_all()  # or dropdb refuses: "being accessed by other users"
    return 0 if s_sel["p95"] < TARGET_P95_MS else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offers", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=300, help="queries in the mix")
    parser.add_argument("--rounds", type=int, default=3, help="times the mix is run per path")
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument("--no-setup", action="store_true", help="reuse the database of a --keep run")
    parser.add_argument("--keep", action="store_true", help="do not drop the database at the end")
    args = parser.parse_args()
    if not args.no_setup:
        setup(args.offers)
    try:
        return bench(args.queries, args.rounds, args.seed)
    finally:
        if not args.keep:
            drop()


if __name__ == "__main__":
    raise SystemExit(main())
