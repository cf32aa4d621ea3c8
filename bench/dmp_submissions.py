"""DMP feeding throughput: N ITI-41 submissions through a real Celery worker to the local DMP double.

    .venv/bin/python bench/dmp_submissions.py [--documents 200] [--pdf-kb 50]

What is measured: N drafts (CDA level 1 around a ~``--pdf-kb`` KB PDF, test INS) are written first (not
timed); then ``document_submit`` is called for each (outbox row + task published after commit) and the
clock runs until the last submission is committed as done. One worker process (``--pool solo``, the test
harness of ``tests/celery_worker.py``) does, for every row: claim, read the CDA from the vault, sign a
VIHF (ECDSA, test PKI), build the MTOM request, POST it over HTTPS with a client certificate to the
double (which verifies the signature, validates metadata and the CDA against the XSD, and stores it),
store request and response encrypted, record the attempt and the document's new status.

Prints submissions per second, the end-to-end latency (submit → accepted, queueing included) and the
service time of one attempt (claim → response recorded), p50 / p95.

Uses the test settings, Redis db ``TEST_REDIS_URL`` (default 10) and a private database
``test_<name of DATABASE_URL>`` (default ``enrs_dmp_bench``), kept between runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--documents", type=int, default=200)
    parser.add_argument("--pdf-kb", type=int, default=50)
    args = parser.parse_args()

    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/enrs_dmp_bench")
    os.environ.setdefault("TEST_REDIS_URL", "redis://127.0.0.1:6379/10")
    os.environ["DJANGO_SETTINGS_MODULE"] = "enrs.settings.test"
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.db.models import Max, Min

    from dmp import services
    from dmp.models import Document, DocumentStatus, Submission, SubmissionAttempt
    from enrs.celery import app as celery_app
    from enrs.outbox.models import OutboxStatus
    from enrs.patients.models import Consent, ConsentKind, InsOid, Patient
    from tests.celery_worker import running_worker
    from tests.dmp.dmp_double_fixture import TEST_INS, TEST_INS_OID, running_dmp_double
    from tests.dmp.factories import document_kwargs, make_clinic, make_patient

    print("Base de données de banc…", flush=True)
    db_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=True)
    celery_app.conf.task_always_eager = False
    workdir = Path(tempfile.mkdtemp(prefix="dmp-bench-"))
    with running_dmp_double(workdir) as double:
        double.add_patient(TEST_INS, oid=TEST_INS_OID)
        environment = {
            "ENRS_DMP_REPOSITORY_URL": double.repository_url,
            "ENRS_DMP_REGISTRY_URL": double.registry_url,
            "ENRS_DMP_CA_BUNDLE": str(double.ca_bundle),
            "ENRS_DMP_CLIENT_CERT": str(double.client_cert),
            "ENRS_DMP_CLIENT_KEY": str(double.client_key),
            "ENRS_DMP_SIGNING_CERT": str(double.signing_cert),
            "ENRS_DMP_SIGNING_KEY": str(double.signing_key),
        }
        os.environ.update(environment)
        for key, value in environment.items():
            setattr(settings, key, value)

        clinic = make_clinic(finess="750712184")
        patient = Patient.objects.filter(ins=TEST_INS, ins_oid=InsOid.NIR_TEST).first()
        if patient is None:
            patient = make_patient(clinic, ins=TEST_INS)
        else:
            Consent.objects.get_or_create(
                patient=patient,
                kind=ConsentKind.DMP_ACCESS_AUTHORISATION,
                professional=clinic.user,
                withdrawn_at=None,
                defaults={"recorded_by": clinic.user},
            )
        pdf = b"%PDF-1.4\n" + os.urandom(args.pdf_kb * 1024)
        print(f"Écriture de {args.documents} brouillons (non chronométrée)…", flush=True)
        t0 = time.monotonic()
        drafts = [
            services.document_create_from_pdf(**document_kwargs(clinic, patient, pdf=pdf, title=f"Banc {i}"))
            for i in range(args.documents)
        ]
        print(f"… en {time.monotonic() - t0:.1f} s ; CDA : {drafts[0].cda_size} octets", flush=True)

        with running_worker(queues="dmp", database_name=db_name):
            start = time.monotonic()
            ids = [services.document_submit(document=d, actor=clinic.user).pk for d in drafts]
            published = time.monotonic() - start
            rows = Submission.objects.filter(pk__in=ids)
            while rows.exclude(status__in=[OutboxStatus.DONE, OutboxStatus.FAILED]).exists():
                time.sleep(0.5)
                if time.monotonic() - start > 1800:
                    raise SystemExit("délai dépassé")
        span = rows.aggregate(first=Min("created_at"), last=Max("done_at"))
        seconds = (span["last"] - span["first"]).total_seconds()
        accepted = Document.objects.filter(
            pk__in=[d.pk for d in drafts], status=DocumentStatus.ACCEPTED
        ).count()
        end_to_end = [(r.done_at - r.created_at).total_seconds() * 1000 for r in rows if r.done_at]
        attempts = SubmissionAttempt.objects.filter(submission_id__in=ids)
        service = [(a.finished_at - a.started_at).total_seconds() * 1000 for a in attempts]
        http = [float(a.duration_ms) for a in attempts if a.duration_ms is not None]
        stored = len(double.documents(TEST_INS))

    print(f"Soumissions : {args.documents} (acceptées : {accepted}, dans le double : {stored})")
    print(f"Publication des tâches : {published:.1f} s")
    print(f"Débit : {args.documents / seconds:.1f} soumissions/s ({seconds:.1f} s, 1 worker --pool solo)")
    print(
        f"Latence bout en bout (soumission → acceptée, file comprise) : "
        f"p50 {statistics.median(end_to_end):.0f} ms, p95 {percentile(end_to_end, 0.95):.0f} ms"
    )
    print(
        f"Durée d'un essai (réservation → réponse enregistrée) : "
        f"p50 {statistics.median(service):.0f} ms, p95 {percentile(service, 0.95):.0f} ms ; "
        f"dont HTTPS : p50 {statistics.median(http):.0f} ms, p95 {percentile(http, 0.95):.0f} ms"
    )


if __name__ == "__main__":
    main()
