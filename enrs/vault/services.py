"""Putting content into the vault and reading it back (AES-256-GCM, see `enrs.vault.crypto`).

Keys come from settings: ``ENRS_VAULT_KEYS`` ("id:base64-32-bytes,id2:…") and ``ENRS_VAULT_ACTIVE_KEY``
(the id new blobs are written with). Outside production, without keys, one key derived from
``SECRET_KEY`` ("demo") is used. Re-encrypting everything under the active key: ``manage.py vault_reencrypt``.
"""

from __future__ import annotations

import base64
import hashlib
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import IO

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from . import crypto
from .models import Blob

READ_CHUNK = 1024 * 1024


@lru_cache(maxsize=4)
def _parse_keys(spec: str, active: str, secret_key: str) -> tuple[dict[str, bytes], str]:
    keys: dict[str, bytes] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key_id, _, encoded = item.partition(":")
        try:
            key = base64.b64decode(encoded, validate=True)
        except ValueError as exc:
            raise ImproperlyConfigured(f"ENRS_VAULT_KEYS : la clé « {key_id} » n'est pas en base64.") from exc
        if len(key) != 32 or not key_id:
            raise ImproperlyConfigured(f"ENRS_VAULT_KEYS : la clé « {key_id} » doit faire 32 octets.")
        keys[key_id] = key
    if not keys:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"enrs-vault", info=b"demo").derive(
            secret_key.encode()
        )
        keys["demo"] = derived
        active = active or "demo"
    if not active:
        active = next(iter(keys))
    if active not in keys:
        raise ImproperlyConfigured(f"ENRS_VAULT_ACTIVE_KEY « {active} » absente de ENRS_VAULT_KEYS.")
    return keys, active


def vault_keys() -> tuple[dict[str, bytes], str]:
    """All readable keys by id, and the id of the key new blobs use."""
    return _parse_keys(
        getattr(settings, "ENRS_VAULT_KEYS", ""),
        getattr(settings, "ENRS_VAULT_ACTIVE_KEY", ""),
        settings.SECRET_KEY,
    )


def _context(blob_id: uuid.UUID) -> bytes:
    # The ciphertext is bound to its row: a file copied under another blob's name does not decrypt.
    return b"enrs-blob:" + str(blob_id).encode()


class _Digest:
    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = chunks
        self.sha256 = hashlib.sha256()
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.sha256.update(chunk)
            self.size += len(chunk)
            yield chunk


def _chunks_of(content: bytes | IO[bytes] | Iterable[bytes]) -> Iterable[bytes]:
    if isinstance(content, bytes | bytearray | memoryview):
        return [bytes(content)]
    read = getattr(content, "read", None)
    if read is not None:
        return iter(lambda: read(READ_CHUNK), b"")
    return content


def blob_put(
    content: bytes | IO[bytes] | Iterable[bytes],
    *,
    purpose: str,
    content_type: str = "",
    inline_max: int | None = None,
) -> Blob:
    """Encrypt ``content`` (bytes, a binary file, or an iterable of chunks) under the active key and store
    it: inline in the row when it fits in ``ENRS_VAULT_INLINE_MAX`` bytes, otherwise as a file."""
    keys, active = vault_keys()
    if inline_max is None:
        inline_max = int(getattr(settings, "ENRS_VAULT_INLINE_MAX", 256 * 1024))
    blob_id = uuid.uuid4()
    digest = _Digest(_chunks_of(content))
    encrypted = crypto.encrypt_stream(digest, key=keys[active], key_id=active, context=_context(blob_id))
    blob = Blob(id=blob_id, purpose=purpose[:50], content_type=content_type[:150], key_id=active)
    with tempfile.SpooledTemporaryFile(max_size=inline_max + 1024) as spool:
        for piece in encrypted:
            spool.write(piece)
        blob.size = digest.size
        blob.sha256 = digest.sha256.hexdigest()
        if digest.size <= inline_max:
            spool.seek(0)
            blob.ciphertext = spool.read()
        else:
            spool.seek(0)
            now = timezone.now()
            blob.storage_name = default_storage.save(f"vault/{now:%Y/%m}/{blob_id}", File(spool))
    # A file written for a transaction that later rolls back stays behind, encrypted and unreferenced
    # (Django has no rollback hook); it holds nothing readable without its row.
    blob.save(force_insert=True)
    return blob


def _encrypted_chunks(blob: Blob) -> Iterator[bytes]:
    if blob.ciphertext is not None:
        yield bytes(blob.ciphertext)
        return
    with default_storage.open(blob.storage_name, "rb") as handle:
        yield from iter(lambda: handle.read(READ_CHUNK), b"")


def blob_chunks(blob: Blob) -> Iterator[bytes]:
    """The plaintext, piece by piece (bounded memory for large blobs); `crypto.VaultError` if altered."""
    keys, _ = vault_keys()
    yield from crypto.decrypt_stream(_encrypted_chunks(blob), keys=keys, context=_context(blob.id))


def blob_read(blob: Blob) -> bytes:
    return b"".join(blob_chunks(blob))


def blob_delete(blob: Blob) -> None:
    name = blob.storage_name
    blob.delete()
    if name:
        transaction.on_commit(lambda: default_storage.delete(name))


def blob_reencrypt(blob: Blob) -> bool:
    """Re-encrypt one blob under the active key; False when it already uses it."""
    keys, active = vault_keys()
    if blob.key_id == active:
        return False
    with tempfile.TemporaryFile() as plain:
        for chunk in blob_chunks(blob):
            plain.write(chunk)
        plain.seek(0)
        encrypted = crypto.encrypt_stream(
            iter(lambda: plain.read(READ_CHUNK), b""),
            key=keys[active],
            key_id=active,
            context=_context(blob.id),
        )
        old_name = blob.storage_name
        if blob.ciphertext is not None:
            blob.ciphertext = b"".join(encrypted)
        else:
            with tempfile.TemporaryFile() as spool:
                for piece in encrypted:
                    spool.write(piece)
                spool.seek(0)
                blob.storage_name = default_storage.save(
                    f"vault/{timezone.now():%Y/%m}/{blob.id}", File(spool)
                )
    blob.key_id = active
    blob.reencrypted_at = timezone.now()
    blob.save(update_fields=["ciphertext", "storage_name", "key_id", "reencrypted_at"])
    if old_name and old_name != blob.storage_name:
        transaction.on_commit(lambda: default_storage.delete(old_name))
    return True
