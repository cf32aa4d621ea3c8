"""The vault stores content encrypted (in the row or as a file), reads it back, re-encrypts on rotation."""

import base64
import io
import os

import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db import connection

from enrs.vault import crypto
from enrs.vault.models import Blob
from enrs.vault.services import blob_chunks, blob_put, blob_read, vault_keys

pytestmark = pytest.mark.django_db

K1 = "k1:" + base64.b64encode(b"1" * 32).decode()
K2 = "k2:" + base64.b64encode(b"2" * 32).decode()


@pytest.fixture
def keys(settings):
    settings.ENRS_VAULT_KEYS = K1
    settings.ENRS_VAULT_ACTIVE_KEY = "k1"
    return settings


def test_small_content_is_stored_encrypted_in_the_row(keys) -> None:
    secret = b"Compte rendu : fracture du radius gauche"
    blob = blob_put(secret, purpose="test.body", content_type="text/plain")
    blob.refresh_from_db()
    assert blob.storage_name == ""
    assert blob.key_id == "k1"
    assert blob.size == len(secret)
    assert blob.ciphertext is not None
    assert secret not in bytes(blob.ciphertext)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM vault_blob WHERE position(%s in ciphertext) > 0", [secret])
        assert cursor.fetchone()[0] == 0
    assert blob_read(blob) == secret


def test_large_content_goes_to_storage_encrypted_and_streams_back(keys) -> None:
    keys.ENRS_VAULT_INLINE_MAX = 1024
    data = os.urandom(3 * 1024 * 1024 + 17)
    blob = blob_put(io.BytesIO(data), purpose="test.file")
    assert blob.ciphertext is None
    assert blob.storage_name.startswith("vault/")
    with default_storage.open(blob.storage_name, "rb") as handle:
        stored = handle.read()
    assert data[:4096] not in stored
    assert crypto.read_key_id(stored) == "k1"
    chunks = list(blob_chunks(blob))
    assert len(chunks) > 1  # streamed segment by segment
    assert b"".join(chunks) == data
    default_storage.delete(blob.storage_name)


def test_rotation_reencrypts_everything_under_the_new_key(keys) -> None:
    keys.ENRS_VAULT_INLINE_MAX = 10
    small = blob_put(b"petit", purpose="test")
    large = blob_put(b"grand contenu" * 10, purpose="test")
    keys.ENRS_VAULT_KEYS = f"{K1},{K2}"
    keys.ENRS_VAULT_ACTIVE_KEY = "k2"
    call_command("vault_reencrypt", stdout=io.StringIO())
    assert set(Blob.objects.values_list("key_id", flat=True)) == {"k2"}
    keys.ENRS_VAULT_KEYS = K2  # the old key is gone: everything must still read
    small.refresh_from_db()
    large.refresh_from_db()
    assert blob_read(small) == b"petit"
    assert blob_read(large) == b"grand contenu" * 10
    default_storage.delete(large.storage_name)


def test_a_file_moved_to_another_blob_does_not_decrypt(keys) -> None:
    a = blob_put(b"patient A", purpose="test")
    b = blob_put(b"patient B", purpose="test")
    b.ciphertext = a.ciphertext
    with pytest.raises(crypto.VaultError):
        blob_read(b)


def test_demo_key_is_derived_when_none_is_configured(settings) -> None:
    settings.ENRS_VAULT_KEYS = ""
    settings.ENRS_VAULT_ACTIVE_KEY = ""
    keys, active = vault_keys()
    assert active == "demo"
    assert len(keys["demo"]) == 32
