"""Forwarding to a real Orthanc (Debian package) through the real Celery worker (queue ``dicom``).

* A study built from pydicom's bundled test files (several SOP classes and transfer syntaxes, compressed
  ones included) and a generated multi-instance series lands in Orthanc: same SOP Instance UIDs, same
  pixel data (SHA-256), same element values; the transfer is verified by C-FIND.
* Orthanc killed mid-transfer: the transfer goes to retry; Orthanc restarted: the worker's next attempt
  sends only the instances still pending (Orthanc's own log of received instances shows that the accepted
  ones were not sent again) and the verification passes.
* The same study forwarded by DICOMweb STOW-RS (Orthanc's DICOMweb plugin), checked by QIDO-RS.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from typing import Any

import pydicom
import pytest
from django.conf import settings
from django.db import transaction

from enrs.celery import app as celery_app
from enrs.outbox.models import OutboxStatus
from telemedecine.models import (
    Instance,
    PacsPeer,
    PeerProtocol,
    Study,
    Transfer,
    TransferAttempt,
    TransferItem,
    TransferItemStatus,
)
from telemedecine.services import studies, transfers
from tests.celery_worker import running_worker
from tests.helpers import wait_until
from tests.telemedecine import dicom_samples
from tests.telemedecine.factories import make_structure, make_user
from tests.telemedecine.orthanc import DICOMWEB_PLUGIN, OrthancServer, running_orthanc

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# Bundled files used as bases: CT and MR (explicit VR LE), MR implicit VR, big endian, JPEG 2000, RLE,
# JPEG-LS, and a multi-frame RT Dose.
BASES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "rtdose.dcm",
]


@pytest.fixture
def real_broker() -> Iterator[None]:
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = previous


@pytest.fixture
def orthanc() -> Iterator[OrthancServer]:
    with running_orthanc(ae_title="EXPERTPACS", modalities={"enrs": ("ENRS", "127.0.0.1", 104)}) as server:
        yield server


def build_study(*, generated: int = 6, rows: int | None = None) -> list[bytes]:
    study_uid = dicom_samples.new_uid()
    files = [
        dicom_samples.make_instance(
            study_uid=study_uid,
            series_uid=dicom_samples.new_uid(),
            series_number=number,
            base=base,
            modality=None,
        )
        for number, base in enumerate(BASES, 1)
    ]
    files += dicom_samples.make_series(
        generated,
        study_uid=study_uid,
        series_number=len(BASES) + 1,
        rows=rows or 64,
        columns=rows or 64,
    )
    return files


def ingest(files: list[bytes]) -> Study:
    site = make_structure()
    instance = None
    for data in files:
        instance = studies.study_ingest_file(data_or_path=data, source="upload", site=site)
    assert instance is not None
    return studies.study_finalize(study=instance.series.study)


def cstore_peer(server: OrthancServer) -> PacsPeer:
    return PacsPeer.objects.create(
        name="PACS du CHU (Orthanc)",
        structure=make_structure(),
        protocol=PeerProtocol.CSTORE,
        host="127.0.0.1",
        port=server.dicom_port,
        ae_title=server.ae_title,
        calling_ae_title="ENRS",
        max_parallel=2,
    )


def forward(study: Study, peer: PacsPeer) -> Transfer:
    with transaction.atomic():  # queued on commit, as from a view
        return transfers.transfer_create(study=study, peer=peer, requested_by=make_user())


def wait_status(transfer: Transfer, status: str, timeout: float) -> Transfer:
    def reached() -> bool:
        transfer.refresh_from_db()
        return transfer.status == status

    wait_until(reached, timeout=timeout, what=f"transfer {status}")
    return transfer


def comparable(data: bytes) -> dict[str, Any]:
    """Element values by tag, without group lengths and trailing padding (PACS drop them when storing)."""
    ds = pydicom.dcmread(io.BytesIO(data))
    values: dict[str, Any] = {}
    for element in ds:
        tag = element.tag
        if tag.element == 0 or tag == 0xFFFCFFFC or tag.group == 0x7FE0:
            continue
        values[str(tag)] = element.value if element.VR != "SQ" else repr(element.value)
    return values


def pixel_sha256(data: bytes) -> str:
    ds = pydicom.dcmread(io.BytesIO(data))
    return hashlib.sha256(ds.PixelData).hexdigest()


def assert_orthanc_holds(server: OrthancServer, originals: dict[str, bytes]) -> None:
    ids = server.instance_ids()
    assert len(ids) == len(originals)
    for orthanc_id in ids:
        stored = server.instance_file(orthanc_id)
        uid = dicom_samples.sop_uid_of(stored)
        assert uid in originals
        assert pixel_sha256(stored) == pixel_sha256(originals[uid])
        assert comparable(stored) == comparable(originals[uid])


def test_a_study_is_forwarded_to_orthanc_bit_identical_and_verified(
    orthanc: OrthancServer, real_broker: None
) -> None:
    files = build_study(generated=6)
    study = ingest(files)
    originals = {dicom_samples.sop_uid_of(data): data for data in files}
    transfer_syntaxes = set(
        Instance.objects.filter(series__study=study).values_list("transfer_syntax_uid", flat=True)
    )
    assert len(transfer_syntaxes) >= 5  # several encodings, compressed ones included
    peer = cstore_peer(orthanc)
    with running_worker(queues="dicom", database_name=settings.DATABASES["default"]["NAME"]):
        transfer = forward(study, peer)
        wait_status(transfer, OutboxStatus.DONE, timeout=120)
    assert transfer.verified_at is not None
    assert transfer.attempts == 1
    assert transfer.instances_sent == transfer.instances_total == len(files)
    assert set(TransferItem.objects.filter(transfer=transfer).values_list("status", flat=True)) == {"sent"}
    assert_orthanc_holds(orthanc, originals)
    assert sorted(orthanc.received()) == sorted(originals)  # each sent once
    # Orthanc kept each transfer syntax as sent (nothing transcoded on the way)
    for orthanc_id in orthanc.instance_ids():
        meta = pydicom.dcmread(
            io.BytesIO(orthanc.instance_file(orthanc_id)), stop_before_pixels=True
        ).file_meta
        instance = Instance.objects.get(sop_instance_uid=orthanc.sop_instance_uid(orthanc_id))
        assert str(meta.TransferSyntaxUID) == instance.transfer_syntax_uid


def test_orthanc_killed_mid_transfer_then_restarted_resumes_without_resending(
    orthanc: OrthancServer, real_broker: None
) -> None:
    total = 70
    files = dicom_samples.make_series(total, rows=512, columns=512)
    study = ingest(files)
    peer = cstore_peer(orthanc)
    with running_worker(queues="dicom", database_name=settings.DATABASES["default"]["NAME"]):
        transfer = forward(study, peer)
        wait_until(lambda: len(orthanc.received()) >= 8, timeout=120, what="first instances in Orthanc")
        orthanc.kill()
        wait_status(transfer, OutboxStatus.RETRY, timeout=90)
        assert transfer.last_error_code in {"aborted", "connection"}
        sent_first = set(
            TransferItem.objects.filter(transfer=transfer, status=TransferItemStatus.SENT).values_list(
                "sent_sop_instance_uid", flat=True
            )
        )
        pending = set(
            TransferItem.objects.filter(transfer=transfer, status=TransferItemStatus.PENDING).values_list(
                "sent_sop_instance_uid", flat=True
            )
        )
        assert len(sent_first) >= 1
        assert pending
        assert len(sent_first) + len(pending) == total
        received_before = len(orthanc.received())

        orthanc.start()
        wait_status(transfer, OutboxStatus.DONE, timeout=180)

    received_after = orthanc.received()[received_before:]
    # the resumed attempt sent exactly the instances still pending, none of the accepted ones
    assert set(received_after) == pending
    assert not set(received_after) & sent_first
    assert orthanc.instance_count() == total
    assert transfer.verified_at is not None
    assert transfer.instances_sent == total
    rows = list(TransferAttempt.objects.filter(transfer=transfer).order_by("number"))
    # the interrupted attempt, possibly an attempt that found Orthanc still starting, then the resume
    assert rows[0].outcome == "temporary"
    assert rows[0].instances_sent == len(sent_first)
    assert [row.outcome for row in rows[1:-1]] == ["temporary"] * (len(rows) - 2)
    assert rows[-1].outcome == "success"
    assert sum(row.instances_sent for row in rows[1:]) == len(pending)
    assert set(TransferItem.objects.filter(transfer=transfer).values_list("status", flat=True)) == {"sent"}


@pytest.mark.skipif(not DICOMWEB_PLUGIN.exists(), reason="orthanc-dicomweb is not installed")
def test_a_study_is_forwarded_by_stow_rs_and_checked_by_qido_rs(orthanc: OrthancServer) -> None:
    files = build_study(generated=4)
    study = ingest(files)
    originals = {dicom_samples.sop_uid_of(data): data for data in files}
    peer = PacsPeer.objects.create(
        name="PACS DICOMweb",
        structure=make_structure(),
        protocol=PeerProtocol.STOW,
        dicomweb_url=orthanc.dicomweb_url,
        max_parallel=2,
    )
    transfer = forward(study, peer)  # eager task: runs on commit in this process
    transfer.refresh_from_db()
    assert transfer.status == OutboxStatus.DONE, transfer.last_error
    assert transfer.verified_at is not None
    assert transfer.instances_sent == len(files)
    assert_orthanc_holds(orthanc, originals)
    # STOW-RS keeps the whole file as posted
    for orthanc_id in orthanc.instance_ids():
        stored = orthanc.instance_file(orthanc_id)
        assert stored == originals[dicom_samples.sop_uid_of(stored)]
