"""``--test-connection``'s IMAP check against a private dovecot: login, mailbox, clear failures."""

from __future__ import annotations

import time
from typing import Any

import pytest
from proxbus_ingest_email.checks import check_imap, connection_checks
from proxbus_ingest_email.settings import Settings


def imap_settings(dovecot: Any, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "imap_enabled": True,
        "imap_host": dovecot.host,
        "imap_port": dovecot.port,
        "imap_user": dovecot.user,
        "imap_password": dovecot.password,
        "imap_tls": False,
        "imap_timeout": 5.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def test_imap_check_logs_in_and_selects_the_mailbox(dovecot: Any) -> None:
    detail = await check_imap(imap_settings(dovecot))
    assert detail.startswith(f"pve@127.0.0.1:{dovecot.port}/INBOX, ")
    assert detail.endswith(" messages")


async def test_wrong_password_fails_with_the_user_never_the_password(dovecot: Any) -> None:
    with pytest.raises(ConnectionError) as failed:
        await check_imap(imap_settings(dovecot, imap_password="wrong-secret-pw"))
    assert "login as pve refused" in str(failed.value)
    assert "wrong-secret-pw" not in str(failed.value)


async def test_missing_mailbox_is_named(dovecot: Any) -> None:
    with pytest.raises(ConnectionError, match="mailbox 'Nope' not found"):
        await check_imap(imap_settings(dovecot, imap_mailbox="Nope"))


async def test_unreachable_server_fails_fast(dovecot: Any) -> None:
    dovecot.stop()
    started = time.monotonic()
    with pytest.raises(ConnectionError, match=f"127.0.0.1:{dovecot.port}"):
        await check_imap(imap_settings(dovecot))
    assert time.monotonic() - started < 8


def test_imap_is_checked_only_when_the_poller_is_on(dovecot: Any) -> None:
    assert set(connection_checks(imap_settings(dovecot))) == {"imap"}
    assert connection_checks(imap_settings(dovecot, imap_enabled=False)) == {}
    assert connection_checks(imap_settings(dovecot, event_email_enabled=False)) == {}
