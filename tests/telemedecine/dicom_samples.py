"""Test DICOM studies built from pydicom's bundled test files (no download) and generated series.

API (also used by the "dicomnet" tests and benchmark):

* ``sample_bytes(name="CT_small.dcm") -> bytes`` — one bundled file as shipped (CT_small.dcm, MR_small.dcm…);
* ``new_uid() -> str`` — a fresh UID (``2.25.<uuid>``);
* ``make_instance(*, study_uid, series_uid, sop_uid=None, instance_number=1, series_number=1,
  base="CT_small.dcm", patient_id="DCM-TEST-1", patient_name="TEST^PATIENT", birth_date="19790328",
  modality=None, rows=None, columns=None, extra=None) -> bytes`` — a Part 10 file from ``base`` with new
  UIDs and identity; ``rows``/``columns`` generate 16-bit pixel data of that size (bigger files for
  benchmarks), ``extra`` sets more attributes by keyword;
* ``make_series(count, *, study_uid=None, series_uid=None, series_number=1, **instance_kwargs)
  -> list[bytes]``;
* ``make_study(series_sizes=(3, 2), *, study_uid=None, **instance_kwargs) -> list[tuple[str, bytes]]`` —
  ``(path in a folder, bytes)`` for every instance, series after series (``SE001/IM0001.dcm``…); the
  series use CT_small then MR_small as base in turn unless ``base`` is given;
* ``to_bytes(ds)`` (Part 10, File Meta regenerated), ``raw_bytes(ds)`` (written as it is, invalid values
  allowed);
* ``zip_of(files, *, compression=zipfile.ZIP_DEFLATED) -> bytes``;
* ``study_uid_of(data) -> str``, ``sop_uid_of(data) -> str``.
"""

from __future__ import annotations

import io
import uuid
import warnings
import zipfile
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import UID

BASES = ("CT_small.dcm", "MR_small.dcm")


@lru_cache(maxsize=8)
def sample_bytes(name: str = "CT_small.dcm") -> bytes:
    path = get_testdata_file(name, download=False)
    if path is None:
        raise FileNotFoundError(f"pydicom test file {name} is not bundled")
    with open(str(path), "rb") as handle:
        return handle.read()


def new_uid() -> str:
    return f"2.25.{uuid.uuid4().int}"


def _dataset(base: str) -> Dataset:
    return pydicom.dcmread(io.BytesIO(sample_bytes(base)))


def to_bytes(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def raw_bytes(ds: Dataset) -> bytes:
    """``ds`` written as it is (File Meta not regenerated: tests of inconsistent or invalid files)."""
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(out, enforce_file_format=False)
    return out.getvalue()


def make_instance(
    *,
    study_uid: str,
    series_uid: str,
    sop_uid: str | None = None,
    instance_number: int = 1,
    series_number: int = 1,
    base: str = "CT_small.dcm",
    patient_id: str = "DCM-TEST-1",
    patient_name: str = "TEST^PATIENT",
    birth_date: str = "19790328",
    modality: str | None = None,
    rows: int | None = None,
    columns: int | None = None,
    extra: dict[str, Any] | None = None,
) -> bytes:
    ds = _dataset(base)
    sop_uid = sop_uid or new_uid()
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SOPInstanceUID = sop_uid
    ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    ds.InstanceNumber = instance_number
    ds.SeriesNumber = series_number
    ds.PatientID = patient_id
    ds.PatientName = patient_name
    ds.PatientBirthDate = birth_date
    if modality:
        ds.Modality = modality
    if rows or columns:
        height, width = rows or int(ds.Rows), columns or int(ds.Columns)
        ramp = (np.arange(height * width, dtype=np.uint32) * 7 + instance_number * 131) % 4096
        ds.Rows, ds.Columns = height, width
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        ds.SamplesPerPixel, ds.PixelRepresentation = 1, 0
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.PixelData = ramp.astype(np.uint16).reshape(height, width).tobytes()
    for keyword, value in (extra or {}).items():
        setattr(ds, keyword, value)
    return to_bytes(ds)


def make_series(
    count: int,
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    series_number: int = 1,
    **instance_kwargs: Any,
) -> list[bytes]:
    study_uid = study_uid or new_uid()
    series_uid = series_uid or new_uid()
    return [
        make_instance(
            study_uid=study_uid,
            series_uid=series_uid,
            instance_number=number,
            series_number=series_number,
            **instance_kwargs,
        )
        for number in range(1, count + 1)
    ]


def make_study(
    series_sizes: Iterable[int] = (3, 2), *, study_uid: str | None = None, **instance_kwargs: Any
) -> list[tuple[str, bytes]]:
    study_uid = study_uid or new_uid()
    files: list[tuple[str, bytes]] = []
    for index, size in enumerate(series_sizes):
        kwargs = dict(instance_kwargs)
        kwargs.setdefault("base", BASES[index % len(BASES)])
        series = make_series(size, study_uid=study_uid, series_number=index + 1, **kwargs)
        files += [(f"SE{index + 1:03d}/IM{number:04d}.dcm", data) for number, data in enumerate(series, 1)]
    return files


def zip_of(files: Iterable[tuple[str, bytes]], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in files:
            archive.writestr(name, data)
    return buffer.getvalue()


def study_uid_of(data: bytes) -> str:
    return str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).StudyInstanceUID)


def sop_uid_of(data: bytes) -> str:
    return str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID)
