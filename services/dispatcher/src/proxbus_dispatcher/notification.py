"""The delivery wire format: one notification (an event or a group's events) for one receiver."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Literal

from proxbus_events import Event, Severity
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

DELIVERY_SCHEMA: Literal["proxbus.delivery/v1"] = "proxbus.delivery/v1"


def _now() -> datetime:
    return datetime.now(UTC)


def single_event_body(
    delivery: str, receiver: str, route: str, event_json: bytes, enrichment: dict[str, Any] | None
) -> bytes:
    """The delivery body of one ungrouped event, embedding the event's wire JSON as-is
    (the intake hot path: no re-serialisation of the event)."""
    head = json.dumps(
        {"schema": DELIVERY_SCHEMA, "id": delivery, "receiver": receiver, "route": route}
    )
    tail = json.dumps(
        {"enrichment": enrichment or {}, "created_at": _now().isoformat().replace("+00:00", "Z")}
    )
    return b"".join((head[:-1].encode(), b', "events": [', event_json, b"], ", tail[1:].encode()))


def delivery_id(*parts: str) -> str:
    """A stable id for the ``Nats-Msg-Id`` of a delivery, from what makes it unique."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


class Notification(BaseModel):
    """What a delivery worker hands to its notifier (JSON body on ``proxbus.deliveries.<r>``)."""

    model_config = ConfigDict(populate_by_name=True)

    schema_: Literal["proxbus.delivery/v1"] = Field(default=DELIVERY_SCHEMA, alias="schema")
    id: str
    receiver: str
    route: str
    group_key: str | None = None
    group_labels: dict[str, str] = Field(default_factory=dict)
    events: list[Event] = Field(min_length=1)
    enrichment: dict[str, dict[str, Any]] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=_now)
    _event_dicts: list[dict[str, Any]] | None = PrivateAttr(default=None)

    @property
    def severity(self) -> Severity:
        return max((e.severity for e in self.events), key=lambda s: s.rank)

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Notification:
        """Parse and validate a delivery body (keeps the events' JSON dicts for templates).

        Raises:
            pydantic.ValidationError: not a delivery body.
        """
        notification = cls.model_validate_json(data)
        raw = json.loads(data)
        notification._event_dicts = raw["events"]
        return notification

    def event_dicts(self) -> list[dict[str, Any]]:
        """The events as JSON-ready dicts (computed once)."""
        if self._event_dicts is None:
            self._event_dicts = [e.model_dump(mode="json", by_alias=True) for e in self.events]
        return self._event_dicts

    def template_context(self) -> dict[str, Any]:
        """The documented template fields (see ``templates``)."""
        events = self.event_dicts()
        return {
            "events": events,
            "event": events[0],
            "count": len(events),
            "severity": self.severity.value,
            "receiver": self.receiver,
            "route": self.route,
            "group_key": self.group_key,
            "group_labels": self.group_labels,
            "enrichment": self.enrichment,
        }
