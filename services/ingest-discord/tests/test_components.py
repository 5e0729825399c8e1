"""Button custom_ids: round trips, Discord's 100-character limit, foreign ids refused, the
notification buttons' tags checked."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st
from proxbus_ingest_discord.components import (
    AcknowledgeAlert,
    CancelAction,
    ConfirmAction,
    SilenceAlert,
    button_refusal,
    confirm_row,
    parse_click,
)
from proxbus_ingest_discord.errors import InteractionError
from proxbus_ingest_discord.testing import BUTTON_SECRET, ack_button, silence_button

SECRET = BUTTON_SECRET.encode()
NOW = 1_790_000_000

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


@given(fingerprints.filter(lambda f: len(f) <= 52), st.integers(1, 7 * 86400))
def test_notification_buttons_round_trip(fingerprint: str, seconds: int) -> None:
    for custom_id in (
        silence_button(fingerprint, seconds, expires=NOW),
        ack_button(fingerprint, expires=NOW),
    ):
        assert len(custom_id) <= 100
        click = parse_click({"custom_id": custom_id})
        assert isinstance(click, SilenceAlert | AcknowledgeAlert)
        assert click.custom_id == custom_id
        assert button_refusal(click, SECRET, NOW) is None


def test_the_dispatcher_button_format_is_pinned() -> None:
    # services/dispatcher's Discord notifier writes these strings: HMAC-SHA256 with
    # DISCORD_BUTTON_SECRET over the id up to the tag, 12 bytes, unpadded base64url.
    fp = "0123456789abcdef0123456789abcdef"
    signed = f"pbx:silence:{fp}:3600:{NOW}"
    tag = base64.urlsafe_b64encode(hmac.new(SECRET, signed.encode(), hashlib.sha256).digest()[:12])
    assert silence_button(fp, expires=NOW) == f"{signed}:{tag.decode()}"
    assert parse_click({"custom_id": f"{signed}:{tag.decode()}"}) == SilenceAlert(
        fp, 3600, NOW, tag.decode()
    )
    assert len(silence_button(fp, expires=NOW)) == 77
    ack = parse_click({"custom_id": ack_button(fp, expires=NOW)})
    assert isinstance(ack, AcknowledgeAlert)
    assert (ack.fingerprint, ack.expires) == (fp, NOW)
    assert parse_click({"custom_id": "pbx:cancel"}) == CancelAction()
    # Ids of earlier versions (no expiry, no tag) still parse: answered as expired.
    assert parse_click({"custom_id": f"pbx:silence:{fp}:3600"}) == SilenceAlert(fp, 3600)
    assert parse_click({"custom_id": f"pbx:ack:{fp}"}) == AcknowledgeAlert(fp)


def test_a_notification_button_is_honoured_only_with_its_own_unexpired_tag() -> None:
    fp, other = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"

    def refusal(custom_id: str, secret: bytes | None = SECRET, now: int = NOW) -> str | None:
        click = parse_click({"custom_id": custom_id})
        assert isinstance(click, SilenceAlert | AcknowledgeAlert)
        return button_refusal(click, secret, now)

    genuine = silence_button(fp, expires=NOW + 10)
    assert refusal(genuine) is None
    assert refusal(ack_button(fp, expires=NOW + 10)) is None
    assert refusal(genuine, now=NOW + 10) is None  # valid through its expiry second
    assert refusal(genuine, now=NOW + 11) == "expired"
    assert refusal(genuine.replace(fp, other)) == "forged"  # another fingerprint
    assert refusal(genuine.replace(":3600:", ":604800:")) == "forged"  # another duration
    assert refusal(genuine.replace(f":{NOW + 10}:", f":{NOW + 99999}:")) == "forged"  # expiry
    # an ack's tag on a silence button of the same fingerprint and expiry
    ack_tag = ack_button(fp, expires=NOW + 10).rsplit(":", 1)[1]
    assert refusal(genuine.rsplit(":", 1)[0] + ":" + ack_tag) == "forged"
    assert refusal(silence_button(fp, expires=NOW + 10, secret="x" * 32)) == "forged"
    # forged and expired: reported as forged (the expiry of a forgery means nothing)
    assert refusal(silence_button(fp, expires=NOW - 10, secret="x" * 32)) == "forged"
    assert refusal(f"pbx:silence:{fp}:3600") == "missing"
    assert refusal(f"pbx:ack:{fp}") == "missing"
    assert refusal(genuine, secret=None) == "disabled"  # DISCORD_BUTTON_SECRET unset


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
        "pbx:ack:0123456789abcdef:1790000000:",
        "pbx:ack:0123456789abcdef:1790000000:" + "A" * 15,
        "pbx:ack:0123456789abcdef:1790000000:" + "A" * 17,
        "pbx:ack:0123456789abcdef:1790000000:" + "A" * 15 + "=",
        "pbx:ack:0123456789abcdef::" + "A" * 16,
        "pbx:silence:0123456789abcdef:3600:" + "A" * 16,
        "pbx:silence:0123456789abcdef:0:1790000000:" + "A" * 16,
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
    assert "components" not in payload  # no DISCORD_BUTTON_SECRET: no buttons
    payload = discord_payload(
        receiver,
        Notification(id="d1", receiver="d", route="r", events=[event]),
        button_secret=SECRET,
        now=NOW,
    )
    buttons = payload["components"][0]["components"]
    clicks = [parse_click({"custom_id": b["custom_id"]}) for b in buttons]
    assert [type(c) for c in clicks] == [SilenceAlert, AcknowledgeAlert]
    silence, ack = clicks
    assert isinstance(silence, SilenceAlert)
    assert (silence.fingerprint, silence.seconds) == (event.fingerprint, 3600)
    assert ack.fingerprint == event.fingerprint
    for click in clicks:
        assert isinstance(click, SilenceAlert | AcknowledgeAlert)
        assert click.expires == NOW + 24 * 3600  # BUTTON_LIFETIME
        assert button_refusal(click, SECRET, NOW) is None
