"""Signed notification buttons: the ``custom_id`` the dispatcher writes, ingest-discord checks.

A discord receiver with ``buttons: true`` puts "Silence 1h" / "Acknowledge" on its
notifications; whoever holds the notifications' webhook URL can post look-alike buttons, so
each id carries proof that the dispatcher made it, with a secret both services share
(``DISCORD_BUTTON_SECRET``):

- ``pbx:silence:<fingerprint>:<seconds>:<expires>:<tag>``
- ``pbx:ack:<fingerprint>:<expires>:<tag>``

``expires`` is a Unix time in seconds (decimal); ``tag`` is HMAC-SHA256, keyed with the secret,
over everything before ``:<tag>``, cut to 12 bytes (96 bits) and written in unpadded base64url
(16 characters). A guess can only be tried by an operator's click, so 96 bits is ample; a
whole digest would not fit Discord's 100-character ``custom_id`` (a 32-hex fingerprint makes
an id of 77 characters). Ids of earlier versions (no ``expires``/``tag``) are never honoured.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

BUTTON_PREFIX = "pbx"
# How long a notification's buttons work after it was sent.
BUTTON_LIFETIME = 24 * 3600
CUSTOM_ID_LIMIT = 100  # Discord's limit
TAG_BYTES = 12
TAG_CHARS = 16  # base64url of TAG_BYTES, unpadded
# A secret shorter than this is refused by both services' settings.
MIN_SECRET_LENGTH = 32


def checked_secret(value: object) -> str | None:
    """``DISCORD_BUTTON_SECRET`` as both services' settings read it: None when unset or empty.

    Raises:
        ValueError: shorter than ``MIN_SECRET_LENGTH`` (the value itself is never echoed).
    """
    if value is None or value == "":
        return None
    reveal = getattr(value, "get_secret_value", None)  # a pydantic SecretStr
    text = str(reveal() if callable(reveal) else value)
    if len(text) < MIN_SECRET_LENGTH:
        raise ValueError(
            f"must be at least {MIN_SECRET_LENGTH} characters (e.g. openssl rand -hex 32)"
        )
    return text


def button_tag(secret: bytes, signed: str) -> str:
    """The tag of ``signed`` (an id without ``:<tag>``)."""
    digest = hmac.new(secret, signed.encode(), hashlib.sha256).digest()[:TAG_BYTES]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def tag_matches(secret: bytes, signed: str, tag: str) -> bool:
    """Whether ``tag`` is ``signed``'s tag (constant-time comparison)."""
    return hmac.compare_digest(button_tag(secret, signed).encode(), tag.encode())


def silence_button_id(secret: bytes, fingerprint: str, seconds: int, expires: int) -> str:
    """The signed ``custom_id`` of a "silence ``fingerprint`` for ``seconds``" button."""
    signed = f"{BUTTON_PREFIX}:silence:{fingerprint}:{seconds}:{expires}"
    return f"{signed}:{button_tag(secret, signed)}"


def ack_button_id(secret: bytes, fingerprint: str, expires: int) -> str:
    """The signed ``custom_id`` of an "acknowledge ``fingerprint``" button."""
    signed = f"{BUTTON_PREFIX}:ack:{fingerprint}:{expires}"
    return f"{signed}:{button_tag(secret, signed)}"
