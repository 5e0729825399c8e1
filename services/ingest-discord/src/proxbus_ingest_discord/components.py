"""Buttons: what their ``custom_id`` carries, and the message parts that hold them.

``custom_id`` formats (at most 100 characters, Discord's limit):

- ``pbx:do:<action>:<kind>:<vmid>:<nonce>`` — confirm a power action (this service); the
  nonce (24 random hex digits) names the pending confirmation stored server-side
  (``confirmations.py``: who asked, what, until when), which one click consumes;
- ``pbx:cancel:<nonce>`` — drop that pending confirmation (this service);
- ``pbx:silence:<fingerprint>:<seconds>:<expires>:<tag>`` and
  ``pbx:ack:<fingerprint>:<expires>:<tag>`` — on the dispatcher's Discord notifications
  (``buttons: true`` on a discord receiver), signed with ``DISCORD_BUTTON_SECRET`` (format and
  tag: ``proxbus_events.buttons``, which the dispatcher's ``notifiers/discord.py`` uses too).

The id only carries parameters: whoever clicks is checked against the operators again, a
confirm id is only honoured if the service stored its nonce for that very action, guest and
user, and a notification button only with its own unexpired tag (``button_refusal``). Ids of
earlier versions (``pbx:do:...:<issued unix s>``, ``pbx:cancel``, notification buttons without
expiry and tag) still parse; the service answers them as expired (a confirm, a notification
button) or just removes the buttons (a cancel).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from proxbus_events import tag_matches

from .errors import InteractionError

PREFIX = "pbx"
ACTION_ROW, BUTTON = 1, 2
PRIMARY, SECONDARY, SUCCESS, DANGER = 1, 2, 3, 4
_DO_RE = re.compile(r"^pbx:do:(start|stop|reboot):(qemu|lxc):([0-9]{3,9}):([0-9a-f]{24})$")
_LEGACY_DO_RE = re.compile(r"^pbx:do:(start|stop|reboot):(qemu|lxc):([0-9]{3,9}):([0-9]{1,12})$")
_CANCEL_RE = re.compile(r"^pbx:cancel(?::([0-9a-f]{24}))?$")
NONCE_RE = re.compile(r"^[0-9a-f]{24}$")
_SIGNED = r"(?::([0-9]{1,12}):([A-Za-z0-9_-]{16}))?"  # :<expires>:<tag>, absent before
_SILENCE_RE = re.compile(rf"^pbx:silence:([0-9a-f]{{8,64}}):([0-9]{{1,7}}){_SIGNED}$")
_ACK_RE = re.compile(rf"^pbx:ack:([0-9a-f]{{8,64}}){_SIGNED}$")
# Why a notification button is refused (``button_refusal``), the label of its counter.
DISABLED, MISSING, FORGED, EXPIRED = "disabled", "missing", "forged", "expired"


@dataclass(slots=True, frozen=True)
class ConfirmAction:
    """The confirm button of ``/proxbus start|stop|reboot``.

    ``nonce`` names the pending confirmation; ``None`` for a button of an earlier version
    (its id carried the time it was issued, which nothing checked it against): never run.
    """

    action: str
    kind: str
    vmid: int
    nonce: str | None

    @property
    def custom_id(self) -> str:
        return f"{PREFIX}:do:{self.action}:{self.kind}:{self.vmid}:{self.nonce}"


@dataclass(slots=True, frozen=True)
class CancelAction:
    """The cancel button next to a confirm button (``nonce`` of the confirmation it drops)."""

    nonce: str | None = None

    @property
    def custom_id(self) -> str:
        return f"{PREFIX}:cancel:{self.nonce}" if self.nonce else f"{PREFIX}:cancel"


@dataclass(slots=True, frozen=True)
class SilenceAlert:
    """A notification's "silence" button: mute this fingerprint for ``seconds``.

    ``expires`` (Unix s) and ``tag`` are ``None`` on a button of an earlier version.
    """

    fingerprint: str
    seconds: int
    expires: int | None = None
    tag: str | None = None

    @property
    def signed(self) -> str:
        """The part of the id the tag covers."""
        base = f"{PREFIX}:silence:{self.fingerprint}:{self.seconds}"
        return base if self.expires is None else f"{base}:{self.expires}"

    @property
    def custom_id(self) -> str:
        return self.signed if self.tag is None else f"{self.signed}:{self.tag}"


@dataclass(slots=True, frozen=True)
class AcknowledgeAlert:
    """A notification's "acknowledge" button (``expires``/``tag`` as on ``SilenceAlert``)."""

    fingerprint: str
    expires: int | None = None
    tag: str | None = None

    @property
    def signed(self) -> str:
        base = f"{PREFIX}:ack:{self.fingerprint}"
        return base if self.expires is None else f"{base}:{self.expires}"

    @property
    def custom_id(self) -> str:
        return self.signed if self.tag is None else f"{self.signed}:{self.tag}"


def button_refusal(
    click: SilenceAlert | AcknowledgeAlert, secret: bytes | None, now: float
) -> str | None:
    """Why a notification button is not honoured, or ``None`` if the dispatcher made it.

    ``disabled``: no ``DISCORD_BUTTON_SECRET`` here; ``missing``: no tag (a button of an
    earlier version, or a look-alike); ``forged``: the tag is not this id's under the secret
    (another fingerprint, duration or expiry than the dispatcher signed, or another secret);
    ``expired``: a genuine button past its expiry.
    """
    if secret is None:
        return DISABLED
    if click.tag is None or click.expires is None:
        return MISSING
    if not tag_matches(secret, click.signed, click.tag):
        return FORGED
    if now > click.expires:
        return EXPIRED
    return None


Click = ConfirmAction | CancelAction | SilenceAlert | AcknowledgeAlert


def parse_click(data: dict[str, Any]) -> Click:
    """The button behind a MESSAGE_COMPONENT interaction's ``data``.

    Raises:
        InteractionError: not a button of proxbus's (``unknown_component``).
    """
    custom_id = data.get("custom_id")
    if not isinstance(custom_id, str) or len(custom_id) > 100:
        raise InteractionError("unknown_component", "component has no usable custom_id")
    if m := _CANCEL_RE.match(custom_id):
        return CancelAction(m.group(1))
    if m := _DO_RE.match(custom_id):
        return ConfirmAction(m.group(1), m.group(2), int(m.group(3)), m.group(4))
    if m := _LEGACY_DO_RE.match(custom_id):
        return ConfirmAction(m.group(1), m.group(2), int(m.group(3)), None)
    if m := _SILENCE_RE.match(custom_id):
        seconds = int(m.group(2))
        if not 0 < seconds <= 7 * 86400:
            raise InteractionError("unknown_component", "silence button with a bad duration")
        expires = int(m.group(3)) if m.group(3) else None
        return SilenceAlert(m.group(1), seconds, expires, m.group(4))
    if m := _ACK_RE.match(custom_id):
        expires = int(m.group(2)) if m.group(2) else None
        return AcknowledgeAlert(m.group(1), expires, m.group(3))
    raise InteractionError("unknown_component", f"unknown component {custom_id[:40]!r}")


def button(label: str, custom_id: str, style: int) -> dict[str, Any]:
    return {"type": BUTTON, "style": style, "label": label[:80], "custom_id": custom_id}


def confirm_row(confirm: ConfirmAction) -> list[dict[str, Any]]:
    """One action row: [<Action> <vmid>] [Cancel]."""
    style = SUCCESS if confirm.action == "start" else DANGER
    return [
        {
            "type": ACTION_ROW,
            "components": [
                button(f"{confirm.action.capitalize()} {confirm.vmid}", confirm.custom_id, style),
                button("Cancel", CancelAction(confirm.nonce).custom_id, SECONDARY),
            ],
        }
    ]
