"""Forwarding a study to an expert site's PACS (outbox rows of the ``dicom`` queue, standards §8).

* `transfer_create` writes the `Transfer` row and one `TransferItem` per instance in the caller's
  transaction and queues the ``forward`` task on commit. Care transfers keep the identity; teaching and
  research transfers are de-identified (PS3.15 Annex E basic profile) with UIDs remapped consistently
  within the transfer: the salt is derived from the server secret and the transfer id, so every attempt
  sends the same new UIDs, recorded per item in ``sent_sop_instance_uid``.
* `transfer_attempt` (the task's body) claims the row, sends only the items still ``pending`` (a resumed
  transfer never re-sends what the peer accepted), records progress as it goes (items and counters
  committed in small batches, so the act page shows it), then checks that the peer holds every SOP
  Instance UID sent (C-FIND, Study Root, IMAGE level, per series; or QIDO-RS) before closing the row.

  C-STORE: ONE association per attempt, with presentation contexts for the study's SOP classes in their
  original transfer syntaxes (files go out as stored) plus an Explicit/Implicit VR Little Endian fallback
  per class and Study Root C-FIND for the check. ``PacsPeer.max_parallel`` bounds the parallel work that
  keeps the association busy: that many threads read, decrypt (and de-identify) the next instances while
  the current one is on the wire. A single association keeps the peer's view of the study in one piece and
  matches what modalities do; pynetdicom sends synchronously on an association, so the time a sender
  would otherwise spend in the vault is what the threads hide.
  STOW-RS: batches of instances, up to ``max_parallel`` requests in flight.

  Outcomes: a DICOM failure status for one instance (0xA9xx, 0xCxxx…) fails that item, the others go on,
  and the transfer ends failed (a person may retry it); 0xA7xx (out of resources) fails the item for this
  attempt and the transfer retries later; network errors, a rejected or aborted association, timeouts →
  temporary failure with backoff (`outbox_fail`); an instance missing on the peer at the check goes back
  to pending and the transfer retries.
* `transfer_retry` (a person, on a failed transfer), `transfers_requeue` (the periodic sweeper).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, F
from django.http import HttpRequest
from django.utils import timezone

from enrs.audit.services import audit_record
from enrs.outbox.models import OutboxStatus
from enrs.outbox.services import (
    lease_seconds,
    outbox_claim,
    outbox_deadline,
    outbox_dispatch_on_commit,
    outbox_fail,
    outbox_requeue,
    outbox_retry,
    outbox_succeed,
)
from enrs.usage.services import usage_emit
from enrs.vault.services import blob_read
from telemedecine.dicom import deidentify, dicomweb, net
from telemedecine.dicom.parse import DicomError
from telemedecine.models import (
    ActEvent,
    Instance,
    PacsPeer,
    PeerProtocol,
    Study,
    StudyStatus,
    Transfer,
    TransferAttempt,
    TransferItem,
    TransferItemStatus,
    TransferPurpose,
)

logger = logging.getLogger("telemedecine.transfers")

DEIDENTIFIED_PURPOSES = (TransferPurpose.TEACHING, TransferPurpose.RESEARCH)
PROGRESS_BATCH = 20  # items committed together at most…
PROGRESS_SECONDS = 1.0  # …or after this long
STOW_BATCH_INSTANCES = 10
STOW_BATCH_BYTES = 32 * 1024 * 1024


# --- Creation -----------------------------------------------------------------------------------------


def _uid_map(transfer: Transfer) -> deidentify.UidMap:
    """The transfer's UID remapping: the same for every attempt, unguessable without the server secret."""
    salt = hmac.new(
        settings.SECRET_KEY.encode(), f"telemedecine.transfer:{transfer.pk}".encode(), hashlib.sha256
    ).digest()
    return deidentify.UidMap(salt)


def _check_peer(peer: PacsPeer) -> None:
    if not peer.is_active:
        raise ValidationError("Ce PACS destinataire est désactivé.", code="peer_inactive")
    if peer.protocol == PeerProtocol.CSTORE:
        if not (peer.host and peer.port and peer.ae_title):
            raise ValidationError(
                "PACS mal configuré : hôte, port et AE title sont nécessaires pour un envoi C-STORE.",
                code="peer_config",
            )
    elif peer.protocol == PeerProtocol.STOW:
        if not peer.dicomweb_url:
            raise ValidationError(
                "PACS mal configuré : l'URL DICOMweb est nécessaire pour un envoi STOW-RS.",
                code="peer_config",
            )
    else:
        raise ValidationError("Protocole de PACS inconnu.", code="peer_config")


def _ordered_instances(study: Study) -> Any:
    return Instance.objects.filter(series__study=study).order_by(
        "series__number", "series_id", "instance_number", "pk"
    )


def _audit_ins(study: Study) -> str:
    patient = study.patient
    return patient.ins if patient is not None and patient.ins else ""


def _act_event(row: Transfer, event: str, actor: Any = None, /, **detail: Any) -> None:
    if row.act_id is not None:
        ActEvent.objects.create(act_id=row.act_id, actor=actor, event=event, detail=detail)


def transfer_create(
    *,
    study: Study,
    peer: PacsPeer,
    requested_by: Any,
    act: Any = None,
    purpose: str = TransferPurpose.CARE,
    request: HttpRequest | None = None,
) -> Transfer:
    """Queue forwarding ``study`` to ``peer``: one item per instance, de-identified only for teaching or
    research; the ``forward`` task is queued when the caller's transaction commits."""
    from telemedecine import tasks  # tasks import this module

    if purpose not in TransferPurpose.values:
        raise ValidationError(
            "Finalité de transfert inconnue : « %(p)s ».", code="purpose", params={"p": purpose}
        )
    _check_peer(peer)
    with transaction.atomic():
        study = Study.objects.select_for_update(of=("self",)).select_related("patient").get(pk=study.pk)
        if study.status != StudyStatus.AVAILABLE:
            raise ValidationError(
                "L'examen n'est pas encore entièrement reçu : il ne peut pas être transféré.",
                code="study_not_ready",
            )
        instances = list(_ordered_instances(study).only("pk", "sop_instance_uid"))
        if not instances:
            raise ValidationError("L'examen ne contient aucune image.", code="empty_study")
        transfer = Transfer.objects.create(
            study=study,
            peer=peer,
            act=act,
            purpose=purpose,
            requested_by=requested_by,
            instances_total=len(instances),
            deadline=outbox_deadline(seconds=float(settings.DICOM_TRANSFER_DEADLINE_SECONDS)),
        )
        uid_map = _uid_map(transfer) if purpose in DEIDENTIFIED_PURPOSES else None
        TransferItem.objects.bulk_create(
            [
                TransferItem(
                    transfer=transfer,
                    instance=instance,
                    sent_sop_instance_uid=(
                        uid_map(instance.sop_instance_uid) if uid_map else instance.sop_instance_uid
                    ),
                )
                for instance in instances
            ],
            batch_size=1000,
        )
        _act_event(
            transfer,
            "images_transfer_requested",
            requested_by,
            transfer=transfer.pk,
            peer=peer.name,
            images=len(instances),
            purpose=purpose,
        )
        outbox_dispatch_on_commit(transfer, tasks.forward)
        audit_record(
            action="telemedecine.transfer.create",
            request=request,
            actor=requested_by,
            target=transfer,
            patient_ins="" if uid_map else _audit_ins(study),
            detail={
                "study": study.pk,
                "peer": peer.pk,
                "protocol": peer.protocol,
                "purpose": purpose,
                "instances": len(instances),
            },
        )
    return transfer


# --- One attempt --------------------------------------------------------------------------------------


@dataclass
class _Run:
    """Progress of one attempt, committed in small batches."""

    transfer: Transfer
    sent: list[tuple[int, str]] = field(default_factory=list)  # (item id, status code)
    failed: list[tuple[int, str]] = field(default_factory=list)
    bytes_pending: int = 0
    sent_total: int = 0
    bytes_total: int = 0
    failed_total: int = 0
    resources_total: int = 0
    last_flush: float = field(default_factory=time.monotonic)

    def item_sent(self, item_id: int, code: str, size: int) -> None:
        self.sent.append((item_id, code))
        self.bytes_pending += size
        self.sent_total += 1
        self.bytes_total += size
        self.maybe_flush()

    def item_failed(self, item_id: int, code: str) -> None:
        self.failed.append((item_id, code[:20]))
        self.failed_total += 1
        if code.startswith("0xA7"):
            self.resources_total += 1
        self.maybe_flush()

    def maybe_flush(self) -> None:
        if (
            len(self.sent) + len(self.failed) >= PROGRESS_BATCH
            or time.monotonic() - self.last_flush >= PROGRESS_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        if not self.sent and not self.failed:
            return
        now = timezone.now()
        with transaction.atomic():
            by_code: dict[str, list[int]] = {}
            for item_id, code in self.sent:
                by_code.setdefault(code, []).append(item_id)
            for code, ids in by_code.items():
                TransferItem.objects.filter(pk__in=ids).update(
                    status=TransferItemStatus.SENT, status_code=code, sent_at=now
                )
            for item_id, code in self.failed:
                TransferItem.objects.filter(pk=item_id).update(
                    status=TransferItemStatus.FAILED, status_code=code
                )
            Transfer.objects.filter(pk=self.transfer.pk).update(
                instances_sent=F("instances_sent") + len(self.sent),
                bytes_sent=F("bytes_sent") + self.bytes_pending,
                lease_until=now + timedelta(seconds=lease_seconds()),
                updated_at=now,
            )
        self.sent.clear()
        self.failed.clear()
        self.bytes_pending = 0


class _Verification(Exception):
    """Instances the peer does not hold after sending."""

    def __init__(self, missing: set[str]) -> None:
        super().__init__(f"{len(missing)} missing")
        self.missing = missing


_ORDER = ("instance__series__number", "instance__series_id", "instance__instance_number", "pk")
ITEM_CHUNK = 50  # items (with their vault rows) loaded at a time: memory stays bounded on large studies


def _pending(transfer: Transfer) -> list[tuple[int, int]]:
    """(item id, file size) of the items still to send, in sending order."""
    return list(
        TransferItem.objects.filter(transfer=transfer, status=TransferItemStatus.PENDING)
        .order_by(*_ORDER)
        .values_list("pk", "instance__size")
    )


def _loaded(ids: list[int]) -> Iterator[TransferItem]:
    """The items ``ids`` with their instance and vault row, read by chunks, in the order given. Runs in
    the caller's thread (the prefetch threads never touch the database)."""
    for start in range(0, len(ids), ITEM_CHUNK):
        chunk = ids[start : start + ITEM_CHUNK]
        rows = {
            item.pk: item
            for item in TransferItem.objects.filter(pk__in=chunk).select_related("instance", "instance__blob")
        }
        yield from (rows[pk] for pk in chunk if pk in rows)


def _loader(transfer: Transfer) -> Any:
    """What a prefetch thread runs for one item: vault read (+ de-identification). No database access."""
    uid_map = _uid_map(transfer) if transfer.purpose in DEIDENTIFIED_PURPOSES else None

    def load(item: TransferItem) -> bytes:
        data = blob_read(item.instance.blob)
        if uid_map is not None:
            data = deidentify.deidentify_bytes(data, uid_map=uid_map)
        return data

    return load


def _expected(transfer: Transfer) -> dict[tuple[str, str], set[str]]:
    """{(study UID, series UID) as the peer knows them: SOP Instance UIDs it must hold}."""
    uid_map = _uid_map(transfer) if transfer.purpose in DEIDENTIFIED_PURPOSES else None
    study_uid = transfer.study.study_instance_uid
    expected: dict[tuple[str, str], set[str]] = {}
    rows = TransferItem.objects.filter(transfer=transfer, status=TransferItemStatus.SENT).values_list(
        "sent_sop_instance_uid", "instance__series__series_instance_uid"
    )
    for sent_uid, series_uid in rows:
        key = (uid_map(study_uid), uid_map(series_uid)) if uid_map else (study_uid, series_uid)
        expected.setdefault(key, set()).add(sent_uid)
    return expected


def _send_cstore(transfer: Transfer, run: _Run) -> None:
    peer = transfer.peer
    pending = [pk for pk, _ in _pending(transfer)]
    contexts = net.plan_contexts(
        TransferItem.objects.filter(pk__in=pending)
        .values_list("instance__sop_class_uid", "instance__transfer_syntax_uid")
        .distinct()
    )
    address = net.Peer(
        host=peer.host,
        port=int(peer.port or 104),
        called_ae_title=peer.ae_title,
        calling_ae_title=peer.calling_ae_title or settings.DICOM_AE_TITLE,
        timeout=float(settings.DICOM_NETWORK_TIMEOUT),
    )
    with net.StoreAssociation(address, contexts) as association:
        for item, loaded in net.prefetched(_loaded(pending), _loader(transfer), workers=peer.max_parallel):
            instance = item.instance
            if isinstance(loaded, BaseException):
                logger.warning("transfer %s: instance %s unreadable: %s", transfer.pk, instance.pk, loaded)
                run.item_failed(item.pk, "read" if not isinstance(loaded, DicomError) else "deidentify")
                continue
            try:
                part = net.split_part10(loaded, default_transfer_syntax=instance.transfer_syntax_uid)
                outcome = association.store(
                    part=part,
                    sop_class_uid=instance.sop_class_uid,
                    sop_instance_uid=item.sent_sop_instance_uid,
                )
            except net.Part10Error as exc:
                logger.warning("transfer %s: instance %s not sendable: %s", transfer.pk, instance.pk, exc)
                run.item_failed(item.pk, "no_context")
                continue
            if outcome.accepted:
                run.item_sent(item.pk, net.status_code(outcome.status), outcome.bytes_sent)
            else:
                run.item_failed(item.pk, net.status_code(outcome.status))
        run.flush()
        if run.failed_total or _has_failed_items(transfer):
            return
        expected = _expected(transfer)
        found: set[str] = set()
        for study_uid, series_uid in expected:
            found |= association.find_instances(study_instance_uid=study_uid, series_instance_uid=series_uid)
    missing = set().union(*expected.values()) - found if expected else set()
    if missing:
        raise _Verification(missing)


def _stow_batches(pending: list[tuple[int, int]]) -> list[list[int]]:
    """Item ids grouped for STOW-RS requests (at most so many instances, so many bytes)."""
    batches: list[list[int]] = []
    current: list[int] = []
    size = 0
    for pk, item_size in pending:
        if current and (len(current) >= STOW_BATCH_INSTANCES or size + item_size > STOW_BATCH_BYTES):
            batches.append(current)
            current, size = [], 0
        current.append(pk)
        size += item_size
    if current:
        batches.append(current)
    return batches


def _send_stow(transfer: Transfer, run: _Run) -> None:
    peer = transfer.peer
    load = _loader(transfer)
    base_url = peer.dicomweb_url
    timeout = float(settings.DICOM_NETWORK_TIMEOUT)

    def post(client: httpx.Client, batch: list[TransferItem]) -> tuple[dicomweb.StowOutcome, dict[int, int]]:
        files: list[tuple[str, bytes]] = []
        sizes: dict[int, int] = {}
        for item in batch:
            data = load(item)
            files.append((item.sent_sop_instance_uid, data))
            sizes[item.pk] = len(data)
        return dicomweb.stow(client, base_url, files), sizes

    with httpx.Client(timeout=timeout) as client:
        batches = _stow_batches(_pending(transfer))
        workers = max(1, peer.max_parallel)
        error: BaseException | None = None
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dicom-stow") as pool:
            in_flight: dict[Future[Any], list[TransferItem]] = {}
            queue = list(reversed(batches))
            while queue or in_flight:
                while queue and error is None and len(in_flight) < workers:
                    batch = list(_loaded(queue.pop()))  # read here: the threads never use the database
                    in_flight[pool.submit(post, client, batch)] = batch
                if not in_flight:
                    break
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    batch = in_flight.pop(future)
                    try:
                        outcome, sizes = future.result()
                    except (dicomweb.DicomWebError, DicomError, OSError) as exc:
                        error = error or exc
                        continue
                    for item in batch:
                        if item.sent_sop_instance_uid in outcome.stored:
                            run.item_sent(item.pk, "200", sizes[item.pk])
                        else:
                            run.item_failed(item.pk, outcome.failed.get(item.sent_sop_instance_uid, "0xC000"))
        run.flush()
        if error is not None:
            raise error
        if run.failed_total or _has_failed_items(transfer):
            return
        expected = _expected(transfer)
        studies = {study_uid for study_uid, _ in expected}
        found: set[str] = set()
        for study_uid in studies:
            found |= dicomweb.qido_instance_uids(client, base_url, study_uid)
    missing = set().union(*expected.values()) - found if expected else set()
    if missing:
        raise _Verification(missing)


def _has_failed_items(transfer: Transfer) -> bool:
    return TransferItem.objects.filter(transfer=transfer, status=TransferItemStatus.FAILED).exists()


def _on_failed(transfer: Transfer) -> None:
    """A transfer closed as failed (permanent failure, or deadline passed): trace, audit."""
    _act_event(transfer, "images_transfer_failed", error=transfer.last_error[:300])
    audit_record(
        action="telemedecine.transfer.failed",
        target=transfer,
        outcome="failure",
        detail={"error": transfer.last_error[:300], "code": transfer.last_error_code},
    )


def _fail(transfer: Transfer, run: _Run, *, permanent: bool, code: str, error: str) -> float | None:
    return outbox_fail(
        transfer,
        permanent=permanent,
        error=error,
        code=code,
        attempt_model=TransferAttempt,
        attempt_fields={"transfer_id": transfer.pk, "instances_sent": run.sent_total},
        on_failed=_on_failed,
    )


def _on_success(run: _Run) -> Any:
    def done(transfer: Transfer) -> None:
        now = timezone.now()
        transfer.verified_at = now
        transfer.instances_sent = TransferItem.objects.filter(
            transfer=transfer, status=TransferItemStatus.SENT
        ).count()
        transfer.save(update_fields=["verified_at", "instances_sent", "updated_at"])
        peer = transfer.peer
        usage_emit(
            "telemedecine.dicom_transfer",
            structure_id=peer.structure_id,
            value=float(transfer.bytes_sent),
            dims={
                "instances": transfer.instances_total,
                "protocol": peer.protocol,
                "purpose": transfer.purpose,
                "attempts": transfer.attempts,
            },
        )
        _act_event(transfer, "images_transfer_done", peer=peer.name, images=transfer.instances_total)
        audit_record(
            action="telemedecine.transfer.done",
            target=transfer,
            detail={
                "peer": peer.pk,
                "instances": transfer.instances_total,
                "bytes": transfer.bytes_sent,
                "attempts": transfer.attempts,
            },
        )

    return done


def transfer_attempt(*, transfer_id: int, worker: str = "") -> float | None:
    """One attempt (the ``forward`` task): returns the delay before the next attempt when it failed
    temporarily, else None (done, failed for good, or not ours to work on)."""
    claimed = outbox_claim(Transfer, transfer_id, worker=worker)
    if claimed is None:
        return None
    transfer = Transfer.objects.select_related("peer", "study").get(pk=claimed.pk)
    transfer._attempt_started_at = getattr(claimed, "_attempt_started_at", None)  # type: ignore[attr-defined]
    run = _Run(transfer)
    peer = transfer.peer
    try:
        _check_peer(peer)
    except ValidationError as exc:
        return _fail(transfer, run, permanent=True, code="peer_config", error=exc.messages[0])
    # Out of resources (0xA7xx) last time: those instances are tried again.
    TransferItem.objects.filter(
        transfer=transfer, status=TransferItemStatus.FAILED, status_code__startswith="0xA7"
    ).update(status=TransferItemStatus.PENDING, status_code="")
    try:
        if peer.protocol == PeerProtocol.STOW:
            _send_stow(transfer, run)
        else:
            _send_cstore(transfer, run)
    except _Verification as missing:
        run.flush()
        TransferItem.objects.filter(
            transfer=transfer, sent_sop_instance_uid__in=missing.missing, status=TransferItemStatus.SENT
        ).update(status=TransferItemStatus.PENDING, status_code="missing", sent_at=None)
        Transfer.objects.filter(pk=transfer.pk).update(
            instances_sent=F("instances_sent") - len(missing.missing)
        )
        return _fail(
            transfer,
            run,
            permanent=False,
            code="verification",
            error=f"Vérification : {len(missing.missing)} image(s) envoyée(s) absente(s) du PACS ; "
            "elles seront renvoyées.",
        )
    except net.DicomNetError as exc:
        run.flush()
        return _fail(transfer, run, permanent=False, code=exc.code, error=exc.message)
    except dicomweb.DicomWebError as exc:
        run.flush()
        return _fail(transfer, run, permanent=not exc.temporary, code=exc.code, error=exc.message)
    except net.Part10Error as exc:
        run.flush()
        return _fail(transfer, run, permanent=True, code="contexts", error=str(exc))
    except Exception as exc:  # a bug or an unexpected peer answer: retried, visible on the transfer
        logger.exception("transfer %s: unexpected error", transfer.pk)
        run.flush()
        return _fail(transfer, run, permanent=False, code="error", error=f"Erreur inattendue : {exc}"[:500])
    failed = TransferItem.objects.filter(transfer=transfer, status=TransferItemStatus.FAILED)
    if failed.exists():
        resources = failed.filter(status_code__startswith="0xA7").count()
        total = failed.count()
        if resources == total:
            return _fail(
                transfer,
                run,
                permanent=False,
                code="resources",
                error=f"Le PACS manque de ressources : {total} image(s) seront renvoyée(s).",
            )
        return _fail(
            transfer,
            run,
            permanent=True,
            code="refused",
            error=f"{total} image(s) refusée(s) par le PACS (voir le détail par image).",
        )
    outbox_succeed(
        transfer,
        attempt_model=TransferAttempt,
        code="verified",
        message=f"{transfer.instances_total} image(s) présentes sur le PACS.",
        attempt_fields={"transfer_id": transfer.pk, "instances_sent": run.sent_total},
        on_success=_on_success(run),
    )
    return None


# --- People and the sweeper ----------------------------------------------------------------------------


def transfer_retry(*, transfer: Transfer, actor: Any, request: HttpRequest | None = None) -> Transfer:
    """Try a failed transfer again: refused instances go back to pending (accepted ones are not resent)."""
    from telemedecine import tasks

    with transaction.atomic():
        locked = outbox_retry(
            transfer, deadline=outbox_deadline(seconds=float(settings.DICOM_TRANSFER_DEADLINE_SECONDS))
        )
        reset = TransferItem.objects.filter(transfer=locked, status=TransferItemStatus.FAILED).update(
            status=TransferItemStatus.PENDING, status_code=""
        )
        _act_event(locked, "images_transfer_retried", actor, transfer=locked.pk)
        outbox_dispatch_on_commit(locked, tasks.forward)
        audit_record(
            action="telemedecine.transfer.retry",
            request=request,
            actor=actor,
            target=locked,
            detail={"reset_items": reset},
        )
    return locked


def transfers_requeue(task: Any) -> int:
    """Queue transfers whose task was lost; close those past their deadline (periodic)."""
    return outbox_requeue(Transfer, task, on_failed=_on_failed)


def transfer_progress(transfer: Transfer) -> dict[str, Any]:
    """Counters for the act page (items by status, bytes, verification)."""
    counts = dict(
        TransferItem.objects.filter(transfer=transfer)
        .values_list("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    )
    return {
        "total": transfer.instances_total,
        "sent": counts.get(TransferItemStatus.SENT, 0),
        "pending": counts.get(TransferItemStatus.PENDING, 0),
        "failed": counts.get(TransferItemStatus.FAILED, 0),
        "bytes_sent": transfer.bytes_sent,
        "status": transfer.status,
        "done": transfer.status == OutboxStatus.DONE,
        "verified_at": transfer.verified_at,
    }
