"""What a browser upload holds: a zip of DICOM files, a folder sent as a bundle, or one DICOM file.

* **zip**: read with `enrs.core.safezip` (names, symlinks, member count, total inflated size, bombs,
  bounded chunks);
* **bundle**: the upload page sends a folder as one stream, without compressing it (the browser cannot
  zip hundreds of MB without reading them into memory): ``ENRSDCM1`` then, for each file, its name length
  (4 bytes, big endian), its name (UTF-8), its size (8 bytes, big endian) and its bytes. Names are checked
  like zip names (they are only shown, never used as paths);
* anything else is one file.

Members that operating systems add to folders and archives (``__MACOSX/``, ``._*``, ``.DS_Store``,
``Thumbs.db``, ``desktop.ini``) are left out; everything else must be DICOM (the caller checks).

Pure code: no Django import.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from enrs.core.safezip import SafeZip, SafeZipError, ZipLimits, check_member_name, is_zip

BUNDLE_MAGIC = b"ENRSDCM1"
MAX_NAME_BYTES = 1024
_NAME_LEN = struct.Struct(">I")
_SIZE = struct.Struct(">Q")
_READ = 1024 * 1024

ArchiveError = SafeZipError

_IGNORED_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})


def is_ignored(name: str) -> bool:
    """True for operating-system litter in folders and archives (not DICOM, not refused)."""
    parts = name.split("/")
    base = parts[-1].casefold()
    return parts[0] == "__MACOSX" or base.startswith("._") or base in _IGNORED_NAMES


@dataclass(frozen=True)
class UploadLimits:
    max_files: int
    max_total_bytes: int
    max_ratio: int = 100


def bundle_header(name: str, size: int) -> bytes:
    """The header that precedes one file in a bundle (the upload page writes the same in JavaScript)."""
    encoded = name.encode()
    return _NAME_LEN.pack(len(encoded)) + encoded + _SIZE.pack(size)


def build_bundle(files: list[tuple[str, bytes]]) -> bytes:
    """A whole bundle in memory (tests, small folders)."""
    return BUNDLE_MAGIC + b"".join(bundle_header(name, len(data)) + data for name, data in files)


class UploadArchive:
    """The files of an uploaded payload (a path on disk), in order, with their names.

    ``kind`` is ``zip``, ``bundle`` or ``file``; `names` lists the files that count (litter left out);
    `files()` yields ``(name, bytes)`` one file at a time. Limits are checked when opening (count,
    announced sizes) and again while reading."""

    def __init__(self, path: str | os.PathLike[str], limits: UploadLimits, *, display_name: str = "") -> None:
        self.path = path
        self.limits = limits
        self.display_name = display_name or os.path.basename(os.fspath(path))
        with open(path, "rb") as handle:
            head = handle.read(len(BUNDLE_MAGIC))
        self._zip: SafeZip | None = None
        self._entries: list[tuple[str, int, int]] = []  # bundle: (name, offset, size)
        if is_zip(head):
            self.kind = "zip"
            zip_limits = ZipLimits(
                max_members=limits.max_files,
                max_total_bytes=limits.max_total_bytes,
                max_ratio=limits.max_ratio,
            )
            self._zip = SafeZip(path, zip_limits)
            self.names = [info.filename for info in self._zip.members if not is_ignored(info.filename)]
        elif head == BUNDLE_MAGIC:
            self.kind = "bundle"
            self._entries = self._scan_bundle()
            self.names = [name for name, _, _ in self._entries if not is_ignored(name)]
        else:
            self.kind = "file"
            self.names = [self.display_name]
        if len(self.names) > limits.max_files:
            raise ArchiveError(
                "too_many_members",
                f"Le dépôt contient trop de fichiers ({len(self.names)}, maximum {limits.max_files}).",
            )
        if not self.names:
            raise ArchiveError("empty", "Le dépôt ne contient aucun fichier.")

    def _scan_bundle(self) -> list[tuple[str, int, int]]:
        entries: list[tuple[str, int, int]] = []
        seen: set[str] = set()
        total = 0
        file_size = os.path.getsize(self.path)
        with open(self.path, "rb") as handle:
            position = len(BUNDLE_MAGIC)
            handle.seek(position)
            while position < file_size:
                if len(entries) >= self.limits.max_files * 2 + 100:  # litter counted too, but bounded
                    raise ArchiveError("too_many_members", "Le dépôt contient trop de fichiers.")
                raw = handle.read(_NAME_LEN.size)
                if len(raw) != _NAME_LEN.size:
                    raise ArchiveError("corrupt", "Le dépôt est tronqué ou mal formé.")
                (name_len,) = _NAME_LEN.unpack(raw)
                if name_len == 0 or name_len > MAX_NAME_BYTES:
                    raise ArchiveError("corrupt", "Le dépôt est mal formé (nom de fichier invalide).")
                raw_name = handle.read(name_len)
                raw_size = handle.read(_SIZE.size)
                if len(raw_name) != name_len or len(raw_size) != _SIZE.size:
                    raise ArchiveError("corrupt", "Le dépôt est tronqué ou mal formé.")
                try:
                    name = raw_name.decode()
                except UnicodeDecodeError as exc:
                    raise ArchiveError(
                        "corrupt", "Le dépôt est mal formé (nom de fichier illisible)."
                    ) from exc
                check_member_name(name)
                if name.casefold() in seen:
                    raise ArchiveError(
                        "duplicate_member", f"Fichier en double dans le dépôt : « {name[:200]} »."
                    )
                seen.add(name.casefold())
                (size,) = _SIZE.unpack(raw_size)
                offset = position + _NAME_LEN.size + name_len + _SIZE.size
                if offset + size > file_size:
                    raise ArchiveError("corrupt", f"Le dépôt est tronqué (« {name[:200]} »).")
                total += size
                if total > self.limits.max_total_bytes:
                    raise ArchiveError("too_large", "Le dépôt dépasse la taille autorisée.")
                entries.append((name, offset, size))
                position = offset + size
                handle.seek(position)
        return entries

    def files(self) -> Iterator[tuple[str, bytes]]:
        """Each counted file with its bytes, in order."""
        if self._zip is not None:
            for info in self._zip.members:
                if not is_ignored(info.filename):
                    yield info.filename, self._zip.read(info)
        elif self.kind == "bundle":
            with open(self.path, "rb") as handle:
                for name, offset, size in self._entries:
                    if is_ignored(name):
                        continue
                    handle.seek(offset)
                    yield name, _read_exactly(handle, size)
        else:
            if os.path.getsize(self.path) > self.limits.max_total_bytes:
                raise ArchiveError("too_large", "Le dépôt dépasse la taille autorisée.")
            with open(self.path, "rb") as handle:
                yield self.display_name, handle.read()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def __enter__(self) -> UploadArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_exactly(handle: IO[bytes], size: int) -> bytes:
    parts = []
    left = size
    while left:
        chunk = handle.read(min(left, _READ))
        if not chunk:
            raise ArchiveError("corrupt", "Le dépôt est tronqué.")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def open_upload(
    path: str | os.PathLike[str], limits: UploadLimits, *, display_name: str = ""
) -> UploadArchive:
    """Open an uploaded payload (`ArchiveError` with a French message when it is refused)."""
    return UploadArchive(path, limits, display_name=display_name)
