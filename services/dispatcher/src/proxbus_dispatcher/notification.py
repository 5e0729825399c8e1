"""The delivery wire format: one notification (an event or a group's events) for one receiver.

Intake builds the body from the events' wire JSON as received (no re-serialisation); a delivery
worker decodes it once (``Notification.from_json``: one ``json.loads``) and keeps the events as
their JSON objects — they were validated as ``Event`` at intake, so only the fields notifiers
read are checked here, not the whole model again.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Literal

from proxbus_events import Event, Severity
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .encoding import encode_json

DELIVERY_SCHEMA: Literal["proxbus.delivery/v1"] = "proxbus.delivery/v1"
_SEVERITIES = frozenset(s.value for s in Severity)


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def now_iso() -> str:
    """The current time as a delivery's ``created_at``."""
    return _iso(_now())


def delivery_body(
    delivery: str,
    receiver: str,
    route: str,
    events_json: list[bytes],
    enrichment: dict[str, Any] | None,
    *,
    group_key: str | None = None,
    group_labels: dict[str, str] | None = None,
    incidents: list[dict[str, Any]] | None = None,
    created_at: str | None = None,
) -> bytes:
    """A delivery body embedding the events' wire JSON as-is (the intake hot path).

    ``created_at`` (ISO 8601, default now): intake stamps one batch's deliveries with one time.
    """
    head: dict[str, Any] = {
        "schema": DELIVERY_SCHEMA,
        "id": delivery,
        "receiver": receiver,
        "route": route,
    }
    if group_key is not None:
        head["group_key"] = group_key
        head["group_labels"] = group_labels or {}
    tail: dict[str, Any] = {"enrichment": enrichment or {}, "created_at": created_at or now_iso()}
    # ``incident`` is the first of ``incidents``: not sent twice, ``Notification`` sets it.
    parts = [encode_json(i) for i in incidents or ()]
    return b"".join(
        (
            encode_json(head)[:-1],
            b',"events":[',
            b",".join(events_json),
            b"],",
            encode_json(tail)[1:-1],
            b',"incidents":[%s]}' % b",".join(parts) if parts else b"}",
        )
    )


def delivery_id(*parts: str) -> str:
    """A stable id for the ``Nats-Msg-Id`` of a delivery, from what makes it unique."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


class Notification(BaseModel):
    """What a delivery worker hands to its notifier (JSON body on ``proxbus.deliveries.<r>``).

    ``events`` are event v1 JSON objects (``Event`` instances given to the constructor are
    dumped to that form).
    """

    model_config = ConfigDict(populate_by_name=True)

    schema_: Literal["proxbus.delivery/v1"] = Field(default=DELIVERY_SCHEMA, alias="schema")
    id: str
    receiver: str
    route: str
    group_key: str | None = None
    group_labels: dict[str, str] = Field(default_factory=dict)
    events: list[dict[str, Any]] = Field(min_length=1)
    enrichment: dict[str, dict[str, Any]] = Field(default_factory=dict)
    incident: dict[str, Any] | None = None
    incidents: list[dict[str, Any]] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=_now)

    @field_validator("events", mode="before")
    @classmethod
    def _event_objects(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        out = []
        for item in value:
            if isinstance(item, Event):
                item = item.model_dump(mode="json", by_alias=True)
            elif not (
                isinstance(item, dict)
                and isinstance(item.get("id"), str)
                and isinstance(item.get("kind"), str)
                and isinstance(item.get("title"), str)
                and item.get("severity") in _SEVERITIES
            ):
                raise ValueError("each event needs string id, kind, title and a severity")
            out.append(item)
        return out

    @model_validator(mode="after")
    def _first_incident(self) -> Notification:
        # Intake sends ``incidents`` only; ``incident`` is their first (as in the webhook body).
        if self.incident is None and self.incidents:
            self.incident = self.incidents[0]
        return self

    @property
    def recovery(self) -> bool:
        """Whether the notification says only that things are over: every incident in it is a
        resolution (state ``resolved``: a node back online, a storage below its thresholds)
        or a success that resolved a failure (``resolves``)."""
        return bool(self.incidents) and all(
            isinstance(i, dict) and (i.get("state") == "resolved" or bool(i.get("resolves")))
            for i in self.incidents
        )

    @property
    def severity(self) -> Severity:
        """The highest severity among the events."""
        return max((Severity(e["severity"]) for e in self.events), key=lambda s: s.rank)

    @property
    def first(self) -> dict[str, Any]:
        """The first event (the one ungrouped notifications are about)."""
        return self.events[0]

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True, exclude_none=False).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Notification:
        """Decode a delivery body (once).

        Raises:
            pydantic.ValidationError: not a delivery body.
        """
        try:
            raw = json.loads(data)
        except ValueError:
            # Not JSON: let pydantic raise its ValidationError, so callers catch one type.
            return cls.model_validate_json(data)
        return cls.model_validate(raw)

    def event_dicts(self) -> list[dict[str, Any]]:
        """The events as JSON-ready dicts."""
        return self.events

    def template_context(self) -> dict[str, Any]:
        """The documented template fields (see ``templates``)."""
        events = self.events
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
            "incident": self.incident,
            "incidents": self.incidents,
        }
