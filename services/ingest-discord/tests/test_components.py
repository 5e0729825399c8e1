"""Button custom_ids: round trips, Discord's 100-character limit, foreign ids refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from proxbus_ingest_discord.components import (
    AcknowledgeAlert,
    CancelAction,
    ConfirmAction,
    SilenceAlert,
    confirm_row,
    parse_click,
)
from proxbus_ingest_discord.errors import InteractionError

fingerprints = st.text("0123456789abcdef", min_size=8, max_size=64)
nonces = st.text("0123456789abcdef", min_size=24, max_size=24)


@given(
    st.sampled_from(["start", "stop", "reboot"]),
    st.sampled_from(["qemu", "lxc"]),
    st.integers(100, 999_999_999),
    nonces,
)
def test_confirm_buttons_round_trip(action: str, kind: str, vmid: int, nonce: str) -> None:
    for button in (ConfirmAction(action, kind, vmid, nonce), CancelAction(nonce)):
        assert len(button.custom_id) <= 100
        assert parse_click({"custom_id": button.custom_id}) == button


@given(st.integers(0, 10**12 - 1))
def test_confirm_buttons_of_the_earlier_version_parse_without_a_nonce(issued: int) -> None:
    # Their id carried the time they were issued: answered as expired, never run.
    custom_id = f"pbx:do:stop:qemu:100:{issued}"
    assert parse_click({"custom_id": custom_id}) == ConfirmAction("stop", "qemu", 100, None)


@given(fingerprints, st.integers(1, 7 * 86400))
def test_notification_buttons_round_trip(fingerprint: str, seconds: int) -> None:
    for button in (SilenceAlert(fingerprint, seconds), AcknowledgeAlert(fingerprint)):
        assert len(button.custom_id) <= 100
        assert parse_click({"custom_id": button.custom_id}) == button


def test_the_dispatcher_button_format_is_pinned() -> None:
    # services/dispatcher's Discord notifier writes these strings.
    assert parse_click({"custom_id": "pbx:silence:0123456789abcdef:3600"}) == SilenceAlert(
        "0123456789abcdef", 3600
    )
    assert parse_click({"custom_id": "pbx:ack:0123456789abcdef"}) == AcknowledgeAlert(
        "0123456789abcdef"
    )
    assert parse_click({"custom_id": "pbx:cancel"}) == CancelAction()


@pytest.mark.parametrize(
    "custom_id",
    [
        None,
        "",
        "x" * 101,
        "pbx:do:destroy:qemu:100:1",
        "pbx:do:stop:qemu:99:1",
        "pbx:do:stop:kvm:100:1",
        "pbx:silence:0123456789abcdef:0",
        "pbx:silence:0123456789abcdef:999999",
        "pbx:silence:NOTHEX00:60",
        "pbx:ack:short",
        "pbx:do:stop:qemu:100:" + "A" * 24,
        "pbx:do:stop:qemu:100:" + "a" * 25,
        "pbx:cancel:" + "a" * 23,
        "pbx:cancel:",
        "other-bot:thing",
    ],
)
def test_foreign_or_malformed_ids_are_refused(custom_id: object) -> None:
    with pytest.raises(InteractionError) as err:
        parse_click({"custom_id": custom_id})
    assert err.value.outcome == "unknown_component"


def test_the_confirm_row_has_the_action_and_a_cancel_button() -> None:
    nonce = "0123456789abcdef01234567"
    [row] = confirm_row(ConfirmAction("stop", "qemu", 100, nonce))
    labels = [(b["label"], b["style"]) for b in row["components"]]
    assert labels == [("Stop 100", 4), ("Cancel", 2)]
    assert [b["custom_id"] for b in row["components"]] == [
        f"pbx:do:stop:qemu:100:{nonce}",
        f"pbx:cancel:{nonce}",
    ]


def test_the_dispatchers_notification_buttons_parse_here() -> None:
    from proxbus_dispatcher.notification import Notification
    from proxbus_dispatcher.notifiers.discord import DiscordReceiver, discord_payload
    from proxbus_events import Event

    event = Event(
        source="syslog",
        site="lab",
        node="pve2",
        severity="error",
        kind="backup.failed",
        title="backup failed",
    )
    receiver = DiscordReceiver(name="d", type="discord", url="https://x.example/h", buttons=True)
    payload = discord_payload(
        receiver, Notification(id="d1", receiver="d", route="r", events=[event])
    )
    buttons = payload["components"][0]["components"]
    assert [parse_click({"custom_id": b["custom_id"]}) for b in buttons] == [
        SilenceAlert(event.fingerprint, 3600),
        AcknowledgeAlert(event.fingerprint),
    ]
