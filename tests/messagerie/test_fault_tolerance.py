"""Fault tolerance, measured: N messages through the REAL Celery worker to a real SMTP peer (mutual TLS)
while the worker is SIGKILLed and restarted, the broker (a private redis-server, never the shared one) is
killed and restarted, and the peer refuses connections for a while. At the end every Message-ID has
arrived exactly once and no delivery is left open.

The periodic sweeper (``deliveries_requeue``, beat's ``messagerie.tasks.requeue``) is driven by the test
loop, publishing to the private broker. The worker runs with a short lease and backoff (env overrides).

Possible duplicate window, stated honestly: a worker killed after the peer answered 250 to DATA and
before the recipients are marked sent (one autocommitted UPDATE issued right after the answer, before any
other bookkeeping) would send the message again when its row is swept. The window is a few milliseconds
per message; the test counts duplicates and requires zero (a duplicate would fail it, not be hidden).
"""

from __future__ import annotations

import collections
import os
import time
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.db.models import Sum

from enrs.outbox.models import OPEN_STATUSES, OutboxStatus
from messagerie.models import Delivery, DeliveryAttempt, Message, Recipient, RecipientStatus
from messagerie.services import outgoing
from tests.helpers import free_port
from tests.messagerie import _relay_support as support
from tests.messagerie._relay_procs import BrokerTask, CeleryWorker, RedisServer
from tests.messagerie._relay_support import REMOTE_DOMAIN
from tests.messagerie.smtp_peer import SmtpPeer, make_relay_pki

N_MESSAGES = 40


def _worker_env(*, broker: str, peer_port: int, pki: Any) -> dict[str, str]:
    db = django_settings.DATABASES["default"]
    host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    env = dict(os.environ)
    env.update(support.relay_env(port=peer_port, pki=pki))
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "enrs.settings.test",
            "TEST_REDIS_URL": broker,
            "DATABASE_URL": f"postgres://{db['USER']}@{host}:{port}/{db['NAME']}",
            "ENRS_OUTBOX_LEASE_SECONDS": "5",
            "ENRS_OUTBOX_BACKOFF_BASE": "0.5",
            "ENRS_OUTBOX_BACKOFF_CAP": "4",
            "MSSANTE_RELAY_TIMEOUT": "3",
        }
    )
    return env


def _open_count() -> int:
    return Delivery.objects.filter(status__in=OPEN_STATUSES).count()


@pytest.mark.integration
def test_every_message_arrives_exactly_once_despite_kills_and_outages(
    transactional_db: None, tmp_path: Path, settings: Any
) -> None:
    pki = make_relay_pki(tmp_path / "pki")
    redis = RedisServer(free_port(), tmp_path / "redis")
    peer_port = free_port()
    peer = SmtpPeer(tmp_path / "peer", port=peer_port, pki=pki)
    support.relay_settings(settings, port=peer_port, pki=pki)
    workers: list[CeleryWorker] = []
    events: list[str] = []
    started = time.monotonic()

    def note(what: str) -> None:
        events.append(f"{time.monotonic() - started:6.1f}s {what}")

    def new_worker() -> CeleryWorker:
        worker = CeleryWorker(
            env=_worker_env(broker=redis.url, peer_port=peer_port, pki=pki), logdir=tmp_path / "workers"
        )
        worker.start()
        workers.append(worker)
        return worker

    redis.start()
    peer.start()
    broker_task = BrokerTask(redis.url)
    try:
        support.trust()
        user, mailbox = support.doctor()
        peer.control(rcpt_delay=0.1)  # a slow peer, so that the faults land while mail is in flight

        def send_batch(count: int, offset: int) -> list[Message]:
            sent = []
            with mock.patch("messagerie.tasks.deliver", broker_task):
                for i in range(offset, offset + count):
                    to = [f"dest{i}@{REMOTE_DOMAIN}"] + ([f"copie{i}@{REMOTE_DOMAIN}"] if i % 3 == 0 else [])
                    sent.append(
                        outgoing.message_send(
                            mailbox=mailbox,
                            actor=user,
                            to=to,
                            cc=[],
                            subject=f"Message {i}",
                            body=f"Corps {i}",
                        )
                    )
            return sent

        def sweep() -> int:
            return outgoing.deliveries_requeue(broker_task, grace=3.0)

        def pause(seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                sweep()
                time.sleep(min(1.0, max(0.0, end - time.monotonic())))

        first = new_worker()
        first.wait_ready()
        note("worker 1 ready")
        messages = send_batch(20, 0)
        note("20 messages written")
        time.sleep(1.0)
        first.kill()
        note(f"worker 1 SIGKILLed ({len(peer.received())} arrived so far)")
        second = new_worker()
        messages += send_batch(10, 20)
        note("10 more messages written while no worker runs")
        second.wait_ready()
        note("worker 2 ready")
        pause(1.0)
        redis.restart()
        note(f"private redis killed and restarted: queues lost ({len(peer.received())} arrived)")
        peer.control(rcpt_delay=0.1, down_for=4)
        note("peer refuses connections for 4 s")
        messages += send_batch(N_MESSAGES - 30, 30)
        note(f"{N_MESSAGES - 30} more messages written")
        pause(2.0)
        second.kill()
        note(f"worker 2 SIGKILLed ({len(peer.received())} arrived)")
        third = new_worker()
        third.wait_ready()
        note("worker 3 ready")

        deadline = time.monotonic() + 240
        while _open_count() and time.monotonic() < deadline:
            sweep()
            time.sleep(2.0)
        note(f"loop ended, open deliveries: {_open_count()}")

        received = peer.received()
        counts = collections.Counter(r["message_id"] for r in received)
        duplicates = {mid: n for mid, n in counts.items() if n > 1}
        expected = {m.message_id for m in messages}
        attempts = DeliveryAttempt.objects.count()
        # A claim without a recorded attempt is a row whose worker was SIGKILLed in the middle of it.
        claims = Delivery.objects.aggregate(n=Sum("attempts"))["n"]
        outcomes = collections.Counter(DeliveryAttempt.objects.values_list("outcome", flat=True))
        report = (
            f"\n{len(messages)} messages, {len(received)} arrivals, {len(duplicates)} duplicated, "
            f"{attempts} attempts {dict(outcomes)}, {claims - attempts} interrupted by a kill, "
            f"broker publishes {broker_task.sent} "
            f"(dropped {broker_task.dropped})\n" + "\n".join(events)
        )
        print(report)
        assert _open_count() == 0, report
        assert not duplicates, report
        assert set(counts) == expected, report
        assert set(Delivery.objects.values_list("status", flat=True)) == {OutboxStatus.DONE}
        assert set(Recipient.objects.values_list("status", flat=True)) == {RecipientStatus.SENT}
        # Each arrival carried every recipient of its message.
        by_id = {m.message_id: sorted(m.to_addresses) for m in messages}
        for record in received:
            assert sorted(record["rcpt_to"]) == by_id[record["message_id"]]
        # The faults really happened: temporary failures were recorded while the peer was down.
        assert outcomes["temporary"] >= 1, report
    finally:
        for worker in workers:
            worker.kill()
        peer.stop()
        redis.kill()
