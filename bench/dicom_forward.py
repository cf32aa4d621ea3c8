"""Forwarding throughput of a large study to Orthanc: ENRS (Celery worker, C-STORE) next to dcmtk storescu.

    .venv/bin/python bench/dicom_forward.py [--instances 512] [--size 512] [--keep-db]

1. Creates a dedicated database (createdb enrs_bench_dicom), migrates it; the vault files and the
   generated study live in a temporary folder deleted at the end (nothing in the repository).
2. Generates a CT-like study: ``--instances`` slices of ``--size``² 16-bit pixels with noise
   (512 x 512 x 2 bytes ≈ 0.5 MB each: 512 slices ≈ 256 MB), ingests it (`study_ingest_file`:
   parsed, encrypted in the vault) and finalizes it.
3. Starts Orthanc (Debian package, generated config on free ports) and a Celery worker on queue
   ``dicom``; forwards the study (`transfer_create`, queued on commit) and measures from the commit to
   the transfer being done — C-FIND verification included — and the attempt itself.
4. Empties Orthanc and sends the same files with ``storescu`` (one association, as dcmtk does).
5. Prints MB/s and instances/s for both and the ratio ENRS / storescu (target ≥ 0.8).

Needs PostgreSQL and Redis (``--redis``, default db 14); Orthanc and dcmtk are installed with apt-get if
absent.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "enrs_bench_dicom"


def _pg_tool(*command: str) -> None:
    """createdb / dropdb (PostgreSQL client tools on PATH; arguments are ours, not user input)."""
    subprocess.run(command, check=True)  # noqa: S603


def _setup_django(database_url: str, redis_url: str, workdir: Path) -> dict[str, str]:
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "LOG_LEVEL": "WARNING",
        "MEDIA_ROOT": str(workdir / "media"),
        "DJANGO_SETTINGS_MODULE": "enrs.settings.base",  # DEBUG off: no query log in memory
    }
    os.environ.update(env)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    return env


def _generate(folder: Path, *, count: int, size: int) -> list[Path]:
    """A CT-like series: noisy 16-bit slices, one study, one patient."""
    import numpy as np
    import pydicom
    from pydicom.data import get_testdata_file

    base = pydicom.dcmread(str(get_testdata_file("CT_small.dcm", download=False)))
    rng = np.random.default_rng(20261124)
    study_uid, series_uid = f"2.25.{uuid.uuid4().int}", f"2.25.{uuid.uuid4().int}"
    yy, xx = np.mgrid[0:size, 0:size]
    disc = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size * 0.4) ** 2).astype(np.int32) * 1000
    paths = []
    for number in range(1, count + 1):
        ds = base.copy()
        ds.file_meta = pydicom.dataset.FileMetaDataset(base.file_meta)
        sop_uid = f"2.25.{uuid.uuid4().int}"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study_uid, series_uid, sop_uid
        ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.UID(sop_uid)
        ds.PatientID, ds.PatientName, ds.PatientBirthDate = "BENCH-1", "BENCH^PATIENT", "19700101"
        ds.SeriesNumber, ds.InstanceNumber = 1, number
        ds.Rows = ds.Columns = size
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        noise = rng.integers(0, 200, size=(size, size), dtype=np.int32)
        ds.PixelData = (disc + noise + number).clip(0, 4095).astype(np.uint16).tobytes()
        if 0xFFFCFFFC in ds:
            del ds[0xFFFCFFFC]
        path = folder / f"IM{number:05d}.dcm"
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        path.write_bytes(out.getvalue())
        paths.append(path)
    return paths


def _worker(env: dict[str, str], workdir: Path) -> subprocess.Popen[bytes]:
    name = f"bench-{uuid.uuid4().hex[:6]}@localhost"
    log = open(workdir / "worker.log", "wb")  # noqa: SIM115 - kept by the process
    process = subprocess.Popen(  # noqa: S603 - our own command line
        [str(ROOT / ".venv/bin/celery"), "-A", "enrs", "worker", "-Q", "dicom", "-n", name, "--pool", "solo",
         "--without-gossip", "--without-mingle", "--loglevel", "WARNING"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    from enrs.celery import app

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(name in reply for reply in app.control.ping(destination=[name], timeout=0.5) or []):
            return process
    raise SystemExit(f"worker not ready:\n{(workdir / 'worker.log').read_text()[-2000:]}")


def _line(label: str, size: int, count: int, seconds: float) -> tuple[float, float]:
    mb_s = size / 1e6 / seconds
    inst_s = count / seconds
    print(f"  {label:<44} {seconds:7.2f} s  {mb_s:7.1f} MB/s  {inst_s:7.1f} instances/s")
    return mb_s, inst_s


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instances", type=int, default=512)
    parser.add_argument("--size", type=int, default=512, help="rows = columns of each slice")
    parser.add_argument("--max-parallel", type=int, default=2, help="PacsPeer.max_parallel")
    parser.add_argument("--host", default=os.environ.get("PGHOST", "127.0.0.1"))
    parser.add_argument("--user", default=os.environ.get("PGUSER", "postgres"))
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()

    pg = ("-h", args.host, "-U", args.user)
    database_url = f"postgres://{args.user}@{args.host}:5432/{DB_NAME}"
    workdir = Path(tempfile.mkdtemp(prefix="enrs-bench-dicom-"))
    worker: subprocess.Popen[bytes] | None = None
    orthanc: Any = None
    _pg_tool("dropdb", *pg, "--if-exists", DB_NAME)
    _pg_tool("createdb", *pg, DB_NAME)
    try:
        env = _setup_django(database_url, args.redis, workdir)
        from django.core.management import call_command
        from django.db import transaction

        call_command("migrate", verbosity=0)
        from enrs.accounts.models import User
        from enrs.outbox.models import OutboxStatus
        from telemedecine.models import PacsPeer, PeerProtocol, Transfer, TransferAttempt
        from telemedecine.services import studies, transfers
        from tests.annuaire.factories import StructureFactory
        from tests.telemedecine.orthanc import OrthancServer, ensure_dcmtk

        storescu = ensure_dcmtk()
        files_dir = workdir / "study"
        files_dir.mkdir()
        began = time.perf_counter()
        paths = _generate(files_dir, count=args.instances, size=args.size)
        total = sum(p.stat().st_size for p in paths)
        print(
            f"Study: {len(paths)} instances, {total / 1e6:.1f} MB "
            f"(generated in {time.perf_counter() - began:.1f} s); CPU count {os.cpu_count()}"
        )

        site: Any = StructureFactory(name="CH émetteur (bench)")
        expert_site: Any = StructureFactory(name="CHU expert (bench)")
        user = User.objects.create(username=f"bench-{uuid.uuid4().hex[:6]}")
        began = time.perf_counter()
        instance = None
        for path in paths:
            instance = studies.study_ingest_file(data_or_path=path, source="upload", site=site)
        assert instance is not None
        study = studies.study_finalize(study=instance.series.study)
        _line("ingest (parse + encrypt into the vault)", total, len(paths), time.perf_counter() - began)

        orthanc = OrthancServer(ae_title="BENCHPACS", modalities={"enrs": ("ENRS", "127.0.0.1", 104)})
        orthanc.start()
        worker = _worker(env, workdir)
        peer = PacsPeer.objects.create(
            name="Orthanc (bench)",
            structure=expert_site,
            protocol=PeerProtocol.CSTORE,
            host="127.0.0.1",
            port=orthanc.dicom_port,
            ae_title=orthanc.ae_title,
            calling_ae_title="ENRS",
            max_parallel=args.max_parallel,
        )
        print(f"Forward to Orthanc {orthanc.get('/system').json()['Version']} (loopback):")
        began = time.perf_counter()
        with transaction.atomic():
            transfer = transfers.transfer_create(study=study, peer=peer, requested_by=user)
        while True:
            transfer.refresh_from_db()
            if transfer.status in (OutboxStatus.DONE, OutboxStatus.FAILED):
                break
            if time.perf_counter() - began > 1800:
                raise SystemExit("transfer not done after 30 minutes")
            time.sleep(0.1)
        enrs_seconds = time.perf_counter() - began
        if transfer.status != OutboxStatus.DONE:
            raise SystemExit(f"transfer failed: {transfer.last_error}")
        attempt = TransferAttempt.objects.get(transfer=transfer)
        assert orthanc.instance_count() == len(paths)
        enrs = _line("ENRS: commit → done (worker, C-FIND check)", total, len(paths), enrs_seconds)
        _line(
            "ENRS: the attempt alone",
            total,
            len(paths),
            (attempt.finished_at - attempt.started_at).total_seconds(),
        )
        assert Transfer.objects.get(pk=transfer.pk).verified_at is not None

        orthanc.clear()
        assert orthanc.instance_count() == 0
        began = time.perf_counter()
        result = subprocess.run(  # noqa: S603 - our own command line
            [storescu, "-aet", "ENRS", "-aec", orthanc.ae_title, "127.0.0.1", str(orthanc.dicom_port),
             *map(str, paths)],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        dcmtk_seconds = time.perf_counter() - began
        if result.returncode != 0:
            raise SystemExit(f"storescu failed: {result.stderr[-2000:]}")
        assert orthanc.instance_count() == len(paths)
        dcmtk = _line("dcmtk storescu (one association)", total, len(paths), dcmtk_seconds)
        print(
            f"Ratio ENRS / storescu: {enrs[0] / dcmtk[0]:.2f} (MB/s), {enrs[1] / dcmtk[1]:.2f} (instances/s)"
        )
    finally:
        if worker is not None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
        if orthanc is not None:
            orthanc.cleanup()
        from django.db import connections

        connections.close_all()
        shutil.rmtree(workdir, ignore_errors=True)
        if not args.keep_db:
            _pg_tool("dropdb", *pg, "--if-exists", DB_NAME)


if __name__ == "__main__":
    main()
