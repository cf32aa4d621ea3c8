"""Reading an untrusted zip archive safely: member names, symlinks, member count, sizes and bombs.

Every check that the archive's headers allow is done before a byte is inflated (names, symlinks,
duplicates, encryption, declared sizes and ratios), and the sizes are bounded again while the data is
actually read, in chunks, because headers may lie:

* names: no absolute path, no ``..`` or ``.`` component, no backslash, no drive letter, no NUL byte;
* no symbolic link (Unix mode bits in the external attributes), no duplicate name (case-insensitive);
* at most ``max_members`` entries; at most ``max_total_bytes`` inflated bytes over the whole archive
  (and ``max_member_bytes`` per member);
* a member whose inflated size grows beyond ``max_ratio`` times its compressed size (after a grace of
  ``ratio_grace_bytes``, small files may compress very well) is a bomb.

The source may be bytes, a path or a seekable binary file: a large archive is never loaded in memory.
Errors are `SafeZipError` with a stable ``code`` (not_zip, too_many_members, path_traversal, symlink,
duplicate_member, encrypted, too_large, bomb, corrupt) and a French ``message``.

Pure code: no Django import.
"""

from __future__ import annotations

import io
import os
import re
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

CHUNK = 64 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")


class SafeZipError(ValueError):
    """The archive is refused. `code` is stable, `message` is French, for the user."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class ZipLimits:
    max_members: int = 1000
    max_total_bytes: int = 500 * 1024 * 1024
    max_member_bytes: int | None = None
    max_ratio: int = 100
    ratio_grace_bytes: int = 1024 * 1024


def check_member_name(name: str) -> None:
    """`SafeZipError` ``path_traversal`` for a name that could escape an extraction directory."""
    bad = (
        not name
        or "\x00" in name
        or "\\" in name
        or name.startswith("/")
        or _DRIVE.match(name) is not None
        or any(part in ("..", ".") for part in name.rstrip("/").split("/"))
    )
    if bad:
        raise SafeZipError(
            "path_traversal",
            f"L'archive contient un chemin interdit (absolu, « .. », « \\ » ou lecteur) : « {name[:200]} ».",
        )


def is_symlink(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16
    return info.create_system == 3 and stat.S_ISLNK(mode)


class SafeZip:
    """An opened, checked archive. Use as a context manager; `members` are the files (directories left
    out), `chunks(info)` streams one member under the limits, `read(info)` returns its bytes."""

    def __init__(self, source: bytes | str | os.PathLike[str] | IO[bytes], limits: ZipLimits) -> None:
        self.limits = limits
        self._remaining = limits.max_total_bytes
        handle: IO[bytes] | str | os.PathLike[str]
        handle = io.BytesIO(bytes(source)) if isinstance(source, bytes | bytearray | memoryview) else source
        try:
            self._zip = zipfile.ZipFile(handle)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
            raise SafeZipError("not_zip", "Le fichier n'est pas une archive zip valide.") from exc
        try:
            self.members = self._check_headers()
        except BaseException:
            self._zip.close()
            raise

    def _check_headers(self) -> list[zipfile.ZipInfo]:
        limits = self.limits
        infos = self._zip.infolist()
        if len(infos) > limits.max_members:
            raise SafeZipError(
                "too_many_members",
                f"L'archive contient trop de fichiers ({len(infos)}, maximum {limits.max_members}).",
            )
        seen: set[str] = set()
        declared = 0
        members = []
        for info in infos:
            check_member_name(info.filename)
            if is_symlink(info):
                raise SafeZipError("symlink", f"L'archive contient un lien symbolique : « {info.filename} ».")
            key = info.filename.rstrip("/").casefold()
            if key in seen:
                raise SafeZipError(
                    "duplicate_member", f"Fichier en double dans l'archive : « {info.filename} »."
                )
            seen.add(key)
            if info.flag_bits & 0x1:
                raise SafeZipError("encrypted", "L'archive est chiffrée : elle ne peut pas être lue.")
            # A first filter on what the headers announce; the real checks happen while reading.
            if info.file_size > limits.ratio_grace_bytes and info.file_size > max(info.compress_size, 1) * (
                limits.max_ratio
            ):
                raise SafeZipError("bomb", "L'archive a un taux de compression anormal (bombe zip).")
            if limits.max_member_bytes is not None and info.file_size > limits.max_member_bytes:
                raise SafeZipError(
                    "too_large", f"Fichier trop volumineux dans l'archive : « {info.filename} »."
                )
            declared += info.file_size
            if not info.is_dir():
                members.append(info)
        if declared > limits.max_total_bytes:
            raise SafeZipError("too_large", "L'archive dépasse la taille décompressée autorisée.")
        return members

    def chunks(self, info: zipfile.ZipInfo) -> Iterator[bytes]:
        """The member's bytes in chunks, stopping as soon as a size or ratio limit is crossed."""
        limits = self.limits
        produced = 0
        allowed_by_ratio = max(info.compress_size, 1) * limits.max_ratio
        try:
            with self._zip.open(info) as stream:
                while chunk := stream.read(CHUNK):
                    produced += len(chunk)
                    if produced > self._remaining or (
                        limits.max_member_bytes is not None and produced > limits.max_member_bytes
                    ):
                        raise SafeZipError("too_large", "L'archive dépasse la taille décompressée autorisée.")
                    if produced > limits.ratio_grace_bytes and produced > allowed_by_ratio:
                        raise SafeZipError("bomb", "L'archive a un taux de compression anormal (bombe zip).")
                    yield chunk
        except SafeZipError:
            raise
        except RuntimeError as exc:  # encrypted member
            raise SafeZipError("encrypted", "L'archive est chiffrée : elle ne peut pas être lue.") from exc
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError) as exc:
            raise SafeZipError("corrupt", f"L'archive est corrompue (« {info.filename[:200]} »).") from exc
        finally:
            self._remaining -= produced

    def read(self, info: zipfile.ZipInfo) -> bytes:
        return b"".join(self.chunks(info))

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> SafeZip:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_safe_zip(
    source: bytes | str | os.PathLike[str] | IO[bytes], limits: ZipLimits | None = None
) -> SafeZip:
    """Open and check an untrusted archive (`SafeZipError` when it is refused)."""
    return SafeZip(source, limits or ZipLimits())


def is_zip(head: bytes) -> bool:
    """True when ``head`` (the first bytes of a file) starts like a zip archive."""
    return head[:4] in (b"PK\x03\x04", b"PK\x05\x06")
