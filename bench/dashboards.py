"""Dashboards at 10 000 000 usage events: rollup time and dashboard latency.

    .venv/bin/python bench/dashboards.py [--events 10000000] [--runs 20] [--keep] [--reuse | --reuse-events]
        [--db-name NAME] [--only selectors|endpoints]

1. Creates a dedicated database (``enrs_bench_dashboards``) and migrates it (unless ``--reuse``).
2. Generates one year of raw usage events with ``COPY … FROM STDIN`` (streamed in chunks: memory stays
   bounded), over 1 500 structures in 4 departments, 12 categories, 8 collèges and 20 000 pseudonymous
   actors, with the mix of kinds the apps emit (sign-ins, messages, DMP documents, telemedicine acts…).
   The raw table's secondary indexes are dropped during the load and rebuilt after (timed apart).
3. Runs the full rollup (``rollup_rebuild``, what ``manage.py usage_rollup --rebuild`` does) and then one
   incremental run after 3 000 new events, 1 % of them late (occurred up to 30 days ago).
4. Times the dashboard selectors (``enrs.usage.selectors``): a year for the whole region and with each
   filter, by day / week / month, breakdowns, distinct active professionals; and, when the dashboards
   app is installed, its pages and JSON API in-process (Django test client, signed in as an ARS analyst).
   Prints p50 / p95 per case (target: < 200 ms).
5. Drops the database unless ``--keep`` (``--reuse`` then skips steps 1-3 next time; ``--reuse-events``
   keeps the raw events but migrates and redoes the rollup, after a change of the rollups).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "enrs_bench_dashboards"
CHUNK = 200_000

DEPARTMENTS = ["22", "29", "35", "56"]
CATEGORIES = ["355", "101", "106", "124", "128", "365", "500", "603", "604", "697", "698", "SA05"]
# Kind -> (weight, dims factory, value factory)
_METHODS = ["password", "otp", "cps", "psc"]


def _kinds(rng: random.Random) -> list[tuple[str, float, Callable[[], dict[str, Any]], Callable[[], float]]]:
    one: Callable[[], float] = lambda: 1.0  # noqa: E731
    return [
        (
            "auth.sign_in",
            22,
            lambda: {"method": rng.choice(_METHODS[:1] * 3 + _METHODS[2:]), "role": "clinician"},
            one,
        ),
        ("auth.sign_in_upgraded", 6, lambda: {"method": "otp", "role": "clinician"}, one),
        (
            "messagerie.message_sent",
            20,
            lambda: {
                "recipients": rng.randint(1, 3),
                "box_kind": rng.choice(["PER", "ORG"]),
                "cda": rng.random() < 0.4,
            },
            one,
        ),
        (
            "messagerie.message_delivered",
            18,
            lambda: {"channel": "smtp", "attempt": 1},
            lambda: float(rng.randint(1, 3)),
        ),
        ("messagerie.message_failed", 1, lambda: {"channel": "smtp", "attempt": 3}, one),
        (
            "messagerie.message_received",
            12,
            lambda: {"kind": "mssante", "attachments": rng.randint(0, 2)},
            one,
        ),
        (
            "dmp.document_submitted",
            8,
            lambda: {
                "type_code": rng.choice(["11488-4", "34133-9", "18842-5", "60591-5"]),
                "source": "portal",
            },
            one,
        ),
        (
            "dmp.document_accepted",
            7,
            lambda: {"type_code": rng.choice(["11488-4", "34133-9"]), "source": "portal"},
            one,
        ),
        ("dmp.document_refused", 0.5, lambda: {"type_code": "11488-4", "source": "api"}, one),
        (
            "telemedecine.act_sent",
            1.5,
            lambda: {
                "act_type": rng.choice(["TLC", "TLE", "TLS"]),
                "urgency": rng.random() < 0.2,
                "via_pool": True,
            },
            one,
        ),
        (
            "telemedecine.act_accepted",
            1.4,
            lambda: {
                "act_type": rng.choice(["TLC", "TLE"]),
                "urgency": False,
                "delay_s": rng.randint(30, 86400),
            },
            one,
        ),
        (
            "telemedecine.act_closed",
            1.3,
            lambda: {"act_type": rng.choice(["TLC", "TLE"]), "urgency": False},
            one,
        ),
        (
            "telemedecine.dicom_transfer",
            0.3,
            lambda: {"images": rng.randint(10, 900), "protocol": "dicom"},
            lambda: float(rng.randint(10**6, 5 * 10**8)),
        ),
        (
            "ror.capacity_update",
            1,
            lambda: {"source": rng.choice(["form", "api", "import"]), "values": 2},
            one,
        ),
    ]


def _pg(*args: str) -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-c", *args], check=True)  # noqa: S603, S607


def _manage(database_url: str, *args: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": "", "LOG_LEVEL": "WARNING"}
    env["DJANGO_SETTINGS_MODULE"] = "enrs.settings.base"
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], check=True, env=env, cwd=ROOT)  # noqa: S603


def _setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ["REDIS_URL"] = ""
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["DJANGO_SETTINGS_MODULE"] = "enrs.settings.base"  # DEBUG off: no query log in memory
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def _rows(n: int, *, start: dt.datetime, days: int, seed: int, late_share: float = 0.0) -> Iterator[str]:
    """COPY text lines, generated lazily (bounded memory)."""
    from enrs.usage.services import actor_key

    rng = random.Random(seed)
    kinds = _kinds(rng)
    weights = [k[1] for k in kinds]
    structures = [
        (sid, rng.choice(DEPARTMENTS), rng.choice(CATEGORIES), str(rng.randint(1, 8)))
        for sid in range(1, 1501)
    ]
    structure_weights = [1 / (i + 1) ** 0.8 for i in range(len(structures))]  # a few big hospitals
    actors = [actor_key(type("U", (), {"pk": i, "is_anonymous": False})()) for i in range(20_000)]
    now = dt.datetime.now(dt.UTC).isoformat()
    seconds = days * 86400
    while n > 0:
        batch = min(n, 10_000)
        n -= batch
        picks = rng.choices(kinds, weights=weights, k=batch)
        sites = rng.choices(structures, weights=structure_weights, k=batch)
        for (kind, _w, dims, value), (sid, dep, cat, college) in zip(picks, sites, strict=True):
            offset = rng.random() * seconds
            if late_share:
                # A 5-minute batch: happened in the last 5 minutes, except the late ones (days old).
                late = rng.random() < late_share
                offset = seconds - rng.random() * (30 * 86400 if late else 300)
            when = start + dt.timedelta(seconds=offset)
            occurred = when.isoformat()
            # Recorded right after it happened, except the late ones (recorded now).
            recorded = now if late_share else (when + dt.timedelta(seconds=rng.random() * 5)).isoformat()
            # Professionals work in one structure mostly (about 13 per structure), sometimes elsewhere.
            home = (
                (sid * 13 + rng.randrange(13)) % len(actors)
                if rng.random() < 0.9
                else rng.randrange(len(actors))
            )
            actor = actors[home] if kind in _ACTOR_KINDS else ""
            if kind.startswith("auth."):
                sid_s, dep, cat, college = "\\N", "", "", "\\N"
            else:
                sid_s = str(sid)
            yield (
                f"{kind}\t{occurred}\t{sid_s}\t{dep}\t{cat}\t{college}\t{actor}\t{value()}\t"
                f"{json.dumps(dims())}\t{recorded}\n"
            )


_ACTOR_KINDS = {
    "auth.sign_in",
    "messagerie.message_sent",
    "dmp.document_submitted",
    "telemedecine.act_sent",
    "telemedecine.act_accepted",
    "telemedecine.act_closed",
    "ror.capacity_update",
}
_COLUMNS = (
    "kind, occurred_at, structure_id, department, category, college, actor_key, value, dims, recorded_at"
)
_SECONDARY_INDEXES = ("usage_kind_time_idx", "usage_recorded_idx", "usage_time_idx")


def _copy(lines: Iterator[str]) -> int:
    from django.db import connection

    count = 0
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg 3 cursor
        with raw.copy(f"COPY usage_usageevent ({_COLUMNS}) FROM STDIN") as copy:
            buffer = io.StringIO()
            for line in lines:
                buffer.write(line)
                count += 1
                if count % CHUNK == 0:
                    copy.write(buffer.getvalue())
                    buffer = io.StringIO()
            copy.write(buffer.getvalue())
    return count


def load(events: int, start: dt.datetime) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        index_defs = []
        for name in _SECONDARY_INDEXES:
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [name])
            row = cursor.fetchone()
            if row:
                index_defs.append(row[0])
                cursor.execute(f'DROP INDEX "{name}"')
    started = time.perf_counter()
    done = 0
    while done < events:
        part = min(1_000_000, events - done)
        _copy(_rows(part, start=start, days=365, seed=done))
        done += part
        print(f"  {done:>10,} events copied ({time.perf_counter() - started:.0f} s)", flush=True)
    copied = time.perf_counter() - started
    started = time.perf_counter()
    with connection.cursor() as cursor:
        for definition in index_defs:
            cursor.execute(definition)
        cursor.execute("VACUUM ANALYZE usage_usageevent")
    print(
        f"COPY of {events:,} events: {copied:.0f} s; "
        f"indexes + VACUUM ANALYZE: {time.perf_counter() - started:.0f} s"
    )


def rollup(start: dt.datetime) -> None:
    from django.db import connection

    from enrs.usage import rollups
    from enrs.usage.models import UsageActorDaily, UsageActorMonthly, UsageDaily, UsageMonthly

    started = time.perf_counter()
    result = rollups.rollup_rebuild()
    rebuild = time.perf_counter() - started
    with connection.cursor() as cursor:
        for table in (
            "usage_usagedaily",
            "usage_usagemonthly",
            "usage_usageactordaily",
            "usage_usageactormonthly",
            "usage_usagecube",
            "usage_usagedistinct",
        ):
            cursor.execute(f"VACUUM ANALYZE {table}")
    sizes = {
        m.__name__: m.objects.count() for m in (UsageDaily, UsageMonthly, UsageActorDaily, UsageActorMonthly)
    }
    print(
        f"full rollup (rebuild): {rebuild:.1f} s for {result.days} days / {result.months} months; "
        f"rows: {sizes}"
    )
    # Incremental: what the 5-minute task sees — 3 000 new events, 1 % of them late (up to 30 days old).
    _copy(
        _rows(3000, start=dt.datetime.now(dt.UTC) - dt.timedelta(days=365), days=365, seed=99, late_share=0.1)
    )
    started = time.perf_counter()
    result = rollups.rollup_run()
    print(
        f"incremental rollup after 3 000 new events: {time.perf_counter() - started:.2f} s "
        f"({result.days} days recomputed)"
    )
    started = time.perf_counter()
    result = rollups.rollup_run()
    print(
        f"incremental rollup with nothing new: {time.perf_counter() - started:.2f} s "
        f"({result.days} days recomputed)"
    )


def _time(fn: Callable[[], Any], runs: int) -> tuple[float, float]:
    fn()  # warm-up (connection, plan cache)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return statistics.median(samples), p95


def latency(runs: int, end: dt.date) -> list[tuple[str, float, float]]:
    from enrs.usage import selectors as s

    # A year ending yesterday (daily rollup), and the same year month-aligned (monthly rollup).
    y0, y1 = end - dt.timedelta(days=364), end
    m0, m1 = (end - dt.timedelta(days=335)).replace(day=1), end.replace(day=1) - dt.timedelta(days=1)
    cases: list[tuple[str, Callable[[], Any]]] = [
        (
            "series month, region, year",
            lambda: s.indicator_series("messagerie.messages_sent", granularity="month", start=m0, end=m1),
        ),
        (
            "series month, department",
            lambda: s.indicator_series(
                "dmp.documents_submitted", granularity="month", department="35", start=m0, end=m1
            ),
        ),
        (
            "series month, category",
            lambda: s.indicator_series(
                "dmp.documents_submitted", granularity="month", category="355", start=m0, end=m1
            ),
        ),
        (
            "series month, collège",
            lambda: s.indicator_series(
                "telemedecine.acts_requested", granularity="month", college=4, start=m0, end=m1
            ),
        ),
        (
            "series month, structure",
            lambda: s.indicator_series(
                "messagerie.messages_sent", granularity="month", structure_id=17, start=m0, end=m1
            ),
        ),
        (
            "series month, ratio strong auth",
            lambda: s.indicator_series("auth.strong_share", granularity="month", start=m0, end=m1),
        ),
        (
            "series month, delivery rate",
            lambda: s.indicator_series("messagerie.delivery_rate", granularity="month", start=m0, end=m1),
        ),
        (
            "series week, region, year",
            lambda: s.indicator_series("messagerie.messages_sent", granularity="week", start=y0, end=y1),
        ),
        (
            "series day, region, year",
            lambda: s.indicator_series("messagerie.messages_sent", granularity="day", start=y0, end=y1),
        ),
        (
            "series day, department, year",
            lambda: s.indicator_series(
                "dmp.documents_submitted", granularity="day", department="29", start=y0, end=y1
            ),
        ),
        (
            "series week, avg delay",
            lambda: s.indicator_series("telemedecine.acceptance_delay", granularity="week", start=y0, end=y1),
        ),
        ("total year, region", lambda: s.indicator_total("messagerie.messages_sent", start=m0, end=m1)),
        ("total year, not aligned", lambda: s.indicator_total("messagerie.messages_sent", start=y0, end=y1)),
        (
            "breakdown by department",
            lambda: s.indicator_breakdown("dmp.documents_submitted", by="department", start=m0, end=m1),
        ),
        (
            "breakdown by structure",
            lambda: s.indicator_breakdown("messagerie.messages_sent", by="structure", start=m0, end=m1),
        ),
        (
            "breakdown by type_code",
            lambda: s.indicator_breakdown("dmp.documents_submitted", by="type_code", start=m0, end=m1),
        ),
        (
            "breakdown by method",
            lambda: s.indicator_breakdown("auth.sign_ins", by="method", start=m0, end=m1),
        ),
        (
            "active professionals / month",
            lambda: s.indicator_series(
                "messagerie.active_professionals", granularity="month", start=m0, end=m1
            ),
        ),
        (
            "active professionals, year total",
            lambda: s.indicator_total("messagerie.active_professionals", start=m0, end=m1),
        ),
        (
            "active professionals, dept",
            lambda: s.indicator_series(
                "dmp.active_professionals", granularity="month", department="35", start=m0, end=m1
            ),
        ),
        ("filter choices", s.filter_choices),
    ]
    results = []
    for name, fn in cases:
        p50, p95 = _time(fn, runs)
        results.append((name, p50, p95))
        print(f"  {name:<36} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms", flush=True)
    return results


def _getter(client: Any, url: str) -> Callable[[], Any]:
    return lambda: client.get(url)


def endpoints(runs: int) -> list[tuple[str, float, float]]:
    from django.apps import apps

    if not apps.is_installed("enrs.dashboards"):
        print("  (dashboards app not installed: endpoints skipped)")
        return []
    from django.test import Client
    from django.test.utils import setup_test_environment

    from enrs.accounts.models import User
    from enrs.accounts.roles import Role

    setup_test_environment()
    user, _ = User.objects.get_or_create(username="bench-ars", defaults={"role": Role.ARS_ANALYST})
    client = Client()
    client.force_login(user)
    urls = ["/tableaux-de-bord/", "/api/tableaux-de-bord/"]
    for slug in ("messagerie", "dmp", "telemedecine", "connexions", "ror", "annuaire"):
        urls.append(f"/tableaux-de-bord/{slug}/")
    # The JSON API of one chart (the heaviest ones: targets summary, distinct actors per week).
    for slug, chart in (
        ("synthese", "objectifs"),
        ("telemedecine", "professionnels"),
        ("messagerie", "envois"),
    ):
        urls.append(f"/api/tableaux-de-bord/{slug}/{chart}/")
    results = []
    for url in urls:
        response = client.get(url)
        if response.status_code != 200:
            print(f"  {url:<36} HTTP {response.status_code}: skipped")
            continue
        p50, p95 = _time(_getter(client, url), runs)
        results.append((url, p50, p95))
        print(f"  GET {url:<32} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    parser.add_argument("--reuse", action="store_true", help="reuse a kept database (skip load and rollup)")
    parser.add_argument(
        "--reuse-events",
        action="store_true",
        help="reuse the raw events of a kept database: migrate it and redo the rollup only",
    )
    parser.add_argument("--db-name", default=DB_NAME, help=f"database to use (default {DB_NAME})")
    parser.add_argument("--only", choices=["selectors", "endpoints"], help="time only these cases")
    args = parser.parse_args()
    db_name = args.db_name
    if not db_name.replace("_", "").isalnum():
        parser.error("invalid database name")
    database_url = f"postgres://postgres@127.0.0.1:5432/{db_name}"
    end = dt.date.today() - dt.timedelta(days=1)
    start = dt.datetime.combine(end - dt.timedelta(days=364), dt.time.min, tzinfo=dt.UTC)
    try:
        if not args.reuse and not args.reuse_events:
            _pg(f"DROP DATABASE IF EXISTS {db_name}")
            _pg(f"CREATE DATABASE {db_name}")
            started = time.perf_counter()
            _manage(database_url, "migrate", "--no-input", "-v0")
            print(f"migrated in {time.perf_counter() - started:.0f} s")
        if args.reuse_events:
            _manage(database_url, "migrate", "--no-input", "-v0")
        _setup_django(database_url)
        if not args.reuse and not args.reuse_events:
            load(args.events, start)
        if not args.reuse:
            rollup(start)
        results: list[tuple[str, float, float]] = []
        if args.only in (None, "selectors"):
            print(f"selector latency ({args.runs} runs each):")
            results += latency(args.runs, end)
        if args.only in (None, "endpoints"):
            print("endpoint latency (in-process, ARS analyst):")
            results += endpoints(max(5, args.runs // 4))
        worst = max(results, key=lambda r: r[2])
        print(f"worst p95: {worst[2]:.1f} ms ({worst[0]}); target < 200 ms")
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            _pg(f"DROP DATABASE IF EXISTS {db_name}")
            print(f"database {db_name} dropped")


if __name__ == "__main__":
    main()
