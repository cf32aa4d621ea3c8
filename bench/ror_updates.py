"""Sustained availability updates of the ROR while offers are searched: 50 updates/s for 60 s.

    .venv/bin/python bench/ror_updates.py [--rate 50] [--seconds 60] [--writers 2] [--offers 50000] [--keep]

Creates a dedicated database (createdb enrs_bench_ror), migrates it, loads the small demo directory
(``seed_demo --scale small --no-users``) and ``seed_ror_demo --offers N``, then:

1. baseline: one reader process runs simple offer queries alone for 10 s;
2. load: `--writers` processes share `--rate` updates/s (open loop: update i of a writer is due at
   t0 + i / (rate / writers); a late writer catches up without sleeping), each update going through
   ``ror.services.capacity_update`` with an API token scoped to every structure (scope check, row locks of
   the offer, Capacity upserts, history row, audit event — the whole write path except HTTP), while the
   reader keeps querying; ``--batch N`` groups N updates in one transaction, as an API request carrying
   N updates does (one commit and one turn on the audit chain's lock for N updates);
3. prints achieved updates/s, p50 / p95 / p99 / max update latency, refused updates, and the reader's
   p50 / p95 query latency alone and under load.

Reader's query mix (what the orientation search and the capacity pages do, in simple form): offers of a
champ d'activité with available beds in a bounding box (joins Offer, OfferLocation, Capacity), one offer by
identifier with its capacities, and the stale-offer count of one structure.
The database is dropped at the end unless ``--keep``.
"""

import argparse
import multiprocessing as mp
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "enrs_bench_ror"
BASELINE_SECONDS = 10.0


def _setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ["REDIS_URL"] = ""
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["DJANGO_SETTINGS_MODULE"] = "enrs.settings.base"  # DEBUG off: no query log in memory
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def _pg_tool(*command: str) -> None:
    """createdb / dropdb (PostgreSQL client tools, found on PATH; arguments are ours, not user input)."""
    subprocess.run(command, check=True)  # noqa: S603


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _targets() -> list[tuple[int, int, str, int]]:
    """(offer id, location id, capacity type, installed) of every offer with its first location."""
    from ror.models import Capacity

    rows = Capacity.objects.filter(status="01").values_list(
        "offer_id", "location_id", "capacity_type", "count"
    )
    return list(rows)


def _writer(
    database_url: str, rate: float, seconds: float, batch: int, seed: int, token_id: int, start: Any, out: Any
) -> None:
    _setup_django(database_url)
    from django.core.exceptions import ValidationError
    from django.db import connection, transaction

    from ror.models import Offer, OfferLocation, RorApiToken, UpdateSource
    from ror.services import capacity_update

    token = RorApiToken.objects.get(pk=token_id)
    targets = _targets()
    rng = random.Random(seed)  # benchmark data, not a secret
    offers = {
        o.pk: o
        for o in Offer.objects.filter(pk__in=[t[0] for t in targets]).only("pk", "structure_id", "identifier")
    }
    locations = {
        loc.pk: loc
        for loc in OfferLocation.objects.filter(pk__in={t[1] for t in targets}).only("pk", "identifier")
    }
    first = targets[0]
    capacity_update(  # warm-up (connection, caches), not measured
        offer=offers[first[0]],
        location=locations[first[1]],
        values=[{"capacity_type": first[2], "status": "02", "count": 0}],
        token=token,
        source=UpdateSource.API,
    )
    latencies: list[float] = []
    refused = 0
    start.wait()
    t0 = time.perf_counter()
    n = 0
    while True:
        due = t0 + n / rate
        if due - t0 >= seconds:
            break
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        picked = sorted((rng.choice(targets) for _ in range(batch)), key=lambda t: t[0])  # lock order
        began = time.perf_counter()
        with transaction.atomic():  # batch = 1: the service's own transaction; > 1: what the API does
            for offer_id, location_id, capacity_type, installed in picked:
                available = rng.randint(0, max(0, installed // 3))
                reserved = rng.randint(0, min(2, installed - available))
                values = [
                    {"capacity_type": capacity_type, "status": "02", "count": available},
                    {
                        "capacity_type": capacity_type,
                        "status": "03",
                        "count": installed - available - reserved,
                    },
                    {"capacity_type": capacity_type, "status": "04", "count": reserved},
                ]
                try:
                    with transaction.atomic():
                        capacity_update(
                            offer=offers[offer_id],
                            location=locations[location_id],
                            values=values,
                            token=token,
                            source=UpdateSource.API,
                        )
                except ValidationError:
                    refused += 1
        latencies.append(time.perf_counter() - began)
        n += batch
    elapsed = time.perf_counter() - t0
    connection.close()
    out.put(("writer", latencies, refused, elapsed))


def _reader(database_url: str, seconds: float, seed: int, start: Any, out: Any, label: str) -> None:
    _setup_django(database_url)
    from django.db import connection
    from django.db.models import Q

    from ror.models import Capacity, Offer, OfferLocation

    rng = random.Random(seed)  # benchmark data, not a secret
    identifiers = list(Offer.objects.values_list("identifier", flat=True)[:5000])
    structures = list(Offer.objects.values_list("structure_id", flat=True).distinct())
    positions = [
        (float(lat), float(lon))
        for lat, lon in OfferLocation.objects.exclude(latitude=None)
        .exclude(longitude=None)
        .values_list("latitude", "longitude")[:2000]
        if lat is not None and lon is not None
    ]
    fields = ["01", "02", "03", "04"]

    def bbox_query() -> int:
        lat, lon = rng.choice(positions)
        d = 0.3  # ≈ 30 km
        return len(
            Offer.objects.filter(
                is_active=True,
                activity_field_code=rng.choice(fields),
                locations__latitude__range=(lat - d, lat + d),
                locations__longitude__range=(lon - d * 1.4, lon + d * 1.4),
                capacities__status="02",
                capacities__count__gt=0,
            )
            .distinct()
            .values_list("pk", "identifier", "name", "capacity_updated_at")[:50]
        )

    def one_offer() -> int:
        offer = Offer.objects.get(identifier=rng.choice(identifiers))
        return len(list(Capacity.objects.filter(offer=offer).values_list("status", "count")))

    def stale_count() -> int:
        from datetime import timedelta

        from django.utils import timezone

        cutoff = timezone.now() - timedelta(hours=24)
        return (
            Offer.objects.filter(structure_id=rng.choice(structures), is_active=True)
            .filter(Q(capacity_updated_at__lt=cutoff) | Q(capacity_updated_at=None))
            .count()
        )

    queries = [bbox_query, one_offer, stale_count]
    for query in queries:  # warm-up
        query()
    latencies: dict[str, list[float]] = {q.__name__: [] for q in queries}
    start.wait()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        query = rng.choice(queries)
        began = time.perf_counter()
        query()
        latencies[query.__name__].append(time.perf_counter() - began)
    connection.close()
    out.put((label, latencies, 0, time.perf_counter() - t0))


def _ms(value: float) -> str:
    return f"{value * 1000:7.1f} ms"


def _reader_line(label: str, latencies: dict[str, list[float]], elapsed: float) -> None:
    every = [v for values in latencies.values() for v in values]
    print(
        f"  {label:<22} {len(every):>6} queries ({len(every) / elapsed:6.0f}/s)  "
        f"p50 {_ms(_pct(every, 0.5))}  p95 {_ms(_pct(every, 0.95))}  p99 {_ms(_pct(every, 0.99))}"
    )
    for name, values in latencies.items():
        print(
            f"      {name:<18} {len(values):>6}  p50 {_ms(_pct(values, 0.5))}  p95 {_ms(_pct(values, 0.95))}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=50.0, help="updates per second, all writers together")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--offers", type=int, default=50_000)
    parser.add_argument(
        "--batch",
        type=int,
        default=1,
        help="updates per transaction (an API request carrying several updates)",
    )
    parser.add_argument("--host", default=os.environ.get("PGHOST", "127.0.0.1"))
    parser.add_argument("--user", default=os.environ.get("PGUSER", "postgres"))
    parser.add_argument("--keep", action="store_true", help="do not drop the database at the end")
    parser.add_argument("--no-setup", action="store_true", help="reuse a database kept by --keep")
    args = parser.parse_args()

    pg = ("-h", args.host, "-U", args.user)
    database_url = f"postgres://{args.user}@{args.host}:5432/{DB_NAME}"
    if not args.no_setup:
        _pg_tool("dropdb", *pg, "--if-exists", DB_NAME)
        _pg_tool("createdb", *pg, DB_NAME)
    try:
        _setup_django(database_url)
        from django.core.management import call_command
        from django.db import connection

        from annuaire.models import Structure
        from enrs.accounts.models import User
        from ror.models import Capacity, CapacityUpdate, Offer
        from ror.services import token_create

        if not args.no_setup:
            began = time.perf_counter()
            call_command("migrate", verbosity=0)
            call_command("seed_demo", scale="small", no_users=True, verbosity=0)
            call_command("seed_ror_demo", offers=args.offers, verbosity=0)
            print(
                f"Setup (migrate, seed_demo small, seed_ror_demo {args.offers}): "
                f"{time.perf_counter() - began:.0f} s"
            )
        staff, _ = User.objects.get_or_create(username="bench.ror", defaults={"role": "gcs_staff"})
        token, _ = token_create(name="Banc d'essai", structures=list(Structure.objects.all()), actor=staff)
        with connection.cursor() as cursor:
            cursor.execute("SELECT version()")
            version = cursor.fetchone()[0].split(" on ")[0]
        print(f"ROR availability updates under search load — {version}, CPU count {os.cpu_count()}")
        print(
            f"  {Offer.objects.count()} offers, {Capacity.objects.count()} capacity rows; "
            f"target {args.rate:g} updates/s for {args.seconds:g} s by {args.writers} writer processes"
        )
        history_before = CapacityUpdate.objects.count()
        connection.close()

        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        start = ctx.Barrier(1)
        reader = ctx.Process(
            target=_reader, args=(database_url, BASELINE_SECONDS, 1, start, out, "queries alone")
        )
        reader.start()
        baseline = out.get()
        reader.join()

        start = ctx.Barrier(args.writers + 1)
        processes = [
            ctx.Process(
                target=_writer,
                args=(
                    database_url,
                    args.rate / args.writers,
                    args.seconds,
                    args.batch,
                    100 + i,
                    token.pk,
                    start,
                    out,
                ),
            )
            for i in range(args.writers)
        ]
        processes.append(
            ctx.Process(
                target=_reader, args=(database_url, args.seconds, 2, start, out, "queries under load")
            )
        )
        for p in processes:
            p.start()
        results = [out.get() for _ in processes]
        for p in processes:
            p.join()

        writers = [r for r in results if r[0] == "writer"]
        loaded = next(r for r in results if r[0] == "queries under load")
        latencies = [v for r in writers for v in r[1]]  # one per transaction (per batch)
        done = len(latencies) * args.batch
        refused = sum(r[2] for r in writers)
        elapsed = max(r[3] for r in writers)
        print(
            f"Updates (capacity_update, 3 statuses each, {args.batch} update(s) per transaction; "
            "latency per transaction):"
        )
        print(
            f"  {done} updates in {elapsed:.1f} s = {done / elapsed:.1f} updates/s "
            f"(target {args.rate:g}); refused {refused}"
        )
        print(
            f"  latency p50 {_ms(_pct(latencies, 0.5))}  p95 {_ms(_pct(latencies, 0.95))}  "
            f"p99 {_ms(_pct(latencies, 0.99))}  max {_ms(max(latencies))}  "
            f"mean {_ms(statistics.mean(latencies))}"
        )
        print("Reader (one process, back-to-back queries):")
        _reader_line(baseline[0], baseline[1], baseline[3])
        _reader_line(loaded[0], loaded[1], loaded[3])
        print(f"  history rows written: {CapacityUpdate.objects.count() - history_before}")
        connection.close()
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            _pg_tool("dropdb", *pg, "--if-exists", DB_NAME)


if __name__ == "__main__":
    main()
