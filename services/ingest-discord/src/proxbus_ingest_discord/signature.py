"""Discord's request signature: Ed25519 over ``X-Signature-Timestamp`` + raw body.

Discord signs every interaction it POSTs to the endpoint with the application's key; the
endpoint must answer 401 to anything that does not verify (Discord probes this with bad
signatures and removes endpoints that accept them). The timestamp is Unix seconds; one
older than ``max_age`` is refused too, so a captured request cannot be replayed later.
"""

from __future__ import annotations

import re
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .errors import SignatureError

PUBLIC_KEY_RE = re.compile(r"^[0-9a-fA-F]{64}$")
_SIGNATURE_RE = re.compile(r"^[0-9a-fA-F]{128}$")
_TIMESTAMP_RE = re.compile(r"^[0-9]{1,12}$")


def load_public_key(hex_key: str) -> Ed25519PublicKey:
    """The application's public key from its 64 hex digits (Developer Portal, General Information).

    Raises:
        ValueError: not 32 bytes of hex.
    """
    if not PUBLIC_KEY_RE.match(hex_key.strip()):
        raise ValueError("DISCORD_PUBLIC_KEY must be 64 hex digits (the application's public key)")
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(hex_key.strip()))


class SignatureVerifier:
    """Verifies one request's headers and raw body against the application's public key."""

    def __init__(self, public_key: Ed25519PublicKey, *, max_age: float = 300.0) -> None:
        self._key = public_key
        self.max_age = max_age

    def verify(
        self, signature: str | None, timestamp: str | None, body: bytes, now: float | None = None
    ) -> None:
        """Return if the request is Discord's and recent.

        Raises:
            SignatureError: header missing or malformed, signature invalid, or timestamp
                further than ``max_age`` seconds from ``now`` (reason in ``reason``).
        """
        if not signature or not timestamp:
            raise SignatureError("missing", "missing X-Signature-Ed25519 or X-Signature-Timestamp")
        if not _SIGNATURE_RE.match(signature) or not _TIMESTAMP_RE.match(timestamp):
            raise SignatureError("malformed", "malformed signature headers")
        try:
            self._key.verify(bytes.fromhex(signature), timestamp.encode() + body)
        except InvalidSignature:
            raise SignatureError("invalid", "invalid request signature") from None
        # Checked after the signature so that an unsigned request learns nothing more.
        age = (time.time() if now is None else now) - int(timestamp)
        if abs(age) > self.max_age:
            raise SignatureError("stale", f"request timestamp is {age:.0f}s away from now")
