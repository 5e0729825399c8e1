"""Settings that would weaken a guarantee are refused at start (exit 2 with one line)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from proxbus_ingest_discord.dedupe import TOKEN_LIFETIME
from proxbus_ingest_discord.testing import service_settings
from pydantic import ValidationError


def test_the_replay_window_cannot_outlive_the_interaction_ledger() -> None:
    # A signed request is accepted for DISCORD_MAX_AGE; its id is remembered (once per
    # interaction) for 15 minutes. A longer window would let a captured request run again.
    key = Ed25519PrivateKey.generate()
    ok = service_settings("nats://127.0.0.1:4222", key, "http://127.0.0.1:1/api/v10",
                          discord_max_age=TOKEN_LIFETIME)  # fmt: skip
    assert ok.discord_max_age == TOKEN_LIFETIME
    with pytest.raises(ValidationError, match="discord_max_age"):
        service_settings("nats://127.0.0.1:4222", key, "http://127.0.0.1:1/api/v10",
                         discord_max_age=TOKEN_LIFETIME + 1)  # fmt: skip


def test_a_short_button_secret_is_refused_and_an_empty_one_means_none() -> None:
    # A guessable key would let anyone make working notification buttons.
    key = Ed25519PrivateKey.generate()
    api = "http://127.0.0.1:1/api/v10"
    with pytest.raises(ValidationError, match="at least 32 characters"):
        service_settings("nats://127.0.0.1:4222", key, api, discord_button_secret="x" * 31)
    assert service_settings("nats://127.0.0.1:4222", key, api, discord_button_secret="x" * 32
                            ).button_secret == b"x" * 32  # fmt: skip
    unset = service_settings("nats://127.0.0.1:4222", key, api, discord_button_secret="")
    assert unset.button_secret is None
    assert "x" * 32 not in repr(
        service_settings("nats://127.0.0.1:4222", key, api, discord_button_secret="x" * 32)
    )  # never echoed
