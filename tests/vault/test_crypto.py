"""Vector-style tests of the segmented AES-GCM format (pure code)."""

import os

import pytest

from enrs.vault import crypto

KEY = bytes(range(32))
OTHER = bytes(32)


@pytest.mark.parametrize("size", [0, 1, 100, 4096, 4096 * 3, 4096 * 3 + 1])
def test_round_trip_across_segment_boundaries(size: int) -> None:
    data = os.urandom(size)
    sealed = b"".join(crypto.encrypt_stream([data], key=KEY, key_id="k1", context=b"ctx", segment_size=4096))
    assert crypto.read_key_id(sealed) == "k1"
    if size >= 16:  # a shorter random plaintext may appear in any ciphertext by chance
        assert data not in sealed
    assert crypto.decrypt(sealed, keys={"k1": KEY}, context=b"ctx") == data


def test_streaming_in_odd_chunks_gives_the_same_plaintext() -> None:
    data = os.urandom(10_000)
    chunks = [data[i : i + 333] for i in range(0, len(data), 333)]
    sealed = b"".join(crypto.encrypt_stream(chunks, key=KEY, key_id="k1", segment_size=1024))
    pieces = [sealed[i : i + 77] for i in range(0, len(sealed), 77)]
    assert b"".join(crypto.decrypt_stream(pieces, keys={"k1": KEY})) == data


def test_nonces_differ_between_two_encryptions_of_the_same_content() -> None:
    a = crypto.encrypt(b"same", key=KEY, key_id="k1")
    b = crypto.encrypt(b"same", key=KEY, key_id="k1")
    assert a != b


def _sealed(size: int = 3000) -> bytes:
    return b"".join(
        crypto.encrypt_stream([b"x" * size], key=KEY, key_id="k1", context=b"blob-1", segment_size=1024)
    )


def test_wrong_key_unknown_key_and_wrong_context_are_refused() -> None:
    sealed = _sealed()
    with pytest.raises(crypto.VaultError, match="altéré"):
        crypto.decrypt(sealed, keys={"k1": OTHER}, context=b"blob-1")
    with pytest.raises(crypto.VaultError, match="inconnue"):
        crypto.decrypt(sealed, keys={"k2": KEY}, context=b"blob-1")
    with pytest.raises(crypto.VaultError, match="altéré"):
        crypto.decrypt(sealed, keys={"k1": KEY}, context=b"blob-2")


def test_flipped_bit_truncation_and_dropped_last_segment_are_refused() -> None:
    sealed = bytearray(_sealed())
    sealed[-5] ^= 1
    with pytest.raises(crypto.VaultError):
        crypto.decrypt(bytes(sealed), keys={"k1": KEY}, context=b"blob-1")
    intact = _sealed()
    header = 6 + 1 + 2 + 7 + 4
    # Drop the last segment exactly: the previous one was not sealed as "last".
    segment = 1024 + crypto.TAG_SIZE
    with pytest.raises(crypto.VaultError):
        crypto.decrypt(intact[: header + 2 * segment], keys={"k1": KEY}, context=b"blob-1")
    with pytest.raises(crypto.VaultError, match="en-tête"):
        crypto.decrypt(b"not encrypted", keys={"k1": KEY})
