"""Relay throughput: N messages with a ~100 KB IHE_XDM attachment through the Celery relay to Postfix's
`smtp-sink` on loopback, next to Postfix's `smtp-source` sending the same count and size to the same sink.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/enrs_relay_bench .venv/bin/python bench/mssante_relay.py

What is measured for the relay: from the moment the N `deliver` tasks are published to a private Redis
(one per message, as `message_send` queues them when its transaction commits) until the last Delivery
row is committed as done, with one worker process (`--concurrency`, default 2: prefork children, each
keeping its own SMTP connection). This is the production path: each `deliver` task claims its own row and
the other due rows (up to ``MSSANTE_DELIVERY_BATCH``, 50) in one statement, reads their encrypted MIME
from PostgreSQL, sends them one after the other over its connection and records each message (recipients
sent, attempt row, row done) in one statement right after its 250; the tasks whose row was already
taken end after one statement. `smtp-source` runs with as many sessions as the worker has processes and
keeps its connections (`-d`), like the relay. Also printed: the same MIME through the same SMTP client
in this process, without database or Celery (the ceiling of the Python side), and the machine's load
(2 shared cores: the figures move with it). Plain SMTP to the sink (``MSSANTE_RELAY_SECURITY=none``):
the sink speaks no TLS. Messages are written beforehand (not timed) with `outgoing.message_send`.

Installs the `postfix` package (no configuration) when `smtp-sink` is missing. Uses a private Redis on a
free port and a private database (``test_<name of DATABASE_URL>``, kept between runs).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def ensure_postfix_tools() -> tuple[str, str]:
    sink, source = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink", shutil.which("smtp-source")
    source = source or "/usr/sbin/smtp-source"
    if not (os.path.exists(sink) and os.path.exists(source)):
        print("smtp-sink absent : installation du paquet postfix (sans configuration)…", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(  # noqa: S603 - fixed command
            [shutil.which("debconf-set-selections") or "/usr/bin/debconf-set-selections"],
            input=b"postfix postfix/main_mailer_type select No configuration\n",
            check=True,
        )
        apt = shutil.which("apt-get") or "/usr/bin/apt-get"
        subprocess.run([apt, "install", "-y", "postfix"], env=env, check=True)  # noqa: S603 - fixed command
    return sink, source


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sink(sink: str, port: int, workdir: Path) -> subprocess.Popen[bytes]:
    log = open(workdir / "smtp-sink.log", "ab")  # noqa: SIM115 - owned by the child
    command = [sink]
    if os.geteuid() == 0:
        command += ["-u", "nobody"]
    process = subprocess.Popen(  # noqa: S603 - fixed command
        [*command, f"127.0.0.1:{port}", "256"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    from tests.helpers import port_open, wait_until

    wait_until(lambda: port_open(port), timeout=10, what="smtp-sink")
    return process


def build_archive(pdf: bytes, *, sender: str) -> bytes:
    """IHE_XDM.zip holding one CDA level 1 (test INS, demo author) whose body is `pdf`."""
    import datetime as dt

    from enrs.standards import cda, ebrim
    from enrs.standards.valuesets import lookup
    from messagerie.standards import xdm

    def code(name: str, value: str) -> Any:
        found = lookup(name, value)
        assert found is not None
        return found

    now = dt.datetime.now(dt.UTC)
    author = cda.Person(idnat_ps="810002345678", family="MARTIN", given="Paul", specialty_code="G15_10/SM26")
    org = cda.Organization(idnat_struct="1750000000", name="CH Banc")
    spec = cda.CdaLevel1Spec(
        document_id_root="1.2.250.1.999.1.1",
        document_id_extension="BANC",
        set_id_root="1.2.250.1.999.1.2",
        set_id_extension="BANC",
        version_number=1,
        type_code=code("type_code", "11488-4"),
        title="Compte rendu (banc)",
        effective_time=now,
        confidentiality=code("confidentiality", "N"),
        patient=cda.PatientIdentity(
            ins="279035121518989",
            ins_oid="1.2.250.1.213.1.4.10",
            birth_family_name="PAT-TROIS",
            birth_given_names=("DOMINIQUE",),
            first_given_name="DOMINIQUE",
            sex="F",
            birth_date=dt.date(1979, 3, 28),
            birth_place_insee="51215",
        ),
        author=author,
        author_organization=org,
        custodian=org,
        legal_authenticator=author,
        legal_authentication_time=now,
        service_start=now,
        service_end=now,
        encounter_start=now,
        encounter_end=now,
        facility_type=code("facility_type", "SA01"),
        practice_setting=code("practice_setting", "ETABLISSEMENT"),
        body=pdf,
    )
    document = cda.build_cda_level1(spec)
    xcn = "810002345678^MARTIN^Paul^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"
    xdm_author = ebrim.Author(
        person=xcn, institution="CH Banc^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1750000000"
    )
    entry = xdm.entry_from_cda(document, entry_uuid=ebrim.new_uuid(), authors=(xdm_author,))
    submission = ebrim.SubmissionSet(
        entry_uuid=ebrim.new_uuid(),
        unique_id="1.2.250.1.999.1.3.1",
        source_id="1.2.250.1.999.1",
        patient_id=entry.patient_id,
        submission_time=xdm.xdm_time(now),
        content_type=code("content_type", "07"),
        authors=(xdm_author,),
    )
    return xdm.build_xdm(
        [xdm.XdmDocument(content=document, entry=entry)],
        submission,
        sender=sender,
        recipients=["dest@banc-distant.mssante.fr"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--xdm-kb", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--keep-logs", action="store_true", help="garder le dossier de travail (journaux)")
    args = parser.parse_args()

    sink_bin, source_bin = ensure_postfix_tools()
    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/enrs_relay_bench")
    os.environ["DJANGO_SETTINGS_MODULE"] = "enrs.settings.test"
    # One vault key shared by this process (test settings) and the worker (development settings).
    os.environ["ENRS_VAULT_KEYS"] = "banc:" + __import__("base64").b64encode(os.urandom(32)).decode()
    os.environ["ENRS_VAULT_ACTIVE_KEY"] = "banc"
    workdir = Path(tempfile.mkdtemp(prefix="mssante-bench-"))

    from tests.messagerie._relay_procs import BrokerTask, CeleryWorker, RedisServer

    redis = RedisServer(free_port(), workdir / "redis")
    redis.start()
    os.environ["TEST_REDIS_URL"] = redis.url
    sink_port = free_port()
    sink = start_sink(sink_bin, sink_port, workdir)
    worker: CeleryWorker | None = None
    try:
        import django

        django.setup()
        from django.conf import settings
        from django.db import connection
        from django.db.models import Max
        from django.utils import timezone

        print("Base de données de banc…", flush=True)
        db_name = connection.creation.create_test_db(
            verbosity=0, autoclobber=True, keepdb=True, serialize=False
        )
        settings.MSSANTE_RELAY_HOST = "127.0.0.1"
        settings.MSSANTE_RELAY_PORT = sink_port
        settings.MSSANTE_RELAY_SECURITY = "none"
        settings.MSSANTE_LOCAL_DELIVERY = False

        from annuaire.models import MailboxKind
        from enrs.accounts.models import User
        from enrs.outbox.models import OutboxStatus
        from enrs.vault.services import blob_put
        from messagerie.models import Attachment, Delivery, Mailbox, Message, TrustedDomain
        from messagerie.services import outgoing

        user, _ = User.objects.get_or_create(username="banc-relais", defaults={"email": "banc@example.org"})
        mailbox, _ = Mailbox.objects.get_or_create(
            address="banc.relais@enrs-demo.mssante.fr",
            defaults={
                "kind": MailboxKind.PERSONAL,
                "display_name": "Banc",
                "owner": user,
                "created_by": user,
            },
        )
        TrustedDomain.objects.get_or_create(domain="banc-distant.mssante.fr")

        # A real IHE_XDM.zip (CDA level 1 embedding an incompressible PDF) of about --xdm-kb KB.
        pdf = b"%PDF-1.4\n" + os.urandom(args.xdm_kb * 1024 - 2048)
        archive = build_archive(pdf, sender=mailbox.address)
        print(f"IHE_XDM.zip : {len(archive) / 1024:.0f} Ko", flush=True)

        class NoDispatch:
            def delay(self, pk: int) -> None:
                pass

        print(f"Écriture de {args.messages} messages (non chronométrée)…", flush=True)
        t0 = time.monotonic()
        ids: list[int] = []
        with mock.patch("messagerie.tasks.deliver", NoDispatch()):
            for i in range(args.messages):
                attachment = Attachment.objects.create(
                    mailbox=mailbox,
                    uploaded_by=user,
                    filename="IHE_XDM.zip",
                    content_type="application/zip",
                    size=len(archive),
                    blob=blob_put(archive, purpose="messagerie.attachment", content_type="application/zip"),
                    is_xdm=True,
                )
                message = outgoing.message_send(
                    mailbox=mailbox,
                    actor=user,
                    to=["dest@banc-distant.mssante.fr"],
                    cc=[],
                    subject=f"Banc {i}",
                    body="Compte rendu en pièce jointe.",
                    attachments=[attachment],
                )
                ids.append(Delivery.objects.get(message=message).pk)
        size = Message.objects.get(delivery__pk=ids[0]).size
        print(
            f"… écrits en {time.monotonic() - t0:.0f} s ; taille MIME d'un message : {size} octets",
            flush=True,
        )

        # The worker runs with the development settings (production-like: persistent database
        # connections, tasks through the broker, no eager mode), on the bench database and broker.
        env = {k: v for k, v in os.environ.items() if k not in ("TEST_REDIS_URL",)}
        db = settings.DATABASES["default"]
        host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
        env.update(
            {
                "DATABASE_URL": f"postgres://{db['USER']}@{host}:{port}/{db_name}",
                "DJANGO_SETTINGS_MODULE": "enrs.settings.dev",
                "REDIS_URL": redis.url,
                "DEBUG": "false",
                "DB_CONN_MAX_AGE": "60",
                "MSSANTE_RELAY_HOST": "127.0.0.1",
                "MSSANTE_RELAY_PORT": str(sink_port),
                "MSSANTE_RELAY_SECURITY": "none",
                "MSSANTE_LOCAL_DELIVERY": "false",
            }
        )
        worker = CeleryWorker(env=env, logdir=workdir / "worker", concurrency=args.concurrency)
        worker.start()
        worker.wait_ready()
        publisher = BrokerTask(redis.url)
        start = time.monotonic()
        published_at = timezone.now()
        for pk in ids:
            publisher.delay(pk)
        open_rows = Delivery.objects.filter(pk__gte=min(ids), pk__lte=max(ids)).exclude(
            status__in=[OutboxStatus.DONE, OutboxStatus.FAILED]
        )
        while open_rows.exists():
            time.sleep(0.5)  # light polling: the database is what is being measured
            if time.monotonic() - start > 1800:
                raise SystemExit("délai dépassé")
        last_done = Delivery.objects.filter(pk__in=ids).aggregate(last=Max("done_at"))["last"]
        # The end is the commit time of the last row (not when this loop noticed it).
        relay_seconds = (last_done - published_at).total_seconds() if last_done else time.monotonic() - start
        failed = Delivery.objects.filter(pk__in=ids, status=OutboxStatus.FAILED).count()
        relay_rate = args.messages / relay_seconds
        print(
            f"Relais ENRS  : {args.messages} messages en {relay_seconds:.1f} s = {relay_rate:.1f} msg/s"
            f" (échecs : {failed})",
            flush=True,
        )
        worker.stop()
        worker = None

        # Where the time goes: the same MIME through the same SMTP client, without database or Celery.
        from messagerie import smtp_client

        raw = outgoing.message_mime(Message.objects.get(delivery__pk=ids[0]))
        client = smtp_client.RelayClient(
            smtp_client.RelayConfig(host="127.0.0.1", port=sink_port, security="none")
        )
        start = time.monotonic()
        for _ in range(args.messages):
            client.submit(mail_from=mailbox.address, rcpt_to=["dest@banc-distant.mssante.fr"], data=raw)
        client.close()
        client_rate = args.messages / (time.monotonic() - start)
        print(f"Client SMTP seul (1 connexion, sans base ni Celery) : {client_rate:.1f} msg/s", flush=True)

        start = time.monotonic()
        subprocess.run(  # noqa: S603 - fixed command
            [
                source_bin,
                "-s",
                str(args.concurrency),
                "-d",
                "-m",
                str(args.messages),
                "-l",
                str(size),
                "-f",
                mailbox.address,
                "-t",
                "dest@banc-distant.mssante.fr",
                f"127.0.0.1:{sink_port}",
            ],
            check=True,
        )
        source_seconds = time.monotonic() - start
        source_rate = args.messages / source_seconds
        print(f"smtp-source  : {args.messages} messages en {source_seconds:.1f} s = {source_rate:.1f} msg/s")
        print(f"Rapport relais / smtp-source : {relay_rate / source_rate:.2f} (objectif ≥ 0,5)")
        print(f"Rapport client SMTP seul / smtp-source : {client_rate / source_rate:.2f}")
        print(f"Rapport relais / client SMTP seul : {relay_rate / client_rate:.2f}")
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"Charge de la machine (1, 5, 15 min) : {load} sur {os.cpu_count()} cœurs")
    finally:
        if worker is not None:
            worker.kill()
        sink.terminate()
        sink.wait()
        redis.kill()
        if args.keep_logs:
            print(f"Journaux : {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
