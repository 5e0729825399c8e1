"""Buttons: what their ``custom_id`` carries, and the message parts that hold them.

``custom_id`` formats (at most 100 characters, Discord's limit):

- ``pbx:do:<action>:<kind>:<vmid>:<nonce>`` — confirm a power action (this service); the
  nonce (24 random hex digits) names the pending confirmation stored server-side
  (``confirmations.py``: who asked, what, until when), which one click consumes;
- ``pbx:cancel:<nonce>`` — drop that pending confirmation (this service);
- ``pbx:silence:<fingerprint>:<seconds>`` and ``pbx:ack:<fingerprint>`` — on the dispatcher's
  Discord notifications (``buttons: true`` on a discord receiver); the dispatcher writes the
  same strings, see its ``notifiers/discord.py``.

The id only carries parameters: whoever clicks is checked against the operators again, and a
confirm id is only honoured if the service stored its nonce for that very action, guest and
user. Ids of earlier versions (``pbx:do:...:<issued unix s>``, ``pbx:cancel``) still parse; the
service answers them as expired (a confirm) or just removes the buttons (a cancel).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import InteractionError

PREFIX = "pbx"
ACTION_ROW, BUTTON = 1, 2
PRIMARY, SECONDARY, SUCCESS, DANGER = 1, 2, 3, 4
_DO_RE = re.compile(r"^pbx:do:(start|stop|reboot):(qemu|lxc):([0-9]{3,9}):([0-9a-f]{24})$")
_LEGACY_DO_RE = re.compile(r"^pbx:do:(start|stop|reboot):(qemu|lxc):([0-9]{3,9}):([0-9]{1,12})$")
_CANCEL_RE = re.compile(r"^pbx:cancel(?::([0-9a-f]{24}))?$")
NONCE_RE = re.compile(r"^[0-9a-f]{24}$")
_SILENCE_RE = re.compile(r"^pbx:silence:([0-9a-f]{8,64}):([0-9]{1,7})$")
_ACK_RE = re.compile(r"^pbx:ack:([0-9a-f]{8,64})$")


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
    """A notification's "silence" button: mute this fingerprint for ``seconds``."""

    fingerprint: str
    seconds: int

    @property
    def custom_id(self) -> str:
        return f"{PREFIX}:silence:{self.fingerprint}:{self.seconds}"


@dataclass(slots=True, frozen=True)
class AcknowledgeAlert:
    """A notification's "acknowledge" button."""

    fingerprint: str

    @property
    def custom_id(self) -> str:
        return f"{PREFIX}:ack:{self.fingerprint}"


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
        return SilenceAlert(m.group(1), seconds)
    if m := _ACK_RE.match(custom_id):
        return AcknowledgeAlert(m.group(1))
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
