"""Authenticated encryption of stored content: AES-256-GCM in segments, with the key id in the header.

Format (all integers big-endian)::

    b"ENRSV1" | key-id length (1 byte) | key id (ASCII) | nonce prefix (7 bytes) | segment size (4 bytes)
    then segments: AES-GCM(key, nonce = prefix ‖ counter (4 bytes) ‖ last flag (1 byte), chunk, aad)

Every segment is authenticated with the header (as associated data, together with the caller's
``context``), its position and whether it is the last one, so that segments cannot be reordered, dropped,
truncated or moved to another blob (the "STREAM" construction). Large content (DICOM studies) is
encrypted and decrypted chunk by chunk in bounded memory.

Pure code: no Django import. Keys are 32 random bytes, named by a short id so that they can rotate: the
id travels with each blob, and old keys stay readable until everything is re-encrypted.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator, Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"ENRSV1"
SEGMENT_SIZE = 1024 * 1024
TAG_SIZE = 16
_PREFIX_SIZE = 7


class VaultError(Exception):
    """Stored content cannot be decrypted (unknown key, altered or truncated data)."""


def _header(key_id: str, prefix: bytes, segment_size: int) -> bytes:
    raw_id = key_id.encode("ascii")
    if not 0 < len(raw_id) < 256:
        raise ValueError("key id must be 1 to 255 ASCII characters")
    return MAGIC + bytes([len(raw_id)]) + raw_id + prefix + struct.pack(">I", segment_size)


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + struct.pack(">I", counter) + (b"\x01" if last else b"\x00")


def _rechunk(chunks: Iterable[bytes], size: int) -> Iterator[tuple[bytes, bool]]:
    """Fixed-size pieces of the concatenated ``chunks``, each with whether it is the last one."""
    buffer = bytearray()
    pending: bytes | None = None
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            if pending is not None:
                yield pending, False
            pending = bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        if pending is not None:
            yield pending, False
        yield bytes(buffer), True
    elif pending is not None:
        yield pending, True
    else:
        yield b"", True


def encrypt_stream(
    chunks: Iterable[bytes],
    *,
    key: bytes,
    key_id: str,
    context: bytes = b"",
    segment_size: int = SEGMENT_SIZE,
) -> Iterator[bytes]:
    """The encrypted form of the concatenated ``chunks``, piece by piece."""
    prefix = os.urandom(_PREFIX_SIZE)
    header = _header(key_id, prefix, segment_size)
    aead = AESGCM(key)
    yield header
    for counter, (piece, last) in enumerate(_rechunk(chunks, segment_size)):
        yield aead.encrypt(_nonce(prefix, counter, last), piece, header + context)


def encrypt(data: bytes, *, key: bytes, key_id: str, context: bytes = b"") -> bytes:
    return b"".join(encrypt_stream([data], key=key, key_id=key_id, context=context))


def read_key_id(head: bytes) -> str:
    """The key id of encrypted content, from its first bytes (at least 262)."""
    if not head.startswith(MAGIC) or len(head) < len(MAGIC) + 1:
        raise VaultError("contenu chiffré illisible (en-tête absent)")
    length = head[len(MAGIC)]
    raw = head[len(MAGIC) + 1 : len(MAGIC) + 1 + length]
    if len(raw) != length:
        raise VaultError("contenu chiffré tronqué (en-tête)")
    return raw.decode("ascii")


class _Reader:
    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._iter = iter(chunks)
        self._buffer = bytearray()

    def read(self, n: int) -> bytes:
        while len(self._buffer) < n:
            try:
                self._buffer += next(self._iter)
            except StopIteration:
                break
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out


def decrypt_stream(
    chunks: Iterable[bytes], *, keys: Mapping[str, bytes], context: bytes = b""
) -> Iterator[bytes]:
    """The plaintext of encrypted content, segment by segment; `VaultError` if anything was altered."""
    reader = _Reader(chunks)
    head = reader.read(len(MAGIC) + 1)
    if head[: len(MAGIC)] != MAGIC or len(head) != len(MAGIC) + 1:
        raise VaultError("contenu chiffré illisible (en-tête absent)")
    raw_id = reader.read(head[-1])
    prefix = reader.read(_PREFIX_SIZE)
    size_bytes = reader.read(4)
    if len(raw_id) != head[-1] or len(prefix) != _PREFIX_SIZE or len(size_bytes) != 4:
        raise VaultError("contenu chiffré tronqué (en-tête)")
    key_id = raw_id.decode("ascii", errors="replace")
    key = keys.get(key_id)
    if key is None:
        raise VaultError(f"clé de chiffrement « {key_id} » inconnue")
    header = head + raw_id + prefix + size_bytes
    (segment_size,) = struct.unpack(">I", size_bytes)
    aead = AESGCM(key)
    counter = 0
    segment = reader.read(segment_size + TAG_SIZE)
    while True:
        following = reader.read(segment_size + TAG_SIZE) if len(segment) == segment_size + TAG_SIZE else b""
        last = not following
        try:
            yield aead.decrypt(_nonce(prefix, counter, last), segment, header + context)
        except InvalidTag as exc:
            raise VaultError("contenu chiffré altéré ou tronqué") from exc
        if last:
            return
        segment = following
        counter += 1


def decrypt(data: bytes, *, keys: Mapping[str, bytes], context: bytes = b"") -> bytes:
    return b"".join(decrypt_stream([data], keys=keys, context=context))
