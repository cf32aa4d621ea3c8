"""Latency of the directory search API at 1 000 000 professionals, and of the same SQL run bare.

    .venv/bin/python bench/annuaire_search.py [--runs 20] [--http] [--keep | --reuse]

1. Loads the national demo directory into a dedicated database (unless ``--reuse``)::

       dropdb --if-exists enrs_bench_search; createdb enrs_bench_search
       DATABASE_URL=postgres://postgres@127.0.0.1:5432/enrs_bench_search manage.py migrate
       DATABASE_URL=… manage.py seed_demo --scale national --force --no-users
       VACUUM ANALYZE   (what autovacuum does after a bulk load: statistics and visibility map)

2. Runs a fixed query mix (surnames typed with and without accents, typos, first + last names, RPPS,
   IdNat_PS, FINESS, communes, professions and specialties in the text, with and without filters, and
   structure searches), every query ``--runs`` times in a shuffled (seeded) order, through the API
   ``GET /api/annuaire/professionnels/`` and ``/structures/`` as a signed-in user:

   * by default in-process with Django's test client: the whole Django stack (middleware, session and
     user loading, DRF, serialisation, JSON), without HTTP parsing;
   * with ``--http``: over HTTP on loopback to a gunicorn worker (1 sync worker) started here.

3. Replays, for every query, the SQL statements the search itself ran (captured from the selector,
   literals inlined by Django's client-side binding) through a separate psycopg connection, to show
   what the database costs and how much the application adds on top (the ratio).

Prints p50 / p95 / p99 per kind of query and overall, for the API and for the raw SQL, and the ratio.
Drops the database at the end unless ``--keep`` (``--reuse`` then skips the load next time).
"""

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DB_NAME = "enrs_bench_search"
USERNAME = "bench-annuaire"
PROFESSIONALS = "/api/annuaire/professionnels/"
STRUCTURES = "/api/annuaire/structures/"


@dataclass
class Query:
    kind: str  # the line of the report
    url: str
    params: dict[str, str]
    sql: list[str] = field(default_factory=list)  # what the search ran, captured
    api_ms: list[float] = field(default_factory=list)
    sql_ms: list[float] = field(default_factory=list)
    results: int = 0

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.params.items())


def _pg_tool(*command: str) -> None:
    """createdb / dropdb (PostgreSQL client tools on PATH; arguments are ours, not user input)."""
    subprocess.run(command, check=True)  # noqa: S603


def _manage(database_url: str, *args: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": "", "LOG_LEVEL": "WARNING"}
    env["DJANGO_SETTINGS_MODULE"] = "enrs.settings.base"
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True)  # noqa: S603


def load(database_url: str, pg: list[str]) -> None:
    _pg_tool("dropdb", *pg, "--if-exists", DB_NAME)
    _pg_tool("createdb", *pg, DB_NAME)
    started = time.perf_counter()
    _manage(database_url, "migrate", "--no-input", "-v0")
    _manage(database_url, "seed_demo", "--scale", "national", "--force", "--no-users", "-v0")
    print(f"database loaded in {time.perf_counter() - started:.0f} s (migrate + seed_demo --scale national)")


def _setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ["REDIS_URL"] = ""  # sessions in the database, cache in memory: no Redis needed
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["DJANGO_SETTINGS_MODULE"] = "enrs.settings.base"  # DEBUG off: no query log in memory
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()


# --- The query mix -----------------------------------------------------------------------------------------


def query_mix() -> list[Query]:
    """Realistic searches; identifiers, communes and FINESS numbers are read from the loaded data (the
    same seed gives the same ones)."""
    from annuaire.models import Commune, Professional, Structure

    def pro(kind: str, **params: str) -> Query:
        return Query(kind, PROFESSIONALS, params)

    def struct(kind: str, **params: str) -> Query:
        return Query(kind, STRUCTURES, params)

    step = max(Professional.objects.count() // 7, 1)
    sample = [Professional.objects.order_by("pk")[i * step] for i in range(6)]
    sites = list(Structure.objects.filter(kind="ET").exclude(finess_et=None).order_by("pk")[:2000:400])
    chu = Structure.objects.filter(category_code="101", kind="ET").order_by("pk").first()
    small = Commune.objects.filter(department__code="35").order_by("insee_code").first()
    assert chu is not None
    assert chu.commune is not None
    assert small is not None
    return [
        # Surnames as typed: capitals, accents or not.
        pro("surname", q="MARTIN"),
        pro("surname", q="Dupont"),
        pro("surname", q="bernard"),
        pro("surname", q="Le Goff"),
        pro("surname, accents", q="Lefèvre"),
        pro("surname, accents", q="Guérin"),
        pro("surname, accents", q="Rivière"),
        pro("surname, no accents", q="lefevre"),
        pro("surname, no accents", q="gerard"),
        pro("surname, no accents", q="benoit"),
        # Typos.
        pro("typo", q="Dupon"),
        pro("typo", q="bernad"),
        pro("typo", q="Kermarec"),
        pro("typo", q="Rousseu"),
        pro("typo", q="lefebre"),
        pro("typo", q="Matthieu"),
        # First and last names, either order.
        pro("first + last", q="Hélène Lefèvre"),
        pro("first + last", q="jean martin"),
        pro("first + last", q="MARTIN Jean"),
        pro("first + last", q="erwan le gall"),
        pro("first + last", q="Marie Dubois"),
        pro("first + last", q="Gaelle Moreau"),
        # Identifiers.
        pro("RPPS / IdNat", q=sample[0].rpps),
        pro("RPPS / IdNat", q=sample[1].rpps),
        pro("RPPS / IdNat", q=sample[2].idnat_ps),
        pro("FINESS (its staff)", q=str(sites[0].finess_et)),
        pro("FINESS (its staff)", q=str(sites[1].finess_et)),
        # Communes, professions and specialties in the text.
        pro("commune / profession in text", q=f"martin {small.name}"),
        pro("commune / profession in text", q=chu.commune.name),
        pro("commune / profession in text", q="cardiologue martin"),
        pro("commune / profession in text", q="infirmière bernard"),
        pro("commune / profession in text", q="kiné Dupont"),
        # Filters, with and without text.
        pro("with filters", q="martin", department="35"),
        pro("with filters", q="dupont", profession="10"),
        pro("with filters", q="marie", profession="10", specialty="SM54"),
        pro("with filters", q="petit", department="75", profession="60"),
        pro("with filters", q="durand", sector="SA01"),
        pro("filters only", department="29", profession="60"),
        pro("filters only", profession="10", specialty="SM04"),
        pro("filters only", structure=str(chu.pk)),
        # Structures.
        struct("structures", q="pharmacie gare"),
        struct("structures", q="ehpad tilleuls"),
        struct("structures", q="centre hospitalier"),
        struct("structures", q="clinique st joseph"),
        struct("structures", q=str(sites[2].finess_et)),
        struct("structures", q=chu.commune.name),
        struct("structures", q="pharmacie", department="35"),
    ]


def capture_sql(query: Query) -> None:
    """The SQL statements the search of `query` runs, as sent (without the session and user loading)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from annuaire.selectors.search import professional_search, structure_search

    params: dict[str, Any] = dict(query.params)
    arguments: dict[str, Any] = {"query": params.pop("q", "")}
    for name, value in params.items():
        arguments[name] = int(value) if name == "structure" else value
    search: Callable[..., Any] = professional_search if query.url == PROFESSIONALS else structure_search
    with CaptureQueriesContext(connection) as context:
        page = search(**arguments)
    query.sql = [q["sql"] for q in context.captured_queries]
    query.results = len(page.results)


# --- Running ----------------------------------------------------------------------------------------------


def bench_user() -> Any:
    from enrs.accounts.models import User
    from enrs.accounts.roles import Role

    user, _ = User.objects.get_or_create(username=USERNAME, defaults={"role": Role.GCS_STAFF})
    return user


@contextmanager
def in_process(user: Any) -> Iterator[Callable[[Query], None]]:
    from django.test import Client

    client = Client()
    client.force_login(user)

    def call(query: Query) -> None:
        response = client.get(query.url, query.params)
        if response.status_code != 200:
            raise RuntimeError(
                f"{query.url} {query.params}: {response.status_code} {response.content[:200]!r}"
            )

    yield call


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def over_http(user: Any, database_url: str) -> Iterator[Callable[[Query], None]]:
    import httpx
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": "",
        "DJANGO_SETTINGS_MODULE": "enrs.settings.base",
        "LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(  # noqa: S603
        [PYTHON, "-m", "gunicorn", "enrs.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        cookies = {settings.SESSION_COOKIE_NAME: str(session.session_key)}
        with httpx.Client(base_url=base, cookies=cookies) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    http.get("/healthz", timeout=2)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError("gunicorn did not start") from None
                    time.sleep(0.2)

            def call(query: Query) -> None:
                response = http.get(query.url, params=query.params, timeout=30)
                if response.status_code != 200:
                    raise RuntimeError(
                        f"{query.url} {query.params}: {response.status_code} {response.text[:200]}"[:300]
                    )

            yield call
    finally:
        server.terminate()
        server.wait(timeout=30)


def replay_sql(queries: list[Query], database_url: str, order: list[int]) -> None:
    """Run each query's captured statements bare, through psycopg (autocommit, one connection)."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as raw, raw.cursor() as cursor:
        for index in order:
            query = queries[index]
            started = time.perf_counter()
            for statement in query.sql:
                cursor.execute(statement.encode())  # literals inlined: no placeholders to bind
                cursor.fetchall()
            query.sql_ms.append((time.perf_counter() - started) * 1000)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def report(queries: list[Query], mode: str) -> None:
    print()
    print(f"API: {mode}. Raw SQL: the search's own statements through psycopg (no session/user queries).")
    columns = f"{'p95':>8}{'p99':>8}"
    header = f"{'':<32}{'n':>6} | {'API p50':>8}{columns} | {'SQL p50':>8}{columns} | ratio"
    print(header)
    print("-" * len(header))
    groups: dict[str, list[Query]] = defaultdict(list)
    for query in queries:
        groups[query.kind].append(query)
    rows = [*groups.items(), ("ALL", queries)]
    for kind, members in rows:
        api = [ms for q in members for ms in q.api_ms]
        sql = [ms for q in members for ms in q.sql_ms]
        ratio = statistics.median(api) / statistics.median(sql)
        if kind == "ALL":
            print("-" * len(header))
        print(
            f"{kind:<32}{len(api):>6} | {percentile(api, 50):>8.1f}{percentile(api, 95):>8.1f}"
            f"{percentile(api, 99):>8.1f} | {percentile(sql, 50):>8.1f}{percentile(sql, 95):>8.1f}"
            f"{percentile(sql, 99):>8.1f} | {ratio:5.1f}"
        )
    print()
    print("Slowest queries (API p95, ms; SQL p95, ms; statements; results on the page):")
    for query in sorted(queries, key=lambda q: -percentile(q.api_ms, 95))[:8]:
        print(
            f"  {percentile(query.api_ms, 95):7.1f} {percentile(query.sql_ms, 95):7.1f} {len(query.sql):3d} "
            f"{query.results:3d}  {query.url} {query.label}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs of every query (default 20)")
    parser.add_argument("--http", action="store_true", help="over HTTP to gunicorn instead of in-process")
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    parser.add_argument("--reuse", action="store_true", help="use the database left by --keep, no load")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", default="5432")
    parser.add_argument("--user", default="postgres")
    parser.add_argument("--seed", type=int, default=2025, help="order of the runs")
    args = parser.parse_args()
    pg = ["-h", args.host, "-p", args.port, "-U", args.user]
    database_url = f"postgres://{args.user}@{args.host}:{args.port}/{DB_NAME}"

    if not args.reuse:
        load(database_url, pg)
    try:
        _setup_django(database_url)
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
            cursor.execute("SELECT count(*) FROM annuaire_professional")
            (professionals,) = cursor.fetchone() or (0,)
            cursor.execute("SHOW shared_buffers")
            (shared_buffers,) = cursor.fetchone() or ("?",)
        print(f"{professionals:,} professionals; shared_buffers {shared_buffers}; {os.cpu_count()} CPUs")
        print(f"load average before the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        queries = query_mix()
        for query in queries:
            capture_sql(query)
        order = [i for i in range(len(queries)) for _ in range(args.runs)]
        random.Random(args.seed).shuffle(order)
        user = bench_user()
        runner = over_http(user, database_url) if args.http else in_process(user)
        with runner as call:
            for query in queries:  # warm-up: plans, caches, lexicon pages
                call(query)
            for index in order:
                query = queries[index]
                started = time.perf_counter()
                call(query)
                query.api_ms.append((time.perf_counter() - started) * 1000)
        replay_sql(queries, database_url, order)
        mode = "HTTP on loopback, gunicorn (1 sync worker)" if args.http else "in-process Django test client"
        report(queries, mode)
        print(f"\nload average after the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            _pg_tool("dropdb", *pg, "--if-exists", DB_NAME)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
