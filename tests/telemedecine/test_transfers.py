"""Forwarding studies to a PACS: creation, one attempt, resume, verification, retry, requeue.

The peer is real: a small pynetdicom storage SCP (C-STORE + C-FIND, Study Root) listening on loopback in a
thread of the test process. It keeps the raw bytes it received and can be told to refuse instances with a
given status, to abort the association after some instances, to accept only some transfer syntaxes, or to
"forget" instances at the C-FIND check. The end-to-end tests with Orthanc and the Celery worker are in
``test_orthanc.py``.
"""

from __future__ import annotations

import io
import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import pydicom
import pytest
from django.core.exceptions import ValidationError
from django.test.utils import CaptureQueriesContext
from pydicom.dataset import Dataset
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt
from pynetdicom.presentation import AllStoragePresentationContexts

from enrs.audit.models import AuditEvent
from enrs.outbox.models import OutboxStatus
from enrs.usage.models import UsageEvent
from enrs.vault.services import blob_read
from telemedecine.dicom import dicomweb, net
from telemedecine.models import (
    Act,
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
from telemedecine.services import studies, transfers
from tests.helpers import free_port
from tests.telemedecine import dicom_samples
from tests.telemedecine.factories import make_structure, make_user

pytestmark = pytest.mark.django_db

IMPLICIT = "1.2.840.10008.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"


# --- A real peer in a thread ----------------------------------------------------------------------------


@dataclass
class FakePacs:
    """pynetdicom storage SCP on loopback, with knobs for the failure cases."""

    ae_title: str = "EXPERT"
    syntaxes: list[str] = field(default_factory=lambda: list(ALL_TRANSFER_SYNTAXES))
    refuse: dict[str, int] = field(default_factory=dict)  # SOP Instance UID -> status
    abort_after: int | None = None  # abort the association after storing that many (per association)
    hidden: set[str] = field(default_factory=set)  # stored but not reported by C-FIND
    require_calling: list[str] = field(default_factory=list)
    received: dict[str, bytes] = field(default_factory=dict)  # SOP Instance UID -> dataset bytes
    syntax_of: dict[str, str] = field(default_factory=dict)
    study_of: dict[str, tuple[str, str]] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    associations: int = 0

    def __post_init__(self) -> None:
        self.port = free_port()
        self._lock = threading.Lock()
        self._per_assoc: Counter[int] = Counter()
        self.ae = AE(ae_title=self.ae_title)
        for context in AllStoragePresentationContexts:
            self.ae.add_supported_context(str(context.abstract_syntax), self.syntaxes)
        self.ae.add_supported_context(net.STUDY_ROOT_FIND, [EXPLICIT, IMPLICIT])
        self.ae.add_supported_context(net.VERIFICATION)
        self.ae.require_calling_aet = self.require_calling
        self.server: Any = None

    def _on_store(self, event: Any) -> int:
        request = event.request
        uid = str(request.AffectedSOPInstanceUID)
        key = id(event.assoc)
        with self._lock:
            if self.abort_after is not None and self._per_assoc[key] >= self.abort_after:
                event.assoc.abort()
                return 0xA700
            self.counts[uid] += 1
            if uid in self.refuse:
                return self.refuse[uid]
            raw = event.encoded_dataset(include_meta=False)
            syntax = str(event.context.transfer_syntax)
            ds = net._read_bare(raw, syntax)
            self.received[uid] = raw
            self.syntax_of[uid] = syntax
            self.study_of[uid] = (str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID))
            self._per_assoc[key] += 1
        return 0x0000

    def _on_find(self, event: Any) -> Iterator[tuple[int, Dataset | None]]:
        query = event.identifier
        for uid, (study_uid, series_uid) in list(self.study_of.items()):
            if uid in self.hidden:
                continue
            if study_uid == query.StudyInstanceUID and series_uid == query.SeriesInstanceUID:
                answer = Dataset()
                answer.QueryRetrieveLevel = "IMAGE"
                answer.StudyInstanceUID = study_uid
                answer.SeriesInstanceUID = series_uid
                answer.SOPInstanceUID = uid
                yield 0xFF00, answer

    def _on_requested(self, event: Any) -> None:
        with self._lock:
            self.associations += 1

    def start(self) -> FakePacs:
        self.server = self.ae.start_server(
            ("127.0.0.1", self.port),
            block=False,
            evt_handlers=[
                (evt.EVT_C_STORE, self._on_store),
                (evt.EVT_C_FIND, self._on_find),
                (evt.EVT_ACCEPTED, self._on_requested),
            ],
        )
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
        self.ae.shutdown()


@pytest.fixture
def pacs() -> Iterator[FakePacs]:
    server = FakePacs().start()
    yield server
    server.stop()


def make_pacs(**kwargs: Any) -> FakePacs:
    return FakePacs(**kwargs).start()


# --- Studies and peers ----------------------------------------------------------------------------------


def ingest(files: list[bytes], *, site: Any = None) -> Study:
    site = site or make_structure()
    instance = None
    for data in files:
        instance = studies.study_ingest_file(data_or_path=data, source="upload", site=site)
    assert instance is not None
    return studies.study_finalize(study=instance.series.study)


def small_study(sizes: tuple[int, ...] = (3, 2), **kwargs: Any) -> Study:
    return ingest([data for _, data in dicom_samples.make_study(sizes, **kwargs)])


def peer_for(pacs: FakePacs, **fields: Any) -> PacsPeer:
    values: dict[str, Any] = {
        "name": "PACS CHU",
        "structure": make_structure(),
        "protocol": PeerProtocol.CSTORE,
        "host": "127.0.0.1",
        "port": pacs.port,
        "ae_title": pacs.ae_title,
        "calling_ae_title": "ENRS",
        "max_parallel": 2,
    }
    values.update(fields)
    return PacsPeer.objects.create(**values)


def create(study: Study, peer: PacsPeer, **kwargs: Any) -> Transfer:
    return transfers.transfer_create(study=study, peer=peer, requested_by=make_user(), **kwargs)


def stored_dataset(instance: Instance) -> bytes:
    data = blob_read(instance.blob)
    return bytes(net.split_part10(data, default_transfer_syntax=instance.transfer_syntax_uid).dataset)


def items_by_status(transfer: Transfer) -> Counter[str]:
    return Counter(TransferItem.objects.filter(transfer=transfer).values_list("status", flat=True))


# --- Creation -------------------------------------------------------------------------------------------


def test_create_writes_one_item_per_instance_keeps_identity_and_queues_on_commit(
    pacs: FakePacs, django_capture_on_commit_callbacks: Any
) -> None:
    study = small_study((3, 2))
    peer = peer_for(pacs)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        transfer = create(study, peer)
    assert len(callbacks) == 1
    assert transfer.status == OutboxStatus.PENDING
    assert transfer.instances_total == 5
    assert transfer.deadline is not None
    items = list(TransferItem.objects.filter(transfer=transfer).select_related("instance"))
    assert len(items) == 5
    assert all(item.status == TransferItemStatus.PENDING for item in items)
    assert all(item.sent_sop_instance_uid == item.instance.sop_instance_uid for item in items)
    event = AuditEvent.objects.get(action="telemedecine.transfer.create")
    assert event.target_id == str(transfer.pk)
    assert event.detail["purpose"] == "care"
    assert event.detail["instances"] == 5


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("purpose", "Finalité"),
        ("inactive", "désactivé"),
        ("no_host", "mal configuré"),
        ("receiving", "pas encore entièrement reçu"),
    ],
)
def test_create_refuses_bad_requests_and_writes_nothing(pacs: FakePacs, case: str, message: str) -> None:
    study = small_study((1,))
    peer = peer_for(pacs)
    kwargs: dict[str, Any] = {}
    if case == "purpose":
        kwargs["purpose"] = "marketing"
    elif case == "inactive":
        peer.is_active = False
        peer.save()
    elif case == "no_host":
        peer.host = ""
        peer.save()
    else:
        Study.objects.filter(pk=study.pk).update(status=StudyStatus.RECEIVING)
    with pytest.raises(ValidationError) as raised:
        create(study, peer, **kwargs)
    assert message in raised.value.messages[0]
    assert not Transfer.objects.exists()
    assert not TransferItem.objects.exists()


# --- Sending --------------------------------------------------------------------------------------------


def test_a_care_transfer_sends_every_dataset_as_stored_then_verifies(pacs: FakePacs) -> None:
    files = [data for _, data in dicom_samples.make_study((3, 2))]
    files.append(
        dicom_samples.make_instance(
            study_uid=dicom_samples.study_uid_of(files[0]),
            series_uid=dicom_samples.new_uid(),
            series_number=3,
            base="JPEG2000.dcm",
        )
    )
    study = ingest(files)
    peer = peer_for(pacs)
    transfer = create(study, peer)

    assert transfers.transfer_attempt(transfer_id=transfer.pk, worker="test") is None

    transfer.refresh_from_db()
    assert transfer.status == OutboxStatus.DONE
    assert transfer.verified_at is not None
    assert transfer.instances_sent == 6
    assert pacs.associations == 1  # one association for the whole study
    instances = list(Instance.objects.filter(series__study=study))
    assert len(instances) == 6
    for instance in instances:
        # the dataset went out exactly as stored, in its original transfer syntax (JPEG 2000 included)
        assert pacs.received[instance.sop_instance_uid] == stored_dataset(instance)
        assert pacs.syntax_of[instance.sop_instance_uid] == instance.transfer_syntax_uid
    assert any(i.transfer_syntax_uid.startswith("1.2.840.10008.1.2.4.9") for i in instances)  # JPEG 2000
    assert transfer.bytes_sent == sum(len(raw) for raw in pacs.received.values())
    assert items_by_status(transfer) == {TransferItemStatus.SENT: 6}
    assert all(code == "0x0000" for code in TransferItem.objects.values_list("status_code", flat=True))
    attempt = TransferAttempt.objects.get(transfer=transfer)
    assert (attempt.outcome, attempt.instances_sent, attempt.worker) == ("success", 6, "test")
    usage = UsageEvent.objects.get(kind="telemedecine.dicom_transfer")
    assert usage.value == transfer.bytes_sent
    assert usage.dims["instances"] == 6
    assert (usage.dims["protocol"], usage.dims["purpose"]) == ("cstore", "care")
    assert usage.structure_id == peer.structure_id
    assert AuditEvent.objects.filter(action="telemedecine.transfer.done", target_id=str(transfer.pk)).exists()
    # a done transfer is not worked on again
    assert transfers.transfer_attempt(transfer_id=transfer.pk) is None
    assert sum(pacs.counts.values()) == 6


def test_progress_is_committed_while_sending() -> None:
    """Items are written in batches during the attempt (seen from another connection's point of view:
    the UPDATEs run before the final verification)."""
    pacs = make_pacs()
    try:
        study = small_study((45,))
        transfer = create(study, peer_for(pacs))
        from django.db import connection

        with CaptureQueriesContext(connection) as queries:
            transfers.transfer_attempt(transfer_id=transfer.pk)
        item_updates = [
            q["sql"] for q in queries.captured_queries if 'UPDATE "telemedecine_transferitem"' in q["sql"]
        ]
        counter_updates = [
            q["sql"]
            for q in queries.captured_queries
            if 'UPDATE "telemedecine_transfer"' in q["sql"] and "instances_sent" in q["sql"]
        ]
        assert len(item_updates) >= 3  # 45 items, batches of at most 20
        assert len(counter_updates) >= 3
        transfer.refresh_from_db()
        assert transfer.status == OutboxStatus.DONE
        assert transfer.instances_sent == 45
    finally:
        pacs.stop()


def test_a_teaching_transfer_is_deidentified_with_consistent_uids(pacs: FakePacs) -> None:
    study = small_study((2, 2), patient_name="DUPONT^JEAN", patient_id="IPP-42")
    transfer = create(study, peer_for(pacs), purpose=TransferPurpose.TEACHING)
    items = list(TransferItem.objects.filter(transfer=transfer).select_related("instance"))
    sent_uids = {item.sent_sop_instance_uid for item in items}
    assert not sent_uids & {item.instance.sop_instance_uid for item in items}
    # the mapping is the transfer's: recomputing it gives the same UIDs (resume sends the same)
    uid_map = transfers._uid_map(transfer)
    assert all(uid_map(item.instance.sop_instance_uid) == item.sent_sop_instance_uid for item in items)
    audit = AuditEvent.objects.get(action="telemedecine.transfer.create")
    assert audit.patient_ins == ""

    assert transfers.transfer_attempt(transfer_id=transfer.pk) is None
    transfer.refresh_from_db()
    assert transfer.status == OutboxStatus.DONE
    assert set(pacs.received) == sent_uids
    study_uids = {study_uid for study_uid, _ in pacs.study_of.values()}
    assert study_uids == {uid_map(study.study_instance_uid)}
    for uid, raw in pacs.received.items():
        ds = net._read_bare(raw, pacs.syntax_of[uid])
        assert str(ds.SOPInstanceUID) == uid
        assert str(ds.PatientName) == ""
        assert str(ds.PatientID) == ""
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"


def test_the_peer_accepting_only_implicit_vr_gets_converted_datasets_and_refuses_compressed() -> None:
    pacs = make_pacs(syntaxes=[IMPLICIT])
    try:
        files = [data for _, data in dicom_samples.make_study((2,))]
        jpeg = dicom_samples.make_instance(
            study_uid=dicom_samples.study_uid_of(files[0]),
            series_uid=dicom_samples.new_uid(),
            series_number=2,
            base="JPEG2000.dcm",
        )
        study = ingest([*files, jpeg])
        transfer = create(study, peer_for(pacs))
        assert transfers.transfer_attempt(transfer_id=transfer.pk) is None
        transfer.refresh_from_db()
        assert transfer.status == OutboxStatus.FAILED  # a person must look at the refused image
        assert "1 image(s) refusée(s)" in transfer.last_error
        failed = TransferItem.objects.get(transfer=transfer, status=TransferItemStatus.FAILED)
        assert failed.status_code == "no_context"
        assert failed.instance.sop_instance_uid == dicom_samples.sop_uid_of(jpeg)
        for data in files:
            uid = dicom_samples.sop_uid_of(data)
            assert pacs.syntax_of[uid] == IMPLICIT
            original = pydicom.dcmread(io.BytesIO(data))
            received = net._read_bare(pacs.received[uid], IMPLICIT)
            assert received.SOPInstanceUID == original.SOPInstanceUID
            assert received.PixelData == original.PixelData
        assert AuditEvent.objects.filter(action="telemedecine.transfer.failed").exists()
    finally:
        pacs.stop()


def test_an_instance_refused_by_the_peer_fails_alone_and_a_retry_sends_only_it() -> None:
    study = small_study((4,))
    refused = Instance.objects.filter(series__study=study).order_by("instance_number")[1]
    pacs = make_pacs(refuse={refused.sop_instance_uid: 0xC000})
    try:
        requester = make_user()
        transfer = transfers.transfer_create(study=study, peer=peer_for(pacs), requested_by=requester)
        assert transfers.transfer_attempt(transfer_id=transfer.pk) is None
        transfer.refresh_from_db()
        assert transfer.status == OutboxStatus.FAILED
        assert items_by_status(transfer) == {TransferItemStatus.SENT: 3, TransferItemStatus.FAILED: 1}
        assert TransferItem.objects.get(instance=refused).status_code == "0xC000"
        attempt = TransferAttempt.objects.get(transfer=transfer)
        assert (attempt.outcome, attempt.instances_sent) == ("permanent", 3)

        pacs.refuse.clear()
        transfers.transfer_retry(transfer=Transfer.objects.get(pk=transfer.pk), actor=requester)
        with pytest.raises(ValidationError):  # only a failed transfer is retried
            transfers.transfer_retry(transfer=Transfer.objects.get(pk=transfer.pk), actor=requester)
        transfer.refresh_from_db()
        assert transfer.status == OutboxStatus.PENDING
        assert TransferItem.objects.get(instance=refused).status == TransferItemStatus.PENDING
        assert AuditEvent.objects.filter(action="telemedecine.transfer.retry").exists()
        assert transfers.transfer_attempt(transfer_id=transfer.pk) is None
        transfer.refresh_from_db()
        assert transfer.status == OutboxStatus.DONE
        assert pacs.counts[refused.sop_instance_uid] == 2
        assert all(n == 1 for uid, n in pacs.counts.items() if uid != refused.sop_instance_uid)
        assert transfer.instances_sent == 4
    finally:
        pacs.stop()


def test_out_of_resources_is_retried_later_for_that_instance_only() -> None:
    study = small_study((3,))
    busy = Instance.objects.filter(series__study=study).order_by("instance_number")[0]
    pacs = make_pacs(refuse={busy.sop_instance_uid: 0xA700})
    try:
        transfer = create(study, peer_for(pacs))
        delay = transfers.transfer_attempt(transfer_id=transfer.pk)
        assert delay is not None
        assert delay > 0
        transfer.refresh_from_db()
        assert transfer.status == OutboxStatus.RETRY
        assert transfer.last_error_code == "resources"
        assert TransferItem.objects.get(instance=busy).status_code == "0xA700"
        pacs.refuse.clear()
        Transfer.objects.filter(pk=transfer.pk).update(next_attempt_at=transfer.created_at)
        assert transfers.transfer_attempt(transfer_id=transfer.pk) is None
        transfer.refresh_from_db()
        assert transfer.status == OutboxStatus.DONE
        assert pacs.counts[busy.sop_instance_uid] == 2
        assert sum(pacs.counts.values()) == 4
    finally:
        pacs.stop()


def test_an_unreachable_peer_is_a_temporary_failure_with_backoff() -> None:
    study = small_study((2,))
    peer = PacsPeer.objects.create(
        name="PACS éteint",
        structure=make_structure(),
        protocol=PeerProtocol.CSTORE,
        host="127.0.0.1",
        port=free_port(),
        ae_title="NOBODY",
    )
    transfer = create(study, peer)
    delay = transfers.transfer_attempt(transfer_id=transfer.pk)
    assert delay is not None
    assert delay > 0
    transfer.refresh_from_db()
    assert transfer.status == OutboxStatus.RETRY
    assert transfer.last_error_code == "connection"
    assert "Connexion au PACS impossible" in transfer.last_error
    assert items_by_status(transfer) == {TransferItemStatus.PENDING: 2}
    attempt = TransferAttempt.objects.get(transfer=transfer)
    assert (attempt.outcome, attempt.code) == ("temporary", "connection")
    # not due yet: a second task does nothing
    assert transfers.transfer_attempt(transfer_id=transfer.pk) is None
    assert TransferAttempt.objects.filter(transfer=transfer).count() == 1


def test_a_rejected_association_is_a_temporary_failure() -> None:
    pacs = make_pacs(require_calling=["SOMEONE"])
    try:
        transfer = create(small_study((1,)), peer_for(pacs))
        assert transfers.transfer_attempt(transfer_id=transfer.pk) is not None
        transfer.refresh_from_db()
        assert (transfer.status, transfer.last_error_code) == (OutboxStatus.RETRY, "rejected")
        assert not pacs.received
    finally:
        pacs.stop()


def test_an_association_aborted_mid_study_resumes_without_resending_accepted_instances() -> None:
    study = small_study((5, 3))
    pacs = make_pacs(abort_after=3)
    try:
        transfer = create(study, peer_for(pacs))
        assert transfers.transfer_attempt(transfer_id=transfer.pk) is not None
        transfer.refresh_from_db()
        assert transfer.status == OutboxStatus.RETRY
        assert transfer.last_error_code == "aborted"
        assert transfer.instances_sent == 3
        assert items_by_status(transfer) == {TransferItemStatus.SENT: 3, TransferItemStatus.PENDING: 5}
        first = dict(TransferItem.objects.filter(status=TransferItemStatus.SENT).values_list("pk", "sent_at"))

        pacs.abort_after = None
        Transfer.objects.filter(pk=transfer.pk).update(next_attempt_at=transfer.created_at)
        assert transfers.transfer_attempt(transfer_id=transfer.pk) is None
        transfer.refresh_from_db()
        assert transfer.status == OutboxStatus.DONE
        assert transfer.instances_sent == 8
        assert transfer.attempts == 2
        # every instance received once: the three accepted ones were not sent again
        assert len(pacs.counts) == 8
        assert all(n == 1 for n in pacs.counts.values())
        for pk, sent_at in first.items():
            assert TransferItem.objects.get(pk=pk).sent_at == sent_at
        rows = list(TransferAttempt.objects.filter(transfer=transfer).order_by("number"))
        assert [(r.outcome, r.instances_sent) for r in rows] == [("temporary", 3), ("success", 5)]
    finally:
        pacs.stop()


def test_an_instance_missing_at_the_check_goes_back_to_pending_and_is_sent_again() -> None:
    study = small_study((3,))
    lost = Instance.objects.filter(series__study=study).order_by("instance_number")[2]
    pacs = make_pacs(hidden={lost.sop_instance_uid})
    try:
        transfer = create(study, peer_for(pacs))
        assert transfers.transfer_attempt(transfer_id=transfer.pk) is not None
        transfer.refresh_from_db()
        assert (transfer.status, transfer.last_error_code) == (OutboxStatus.RETRY, "verification")
        assert transfer.verified_at is None
        assert "1 image(s)" in transfer.last_error
        item = TransferItem.objects.get(instance=lost)
        assert (item.status, item.status_code) == (TransferItemStatus.PENDING, "missing")
        assert transfer.instances_sent == 2

        pacs.hidden.clear()
        Transfer.objects.filter(pk=transfer.pk).update(next_attempt_at=transfer.created_at)
        assert transfers.transfer_attempt(transfer_id=transfer.pk) is None
        transfer.refresh_from_db()
        assert transfer.status == OutboxStatus.DONE
        assert transfer.verified_at is not None
        assert pacs.counts[lost.sop_instance_uid] == 2
        assert sum(pacs.counts.values()) == 4
    finally:
        pacs.stop()


def test_transfers_of_an_act_leave_a_trace_on_the_act(pacs: FakePacs) -> None:
    from tests.telemedecine.factories import ActFactory

    act = cast(Act, ActFactory())
    study = small_study((1,))
    transfer = create(study, peer_for(pacs), act=act)
    transfers.transfer_attempt(transfer_id=transfer.pk)
    events = list(ActEvent.objects.filter(act=act).values_list("event", flat=True))
    assert events[-2:] == ["images_transfer_requested", "images_transfer_done"]


def test_requeue_queues_lost_transfers_and_closes_expired_ones(pacs: FakePacs) -> None:
    class Recorder:
        def __init__(self) -> None:
            self.queued: list[int] = []

        def delay(self, pk: int) -> None:
            self.queued.append(pk)

    from datetime import timedelta

    from django.utils import timezone

    lost = create(small_study((1,)), peer_for(pacs))
    expired = create(small_study((1,)), peer_for(pacs))
    long_ago = timezone.now() - timedelta(hours=1)
    Transfer.objects.filter(pk=lost.pk).update(updated_at=long_ago)
    Transfer.objects.filter(pk=expired.pk).update(updated_at=long_ago, deadline=long_ago)
    recorder = Recorder()
    assert transfers.transfers_requeue(recorder) == 1
    assert recorder.queued == [lost.pk]
    expired.refresh_from_db()
    assert expired.status == OutboxStatus.FAILED
    assert AuditEvent.objects.filter(
        action="telemedecine.transfer.failed", target_id=str(expired.pk)
    ).exists()


def test_progress_summary_counts_items(pacs: FakePacs) -> None:
    transfer = create(small_study((2,)), peer_for(pacs))
    assert transfers.transfer_progress(transfer)["pending"] == 2
    transfers.transfer_attempt(transfer_id=transfer.pk)
    transfer.refresh_from_db()
    progress = transfers.transfer_progress(transfer)
    assert (progress["sent"], progress["pending"], progress["done"]) == (2, 0, True)


# --- Pure pieces: Part 10 splitting, contexts, statuses, STOW-RS responses ------------------------------


def test_split_part10_finds_the_dataset_in_every_layout() -> None:
    data = dicom_samples.sample_bytes("CT_small.dcm")
    part = net.split_part10(data)
    assert part.transfer_syntax_uid == EXPLICIT
    assert bytes(part.dataset)[:4] == b"\x08\x00\x05\x00"  # (0008,0005) first element of the dataset
    without_preamble = net.split_part10(data[128:])
    assert bytes(without_preamble.dataset) == bytes(part.dataset)
    bare = dicom_samples.sample_bytes("no_meta.dcm")
    with pytest.raises(net.Part10Error):
        net.split_part10(bare)
    assert net.split_part10(bare, default_transfer_syntax=IMPLICIT).dataset_offset == 0


def test_contexts_propose_the_original_syntax_and_the_uncompressed_fallback() -> None:
    ct = "1.2.840.10008.5.1.4.1.1.2"
    contexts = net.plan_contexts([(ct, "1.2.840.10008.1.2.4.90"), (ct, EXPLICIT), (ct, EXPLICIT)])
    pairs = [(str(c.abstract_syntax), [str(s) for s in c.transfer_syntax]) for c in contexts]
    assert pairs == [
        (ct, ["1.2.840.10008.1.2.4.90"]),
        (ct, [EXPLICIT]),
        (ct, [EXPLICIT, IMPLICIT]),
        (net.STUDY_ROOT_FIND, [EXPLICIT, IMPLICIT]),
    ]
    with pytest.raises(net.Part10Error):
        net.plan_contexts([(f"1.2.3.{n}", EXPLICIT) for n in range(70)])


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(0x0000, "success"), (0xB000, "warning"), (0xB007, "warning"), (0xA700, "resources"),
     (0xA7FF, "resources"), (0xA900, "failure"), (0xC000, "failure"), (0x0122, "failure")],
)  # fmt: skip
def test_store_statuses(status: int, outcome: str) -> None:
    assert net.status_outcome(status) == outcome


def test_stow_body_is_multipart_related_with_one_dicom_part_per_file() -> None:
    body = b"".join(dicomweb.stow_body([b"AAA", b"BB"], "xyz"))
    assert body == (
        b"--xyz\r\nContent-Type: application/dicom\r\n\r\nAAA\r\n"
        b"--xyz\r\nContent-Type: application/dicom\r\n\r\nBB\r\n--xyz--\r\n"
    )
    assert dicomweb.stow_content_type("xyz") == 'multipart/related; type="application/dicom"; boundary=xyz'


def test_stow_json_response_lists_stored_and_failed_instances() -> None:
    body = json.dumps(
        {
            "00081190": {"vr": "UR", "Value": ["http://pacs/dicom-web/studies/1.2.3"]},
            "00081199": {
                "vr": "SQ",
                "Value": [
                    {
                        "00081150": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]},
                        "00081155": {"vr": "UI", "Value": ["1.2.3.4"]},
                    }
                ],
            },
            "00081198": {
                "vr": "SQ",
                "Value": [
                    {
                        "00081155": {"vr": "UI", "Value": ["1.2.3.5"]},
                        "00081197": {"vr": "US", "Value": [49152]},
                    }
                ],
            },
        }
    ).encode()
    outcome = dicomweb.parse_stow_response("application/dicom+json", body)
    assert outcome.stored == {"1.2.3.4"}
    assert outcome.failed == {"1.2.3.5": "0xC000"}


def test_stow_xml_response_is_read_too() -> None:
    body = b"""<?xml version="1.0" encoding="UTF-8"?>
<NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/models/NativeDICOM">
  <DicomAttribute tag="00081199" vr="SQ" keyword="ReferencedSOPSequence">
    <Item number="1">
      <DicomAttribute tag="00081155" vr="UI"><Value number="1">1.2.3.4</Value></DicomAttribute>
    </Item>
  </DicomAttribute>
  <DicomAttribute tag="00081198" vr="SQ" keyword="FailedSOPSequence">
    <Item number="1">
      <DicomAttribute tag="00081155" vr="UI"><Value number="1">1.2.3.6</Value></DicomAttribute>
      <DicomAttribute tag="00081197" vr="US"><Value number="1">42752</Value></DicomAttribute>
    </Item>
  </DicomAttribute>
</NativeDicomModel>"""
    outcome = dicomweb.parse_stow_response("application/dicom+xml; charset=utf-8", body)
    assert outcome.stored == {"1.2.3.4"}
    assert outcome.failed == {"1.2.3.6": "0xA700"}


def test_an_unreadable_stow_response_is_a_temporary_error() -> None:
    with pytest.raises(dicomweb.DicomWebError) as raised:
        dicomweb.parse_stow_response("application/dicom+json", b"<html>oops")
    assert raised.value.temporary


# --- STOW-RS against a small real DICOMweb server ---------------------------------------------------------


class StowServer:
    """STOW-RS (``POST /dicomweb/studies``) and QIDO-RS (``GET /dicomweb/studies/{uid}/instances``) on
    loopback, with the files kept as posted; ``refuse`` lists SOP Instance UIDs answered as failed,
    ``unavailable`` makes every request a 503."""

    def __init__(self) -> None:
        import http.server

        self.files: dict[str, bytes] = {}
        self.study_of: dict[str, str] = {}
        self.refuse: set[str] = set()
        self.unavailable = False
        self.posts = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send(self, status: int, body: Any = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/dicom+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                if owner.unavailable:
                    return self._send(503)
                owner.posts += 1
                boundary = self.headers["Content-Type"].split("boundary=")[1].strip().strip('"')
                body = self.rfile.read(int(self.headers["Content-Length"]))
                stored, failed = [], []
                for part in body.split(f"--{boundary}".encode())[1:]:
                    if part.startswith(b"--"):
                        break
                    data = part.split(b"\r\n\r\n", 1)[1][:-2]
                    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
                    uid = str(ds.SOPInstanceUID)
                    ref = {"00081155": {"vr": "UI", "Value": [uid]}}
                    if uid in owner.refuse:
                        failed.append({**ref, "00081197": {"vr": "US", "Value": [0xC000]}})
                    else:
                        owner.files[uid] = data
                        owner.study_of[uid] = str(ds.StudyInstanceUID)
                        stored.append(ref)
                answer: dict[str, Any] = {"00081199": {"vr": "SQ", "Value": stored}}
                if failed:
                    answer["00081198"] = {"vr": "SQ", "Value": failed}
                return self._send(202 if failed else 200, answer)

            def do_GET(self) -> None:
                if owner.unavailable:
                    return self._send(503)
                study_uid = self.path.split("/studies/")[1].split("/")[0]
                rows = [
                    {"00080018": {"vr": "UI", "Value": [uid]}}
                    for uid, study in owner.study_of.items()
                    if study == study_uid
                ]
                return self._send(200 if rows else 204, rows if rows else None)

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/dicomweb"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def stow_server() -> Iterator[StowServer]:
    server = StowServer()
    yield server
    server.stop()


def stow_peer(server: StowServer) -> PacsPeer:
    return PacsPeer.objects.create(
        name="PACS DICOMweb",
        structure=make_structure(),
        protocol=PeerProtocol.STOW,
        dicomweb_url=server.url,
        max_parallel=2,
    )


def test_stow_rs_sends_files_as_stored_in_batches_and_checks_with_qido(stow_server: StowServer) -> None:
    study = small_study((12, 3))
    transfer = create(study, stow_peer(stow_server))
    assert transfers.transfer_attempt(transfer_id=transfer.pk) is None
    transfer.refresh_from_db()
    assert transfer.status == OutboxStatus.DONE
    assert transfer.verified_at is not None
    assert stow_server.posts == 2  # batches of 10 instances
    for instance in Instance.objects.filter(series__study=study):
        assert stow_server.files[instance.sop_instance_uid] == blob_read(instance.blob)
    assert set(TransferItem.objects.values_list("status_code", flat=True)) == {"200"}


def test_stow_rs_failed_instances_and_unavailable_server(stow_server: StowServer) -> None:
    study = small_study((3,))
    refused = Instance.objects.filter(series__study=study).order_by("instance_number")[0]
    stow_server.refuse.add(refused.sop_instance_uid)
    transfer = create(study, stow_peer(stow_server))
    assert transfers.transfer_attempt(transfer_id=transfer.pk) is None
    transfer.refresh_from_db()
    assert transfer.status == OutboxStatus.FAILED
    assert TransferItem.objects.get(instance=refused).status_code == "0xC000"
    assert items_by_status(transfer) == {TransferItemStatus.SENT: 2, TransferItemStatus.FAILED: 1}

    stow_server.unavailable = True
    other = create(small_study((2,)), stow_peer(stow_server))
    assert transfers.transfer_attempt(transfer_id=other.pk) is not None
    other.refresh_from_db()
    assert (other.status, other.last_error_code) == (OutboxStatus.RETRY, "http_503")
    assert items_by_status(other) == {TransferItemStatus.PENDING: 2}
