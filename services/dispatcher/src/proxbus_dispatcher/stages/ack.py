"""Acknowledgements: a Discord "Acknowledge" click stops the repeats of an incident; no I/O.

ingest-discord answers the click on a notification's "Acknowledge" button (``pbx:ack:<fp>``,
see ``notifiers/discord.py``) and publishes an event ``source=discord kind=command.ack`` with
``metadata.alert_fingerprint``, ``metadata.outcome`` (``ok``, or ``denied`` for a user
who is not in ``DISCORD_OPERATORS``) and ``metadata.discord_user_id``. The intake turns an
``ok`` one into ``acked`` on the fingerprint's current incident (stored with compare-and-set
like any incident change), naming the member by user id.

An acknowledged incident claims no new notification on any route (suppressed, reason
``acknowledged``). The acknowledgement carries over to the next incident of the fingerprint
while the problem goes on, and ends when it *resolves* or *a new incident starts*:

- resolved: no event of the fingerprint for ``ACK_RESOLVE_AFTER`` seconds (the next report
  after such a quiet spell is notified as usual);
- a new incident: a report with another task UPID than the acknowledged incident's (another
  run of the backup or task failed: news, notified as usual).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from proxbus_events import Event

ACK_KIND = "command.ack"
_FINGERPRINT_RE = re.compile(r"^[0-9a-f]{8,64}$")
# A Discord user id (a snowflake: a 64-bit integer in decimal).
_USER_ID_RE = re.compile(r"^[0-9]{1,20}$")


@dataclass(slots=True, frozen=True)
class Ack:
    """One operator's acknowledgement of the alert with ``fingerprint``.

    ``by`` is ``discord:<user id>``, as in the audit and on silences: the display name
    (``label``) is the member's to change on their server, so it only labels the record.
    """

    fingerprint: str
    by: str
    user_id: str
    label: str
    at: float
    event_id: str

    def record(self) -> dict[str, Any]:
        """What the incident keeps (``Incident.acked``)."""
        return {
            "by": self.by,
            "user_id": self.user_id,
            "label": self.label,
            "at": self.at,
            "event": self.event_id,
        }


def ack_of(event: Event) -> Ack | None:
    """The acknowledgement ``event`` carries, if it is an allowed click on "Acknowledge"."""
    if event.source.value != "discord" or event.kind != ACK_KIND:
        return None
    meta = event.metadata
    fingerprint = meta.get("alert_fingerprint")
    if meta.get("outcome") != "ok" or not isinstance(fingerprint, str):
        return None
    if not _FINGERPRINT_RE.match(fingerprint):
        return None
    user_id = meta.get("discord_user_id")
    if not isinstance(user_id, str) or not _USER_ID_RE.match(user_id):
        return None  # nobody to name (ingest-discord always sends it)
    user = meta.get("discord_user")
    return Ack(
        fingerprint=fingerprint,
        by=f"discord:{user_id}",
        user_id=user_id,
        label=str(user)[:64] if user else "",
        at=event.received_at.timestamp(),
        event_id=event.id,
    )
