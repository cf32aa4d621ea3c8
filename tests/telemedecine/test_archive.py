"""Untrusted uploads: zip safety (enrs.core.safezip) and the upload container (telemedecine.dicom.archive)."""

import io
import stat
import zipfile
from pathlib import Path

import pytest

from enrs.core.safezip import SafeZipError, ZipLimits, open_safe_zip
from telemedecine.dicom.archive import BUNDLE_MAGIC, UploadLimits, build_bundle, bundle_header, open_upload
from tests.telemedecine.dicom_samples import make_study, zip_of

LIMITS = UploadLimits(max_files=50, max_total_bytes=20 * 1024 * 1024)


def _write(tmp_path: Path, data: bytes, name: str = "depot.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_a_zip_of_a_study_gives_every_file_with_its_bytes(tmp_path: Path) -> None:
    files = make_study((3, 2))
    with open_upload(_write(tmp_path, zip_of(files)), LIMITS) as payload:
        assert payload.kind == "zip"
        assert payload.names == [name for name, _ in files]
        assert list(payload.files()) == files


def test_operating_system_litter_is_left_out_but_other_files_count(tmp_path: Path) -> None:
    files = make_study((1,))
    litter = [("__MACOSX/SE001/._IM0001.dcm", b"x"), ("SE001/.DS_Store", b"y"), ("Thumbs.db", b"z")]
    with open_upload(
        _write(tmp_path, zip_of(files + litter + [("LISEZMOI.txt", b"notes")])), LIMITS
    ) as payload:
        assert payload.names == ["SE001/IM0001.dcm", "LISEZMOI.txt"]


@pytest.mark.parametrize(
    "name",
    ["../../etc/cron.d/evil", "/etc/passwd", "SE001/../../x.dcm", "C:/Windows/x.dcm", "SE001\\..\\x", "./x"],
)
def test_a_path_traversal_or_absolute_name_is_refused(tmp_path: Path, name: str) -> None:
    data = zip_of([("SE001/IM0001.dcm", b"ok"), (name, b"evil")])
    with pytest.raises(SafeZipError) as caught:
        open_upload(_write(tmp_path, data), LIMITS)
    assert caught.value.code == "path_traversal"
    assert "chemin interdit" in caught.value.message


def test_a_symbolic_link_is_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("SE001/IM0001.dcm", b"ok")
        link = zipfile.ZipInfo("SE001/IM0002.dcm")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/shadow")
    with pytest.raises(SafeZipError) as caught:
        open_upload(_write(tmp_path, buffer.getvalue()), LIMITS)
    assert caught.value.code == "symlink"
    assert caught.value.message == "L'archive contient un lien symbolique : « SE001/IM0002.dcm »."


def test_a_zip_bomb_built_by_streaming_is_refused_before_inflating_it(tmp_path: Path) -> None:
    path = tmp_path / "bombe.zip"
    zeros = b"\x00" * (1024 * 1024)
    with (
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("SE001/IM0001.dcm", "w", force_zip64=True) as member,
    ):
        for _ in range(64):  # 64 MiB of zeros, written piece by piece: the archive is ~64 KiB
            member.write(zeros)
    assert path.stat().st_size < 200 * 1024
    with pytest.raises(SafeZipError) as caught:
        open_upload(path, UploadLimits(max_files=10, max_total_bytes=1024**3))
    assert caught.value.code == "bomb"
    assert "bombe zip" in caught.value.message


def test_the_ratio_is_checked_again_while_reading(tmp_path: Path) -> None:
    # Headers within the limit (the grace lets it through), but the reading limit catches the ratio.
    data = zip_of([("SE001/IM0001.dcm", b"\x00" * (3 * 1024 * 1024))])
    limits = ZipLimits(
        max_members=5, max_total_bytes=10 * 1024**2, max_ratio=100, ratio_grace_bytes=4 * 1024**2
    )
    with open_safe_zip(data, limits) as archive:
        archive.limits = ZipLimits(
            max_members=5, max_total_bytes=10 * 1024**2, max_ratio=100, ratio_grace_bytes=1024
        )
        with pytest.raises(SafeZipError) as caught:
            archive.read(archive.members[0])
    assert caught.value.code == "bomb"


def test_a_header_that_lies_about_the_size_cannot_inflate_more(tmp_path: Path) -> None:
    real = b"\x00" * (2 * 1024 * 1024)
    data = bytearray(zip_of([("IM0001.dcm", real)]))
    # Announce 10 bytes instead of 2 MiB in the local header and the central directory.
    local = data.find(b"PK\x03\x04")
    central = data.find(b"PK\x01\x02")
    data[local + 22 : local + 26] = (10).to_bytes(4, "little")
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")
    with (
        open_safe_zip(bytes(data), ZipLimits(max_members=5, max_total_bytes=1024**2)) as archive,
        pytest.raises(SafeZipError) as caught,
    ):
        archive.read(archive.members[0])
    assert caught.value.code == "corrupt"


def test_the_total_inflated_size_is_bounded(tmp_path: Path) -> None:
    files = [(f"IM{i:04d}.dcm", bytes(range(256)) * 4096) for i in range(4)]  # 1 MiB each
    with pytest.raises(SafeZipError) as caught:
        open_upload(_write(tmp_path, zip_of(files)), UploadLimits(max_files=10, max_total_bytes=3 * 1024**2))
    assert caught.value.code == "too_large"


def test_too_many_files_are_refused(tmp_path: Path) -> None:
    files = [(f"IM{i:04d}.dcm", b"x") for i in range(11)]
    with pytest.raises(SafeZipError) as caught:
        open_upload(_write(tmp_path, zip_of(files)), UploadLimits(max_files=10, max_total_bytes=1024**2))
    assert caught.value.code == "too_many_members"
    assert "maximum 10" in caught.value.message


def test_duplicate_names_and_encrypted_members_are_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("IM1.dcm", b"a")
        archive.writestr("im1.DCM", b"b")
    with pytest.raises(SafeZipError) as caught:
        open_safe_zip(buffer.getvalue())
    assert caught.value.code == "duplicate_member"

    data = bytearray(zip_of([("IM1.dcm", b"a")], compression=zipfile.ZIP_STORED))
    central = data.find(b"PK\x01\x02")
    data[central + 8] |= 0x01  # "encrypted" flag in the central directory
    with pytest.raises(SafeZipError) as caught:
        open_safe_zip(bytes(data))
    assert caught.value.code == "encrypted"


def test_garbage_that_starts_like_a_zip_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SafeZipError) as caught:
        open_upload(_write(tmp_path, b"PK\x03\x04" + b"\x00" * 100), LIMITS)
    assert caught.value.code == "not_zip"


def test_a_folder_bundle_round_trips(tmp_path: Path) -> None:
    files = make_study((2, 1))
    with open_upload(_write(tmp_path, build_bundle(files)), LIMITS) as payload:
        assert payload.kind == "bundle"
        assert payload.names == [name for name, _ in files]
        assert list(payload.files()) == files


def test_a_truncated_or_hostile_bundle_is_refused(tmp_path: Path) -> None:
    bundle = build_bundle(make_study((2,)))
    with pytest.raises(SafeZipError) as caught:
        open_upload(_write(tmp_path, bundle[:-5]), LIMITS)
    assert caught.value.code == "corrupt"

    evil = BUNDLE_MAGIC + bundle_header("../../evil.dcm", 3) + b"abc"
    with pytest.raises(SafeZipError) as caught:
        open_upload(_write(tmp_path, evil, "evil.bin"), LIMITS)
    assert caught.value.code == "path_traversal"

    huge = BUNDLE_MAGIC + bundle_header("IM1.dcm", 2**40) + b"abc"
    with pytest.raises(SafeZipError) as caught:
        open_upload(_write(tmp_path, huge, "huge.bin"), LIMITS)
    assert caught.value.code == "corrupt"


def test_one_file_is_a_payload_of_one(tmp_path: Path) -> None:
    _name, data = make_study((1,))[0]
    with open_upload(_write(tmp_path, data), LIMITS, display_name="IM0001.dcm") as payload:
        assert payload.kind == "file"
        assert list(payload.files()) == [("IM0001.dcm", data)]
