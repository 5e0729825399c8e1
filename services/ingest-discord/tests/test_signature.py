"""Ed25519 over timestamp + raw body, as Discord signs interactions."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from proxbus_ingest_discord.errors import SignatureError
from proxbus_ingest_discord.signature import SignatureVerifier, load_public_key

KEY = Ed25519PrivateKey.generate()
VERIFIER = SignatureVerifier(load_public_key(KEY.public_key().public_bytes_raw().hex()))
NOW = 1_790_000_000


def sign(body: bytes, ts: int = NOW, key: Ed25519PrivateKey = KEY) -> tuple[str, str]:
    return key.sign(str(ts).encode() + body).hex(), str(ts)


@given(st.binary(max_size=2048))
def test_any_body_signed_with_the_key_verifies(body: bytes) -> None:
    VERIFIER.verify(*sign(body), body, now=NOW)


@given(st.binary(min_size=1, max_size=256), st.integers(0, 255))
def test_a_changed_byte_fails(body: bytes, flip: int) -> None:
    signature, ts = sign(body)
    changed = bytes([body[0] ^ (flip or 1)]) + body[1:]
    with pytest.raises(SignatureError) as err:
        VERIFIER.verify(signature, ts, changed, now=NOW)
    assert err.value.reason == "invalid"


@pytest.mark.parametrize(
    ("signature", "timestamp", "reason"),
    [
        (None, str(NOW), "missing"),
        ("ab" * 64, None, "missing"),
        ("", str(NOW), "missing"),
        ("ab" * 63, str(NOW), "malformed"),
        ("zz" * 64, str(NOW), "malformed"),
        ("ab" * 64, "12:00", "malformed"),
        ("ab" * 64, str(NOW), "invalid"),
    ],
)
def test_missing_or_malformed_headers_are_refused(
    signature: str | None, timestamp: str | None, reason: str
) -> None:
    with pytest.raises(SignatureError) as err:
        VERIFIER.verify(signature, timestamp, b"{}", now=NOW)
    assert err.value.reason == reason


def test_another_applications_key_is_refused() -> None:
    other = Ed25519PrivateKey.generate()
    with pytest.raises(SignatureError):
        VERIFIER.verify(*sign(b"{}", key=other), b"{}", now=NOW)


@pytest.mark.parametrize(
    ("age", "ok"), [(0, True), (299, True), (300, True), (301, False), (-301, False)]
)
def test_timestamps_beyond_five_minutes_are_replays(age: int, ok: bool) -> None:
    signature, ts = sign(b"{}", ts=NOW - age)
    if ok:
        VERIFIER.verify(signature, ts, b"{}", now=NOW)
        return
    with pytest.raises(SignatureError) as err:
        VERIFIER.verify(signature, ts, b"{}", now=NOW)
    assert err.value.reason == "stale"


@pytest.mark.parametrize("key", ["", "abc", "g" * 64, "ab" * 33])
def test_a_public_key_must_be_64_hex_digits(key: str) -> None:
    with pytest.raises(ValueError, match="64 hex digits"):
        load_public_key(key)
