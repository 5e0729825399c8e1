"""Dead letters: the record format, listing and replaying (``proxbus dlq list|replay``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from proxbus_events import DELIVERIES_STREAM, DLQ_STREAM, delivery_subject, dlq_subject
from pydantic import BaseModel, Field

from .notification import Notification


def _now() -> datetime:
    return datetime.now(UTC)


class DeadLetter(BaseModel):
    """Body of a ``proxbus.dlq.<receiver>`` message."""

    schema_: Literal["proxbus.dlq/v1"] = Field(default="proxbus.dlq/v1", alias="schema")
    receiver: str
    delivery_id: str
    error: str
    attempts: int
    dead_at: datetime = Field(default_factory=_now)
    notification: Notification

    model_config = {"populate_by_name": True}


@dataclass(slots=True)
class DlqEntry:
    """A dead letter with its DLQ stream sequence (what ``replay --id`` also accepts)."""

    seq: int
    letter: DeadLetter


async def dlq_list(js: JetStreamContext, receiver: str | None = None) -> list[DlqEntry]:
    """Every dead letter (of ``receiver`` if given), oldest first."""
    subject = dlq_subject(receiver) if receiver else "proxbus.dlq.>"
    out: list[DlqEntry] = []
    seq = 1
    while True:
        try:
            raw = await js.get_msg(DLQ_STREAM, seq=seq, subject=subject, next=True)
        except NotFoundError:
            return out
        assert raw.seq is not None
        if raw.data:
            out.append(DlqEntry(raw.seq, DeadLetter.model_validate_json(raw.data)))
        seq = raw.seq + 1


async def dlq_replay(
    js: JetStreamContext, receiver: str, ids: list[str] | None = None
) -> list[DlqEntry]:
    """Re-enqueue dead letters of ``receiver`` (all, or those whose delivery id or seq is in
    ``ids``) to ``proxbus.deliveries.<receiver>`` and remove them from the DLQ; returns them.

    The re-enqueued message id is derived from the DLQ sequence, so replaying the same entry
    twice within the duplicate window enqueues it once.
    """
    wanted = set(ids or [])
    replayed: list[DlqEntry] = []
    for entry in await dlq_list(js, receiver):
        if wanted and entry.letter.delivery_id not in wanted and str(entry.seq) not in wanted:
            continue
        await replay_entry(js, entry, receiver)
        replayed.append(entry)
    return replayed


async def replay_entry(js: JetStreamContext, entry: DlqEntry, receiver: str) -> None:
    """Re-enqueue one dead letter to ``receiver``'s deliveries and remove it from the DLQ."""
    notification = entry.letter.notification
    await js.publish(
        delivery_subject(receiver),
        notification.to_json(),
        stream=DELIVERIES_STREAM,
        headers={"Nats-Msg-Id": f"{notification.id}.replay.{entry.seq}"},
    )
    await js.delete_msg(DLQ_STREAM, entry.seq)
