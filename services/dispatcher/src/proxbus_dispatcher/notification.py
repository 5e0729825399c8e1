"""The delivery wire format: one notification (an event or a group's events) for one receiver."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Literal

from proxbus_events import Event, Severity
from pydantic import BaseModel, ConfigDict, Field

DELIVERY_SCHEMA: Literal["proxbus.delivery/v1"] = "proxbus.delivery/v1"


def _now() -> datetime:
    return datetime.now(UTC)


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

    @property
    def severity(self) -> Severity:
        return max((e.severity for e in self.events), key=lambda s: s.rank)

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Notification:
        return cls.model_validate_json(data)

    def template_context(self) -> dict[str, Any]:
        """The documented template fields (see ``templates``)."""
        events = [e.model_dump(mode="json", by_alias=True) for e in self.events]
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
