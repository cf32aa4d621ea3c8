"""The C-STORE SCP: ``manage.py dicom_scp`` as a real process, fed by dcmtk's ``storescu``.

Studies pushed by an allowed AE title are filed under its site, bit-identical (the dataset bytes stored
are the bytes sent) and finalized when the association is released; any other AE title is rejected at
association time and nothing is stored. The handlers are also exercised in-process (refused files).
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from django.conf import settings
from pydicom.dataset import Dataset
from pynetdicom import AE

from enrs.audit.models import AuditEvent
from enrs.vault.services import blob_read
from telemedecine.dicom import net
from telemedecine.dicom.parse import read_dicom
from telemedecine.models import AllowedSender, Instance, Study, StudySource, StudyStatus
from telemedecine.services.scp import StoreSCP
from tests.helpers import PYTHON, REPO, free_port, port_open, wait_until
from tests.telemedecine import dicom_samples
from tests.telemedecine.factories import make_structure
from tests.telemedecine.orthanc import ensure_dcmtk

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

AE_TITLE = "ENRSTEST"


def _database_url() -> str:
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def scp_process(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    port = free_port()
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="enrs.settings.test",
        DATABASE_URL=_database_url(),
        TEST_REDIS_URL=settings.CELERY_BROKER_URL,
    )
    log = open(tmp_path / "scp.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            PYTHON,
            "manage.py",
            "dicom_scp",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--ae-title",
            AE_TITLE,
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        wait_until(lambda: process.poll() is None and port_open(port), timeout=60, what="dicom_scp")
        yield port, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def storescu(port: int, calling: str, files: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ensure_dcmtk(), "-aet", calling, "-aec", AE_TITLE, "127.0.0.1", str(port), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def without_trailing_padding(data: bytes) -> bytes:
    """dcmtk drops Data Set Trailing Padding (FFFC,FFFC) when it sends: the files are written without it so
    that what storescu puts on the wire is the file's dataset, byte for byte."""
    ds = pydicom.dcmread(io.BytesIO(data))
    if 0xFFFCFFFC in ds:
        del ds[0xFFFCFFFC]
    return dicom_samples.to_bytes(ds)


def dataset_bytes(data: bytes) -> bytes:
    return bytes(net.split_part10(data).dataset)


def test_an_allowed_sender_files_a_study_under_its_site_and_others_are_rejected(
    scp_process: tuple[int, subprocess.Popen[str]], tmp_path: Path
) -> None:
    port, process = scp_process
    site = make_structure()
    AllowedSender.objects.create(ae_title="MODALITE1", structure=site)
    AllowedSender.objects.create(ae_title="ANCIEN", structure=make_structure(), is_active=False)
    files = [(name, without_trailing_padding(data)) for name, data in dicom_samples.make_study((3, 2))]
    paths = []
    for name, data in files:
        path = tmp_path / name.replace("/", "_")
        path.write_bytes(data)
        paths.append(path)

    result = storescu(port, "MODALITE1", paths)
    assert result.returncode == 0, result.stderr

    wait_until(
        lambda: Study.objects.filter(status=StudyStatus.AVAILABLE).exists(),
        timeout=30,
        what="finalized study",
    )
    study = Study.objects.get()
    assert study.site_id == site.pk
    assert study.source == StudySource.SCP
    assert study.sending_ae_title == "MODALITE1"
    assert (study.series_count, study.instance_count) == (2, 5)
    assert study.study_instance_uid == dicom_samples.study_uid_of(files[0][1])
    sent = {dicom_samples.sop_uid_of(data): data for _, data in files}
    for instance in Instance.objects.filter(series__study=study).select_related("blob"):
        stored = blob_read(instance.blob)
        # a valid Part 10 file (preamble, DICM, File Meta) whose dataset is the bytes sent
        assert stored[128:132] == b"DICM"
        assert read_dicom(stored).sop_instance_uid == instance.sop_instance_uid
        assert dataset_bytes(stored) == dataset_bytes(sent[instance.sop_instance_uid])
    assert AuditEvent.objects.filter(action="telemedecine.study.receive", target_id=str(study.pk)).exists()

    for calling in ("INTRUS", "ANCIEN"):
        refused = storescu(port, calling, paths[:1])
        assert refused.returncode != 0
        assert "Association Rejected" in refused.stderr or "rejected" in refused.stderr.lower()
    assert Study.objects.count() == 1
    assert Instance.objects.count() == 5

    # graceful stop on SIGTERM
    os.killpg(process.pid, signal.SIGTERM)
    assert process.wait(timeout=20) == 0


@pytest.fixture
def scp_in_thread() -> Iterator[int]:
    port = free_port()
    stop = threading.Event()
    ready = threading.Event()
    scp = StoreSCP(ae_title=AE_TITLE)
    thread = threading.Thread(
        target=scp.serve,
        kwargs={"host": "127.0.0.1", "port": port, "stop": stop, "ready": ready.set, "grace": 5},
        daemon=True,
    )
    thread.start()
    assert ready.wait(10)
    yield port
    stop.set()
    thread.join(15)


def _associate(port: int, calling: str) -> Any:
    ae = AE(ae_title=calling)
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2", [net.EXPLICIT_LE])
    ae.add_requested_context(net.VERIFICATION)
    return ae, ae.associate("127.0.0.1", port, ae_title=AE_TITLE)


def test_a_file_the_index_refuses_is_answered_cannot_understand(scp_in_thread: int) -> None:
    site = make_structure()
    AllowedSender.objects.create(ae_title="MODALITE2", structure=site)
    good = pydicom.dcmread(io.BytesIO(dicom_samples.make_series(1)[0]))
    bad = Dataset()
    bad.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    bad.SOPInstanceUID = dicom_samples.new_uid()  # no Study/Series Instance UID
    bad.file_meta = pydicom.dataset.FileMetaDataset()
    bad.file_meta.TransferSyntaxUID = pydicom.uid.UID(net.EXPLICIT_LE)
    ae, assoc = _associate(scp_in_thread, "MODALITE2")
    try:
        assert assoc.is_established
        assert assoc.send_c_echo().Status == 0x0000
        assert assoc.send_c_store(bad).Status == 0xC000
        assert assoc.send_c_store(good).Status == 0x0000
        assoc.release()
    finally:
        ae.shutdown()
    wait_until(lambda: Study.objects.filter(status=StudyStatus.AVAILABLE).exists(), timeout=30, what="study")
    study = Study.objects.get()
    assert (study.site_id, study.instance_count) == (site.pk, 1)


def test_the_allow_list_is_read_at_each_association(scp_in_thread: int) -> None:
    ae, assoc = _associate(scp_in_thread, "NOUVEAU")
    try:
        assert assoc.is_rejected
    finally:
        ae.shutdown()
    AllowedSender.objects.create(ae_title="NOUVEAU", structure=make_structure())
    ae, assoc = _associate(scp_in_thread, "NOUVEAU")
    try:
        assert assoc.is_established
        assoc.release()
    finally:
        ae.shutdown()
