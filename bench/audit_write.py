"""Cost of the audit trail on PostgreSQL: events/s written by `audit_record`, and checked by
`verify_audit_chain`.

    .venv/bin/python bench/audit_write.py [--events 2000] [--verify-rows 50000] [--keep]

Creates a dedicated database (createdb enrs_bench_audit), migrates it, measures, then drops it.
Measures, each with a realistic request (signed-in user, session method, IP, user agent, request id):

* sequential writes, each `audit_record` in its own transaction (what a view does);
* sequential writes batched in one transaction (what a service recording several events does);
* 1, 2 and 4 concurrent writer processes, each event in its own transaction: writers take turns on
  one advisory lock, so this shows what the serialisation of the chain costs; then the same with
  synchronous_commit=off, to show how much of it is the WAL flush done while the lock is held;
* `audit_chain_verify` over the whole table (the `verify_audit_chain` command).
"""

import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "enrs_bench_audit"


def _setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ["REDIS_URL"] = ""
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["DJANGO_SETTINGS_MODULE"] = "enrs.settings.base"  # DEBUG off: no query log in memory
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def _request(user: Any) -> Any:
    from django.test import RequestFactory

    from enrs.accounts.authn import SESSION_METHOD_KEY

    request = RequestFactory().get(
        "/dmp/patients/185072A12345678/",
        REMOTE_ADDR="127.0.0.1",
        HTTP_X_REAL_IP="192.0.2.17",
        HTTP_USER_AGENT="Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0",
    )
    request.user = user
    request.session = {SESSION_METHOD_KEY: "cps"}  # type: ignore[assignment]
    request.request_id = "0123456789abcdef0123456789abcdef"  # type: ignore[attr-defined]
    return request


def _record(request: Any, n: int) -> None:
    from enrs.audit.services import audit_record

    audit_record(
        action="patient.read",
        request=request,
        target_type="dmp.document",
        target_id=str(n),
        patient_ins="185072A12345678",
        detail={"document": n, "motif": "consultation"},
    )


def _bench_user() -> Any:
    from enrs.accounts.models import User

    user, _ = User.objects.get_or_create(username="bench.audit", defaults={"role": "clinician"})
    return user


def _writer(database_url: str, count: int, start: Any, results: Any) -> None:
    """A writer process: waits for the others, then writes `count` events, each in its own transaction."""
    _setup_django(database_url)
    from django.db import connection

    request = _request(_bench_user())
    connection.ensure_connection()
    start.wait()
    began = time.time()
    for n in range(count):
        _record(request, n)
    results.put((began, time.time(), count))
    connection.close()


def _concurrent(database_url: str, writers: int, per_writer: int) -> tuple[int, float]:
    context = mp.get_context("spawn")
    start = context.Barrier(writers)
    results = context.Queue()
    processes = [
        context.Process(target=_writer, args=(database_url, per_writer, start, results))
        for _ in range(writers)
    ]
    for process in processes:
        process.start()
    reports = [results.get() for _ in processes]
    for process in processes:
        process.join()
        if process.exitcode != 0:
            raise SystemExit(f"writer process failed with exit code {process.exitcode}")
    began = min(r[0] for r in reports)
    ended = max(r[1] for r in reports)
    return sum(r[2] for r in reports), ended - began


def _pg_tool(*command: str) -> None:
    """createdb / dropdb (PostgreSQL client tools, found on PATH; arguments are ours, not user input)."""
    subprocess.run(command, check=True)  # noqa: S603


def _line(label: str, events: int, seconds: float) -> None:
    print(f"  {label:<52} {events:>7} events  {seconds:7.2f} s  {events / seconds:9.0f} events/s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=2000, help="events per write measurement")
    parser.add_argument("--verify-rows", type=int, default=50_000, help="table size for the verification")
    parser.add_argument("--host", default=os.environ.get("PGHOST", "127.0.0.1"))
    parser.add_argument("--user", default=os.environ.get("PGUSER", "postgres"))
    parser.add_argument("--keep", action="store_true", help="do not drop the database at the end")
    args = parser.parse_args()

    pg = ("-h", args.host, "-U", args.user)
    database_url = f"postgres://{args.user}@{args.host}:5432/{DB_NAME}"
    _pg_tool("dropdb", *pg, "--if-exists", DB_NAME)
    _pg_tool("createdb", *pg, DB_NAME)
    try:
        _setup_django(database_url)
        from django.core.management import call_command
        from django.db import connection, transaction

        from enrs.audit.models import AuditEvent
        from enrs.audit.services import audit_chain_verify

        call_command("migrate", verbosity=0)
        with connection.cursor() as cursor:
            cursor.execute("SELECT version()")
            version = cursor.fetchone()[0].split(" on ")[0]
            cursor.execute("SHOW synchronous_commit")
            sync_commit = cursor.fetchone()[0]
            cursor.execute("SHOW fsync")
            fsync = cursor.fetchone()[0]
        print(f"Audit trail write cost — {version}, synchronous_commit={sync_commit}, fsync={fsync}")
        print(f"  CPU count: {os.cpu_count()}, Python {sys.version.split()[0]}")

        request = _request(_bench_user())
        for n in range(50):  # warm-up: connection, caches, first pages of the indexes
            _record(request, n)

        print("Writes (audit_record, 3 queries each: advisory lock, last hash, insert):")
        began = time.perf_counter()
        for n in range(args.events):
            _record(request, n)
        _line("sequential, one transaction per event", args.events, time.perf_counter() - began)

        began = time.perf_counter()
        with transaction.atomic():
            for n in range(args.events):
                _record(request, n)
        _line("sequential, all in one transaction", args.events, time.perf_counter() - began)

        connection.close()
        for writers in (1, 2, 4):
            per_writer = args.events // writers
            events, seconds = _concurrent(database_url, writers, per_writer)
            _line(f"{writers} writer process(es), one transaction per event", events, seconds)

        # The advisory lock is held until COMMIT returns, so the WAL flush of each event is inside the
        # serialised section. Without it (never in production) one sees what the flush costs.
        print("Same, with synchronous_commit=off (for comparison only: shows the share of the WAL flush):")
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER DATABASE {DB_NAME} SET synchronous_commit = off")
        connection.close()
        for writers in (1, 2, 4):
            per_writer = args.events // writers
            events, seconds = _concurrent(database_url, writers, per_writer)
            _line(f"{writers} writer process(es), synchronous_commit=off", events, seconds)
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER DATABASE {DB_NAME} RESET synchronous_commit")
        connection.close()

        missing = args.verify_rows - AuditEvent.objects.count()
        if missing > 0:
            began = time.perf_counter()
            chunk = 5000
            for offset in range(0, missing, chunk):
                with transaction.atomic():
                    for n in range(offset, min(offset + chunk, missing)):
                        _record(request, n)
            _line("fill for the verification (batches of 5000)", missing, time.perf_counter() - began)

        print("Verification (verify_audit_chain: read in id order, recompute every hash):")
        began = time.perf_counter()
        result = audit_chain_verify()
        seconds = time.perf_counter() - began
        _line("audit_chain_verify, chunks of 5000", result.checked, seconds)
        print(f"  {result.message}")
        if not result.ok:
            raise SystemExit(1)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_total_relation_size('audit_auditevent')")
            size = cursor.fetchone()[0]
        print(f"  table + indexes: {size / result.checked:.0f} bytes per event ({size / 2**20:.1f} MiB)")
        connection.close()
    finally:
        if not args.keep:
            _pg_tool("dropdb", *pg, "--if-exists", DB_NAME)


if __name__ == "__main__":
    main()
