"""JetStream streams and KV buckets of the contract, as plain data.

The runtime (``proxbus_runtime.ensure_streams``) creates what is missing and updates only the
fields listed in ``OWNED_STREAM_FIELDS``: sources, mirrors, replicas and placement an operator
set on a stream are theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .subjects import AUDIT_PREFIX, DELIVERIES_PREFIX, DLQ_PREFIX, EVENTS_PREFIX

EVENTS_STREAM = "PROXBUS_EVENTS"
DELIVERIES_STREAM = "PROXBUS_DELIVERIES"
DLQ_STREAM = "PROXBUS_DLQ"
AUDIT_STREAM = "PROXBUS_AUDIT"
SILENCES_BUCKET = "proxbus_silences"
CURSORS_BUCKET = "proxbus_cursors"

DAY = 86_400.0
GIB = 1024**3

# The stream settings the contract decides; everything else belongs to the operator.
OWNED_STREAM_FIELDS = ("subjects", "max_age", "max_bytes", "duplicate_window", "discard")

Storage = Literal["file", "memory"]


@dataclass(slots=True, frozen=True)
class StreamLimits:
    """Retention limits; the defaults are the contract's.

    ``storage`` and ``replicas`` apply when a stream or bucket is created, never on update.
    """

    events_max_age: float = 7 * DAY
    events_max_bytes: int = GIB
    duplicate_window: float = 120.0
    deliveries_max_age: float = 7 * DAY
    dlq_max_age: float = 30 * DAY
    audit_max_age: float = 30 * DAY
    audit_max_bytes: int = GIB
    storage: Storage = "file"
    replicas: int = 1


@dataclass(slots=True, frozen=True)
class StreamSpec:
    """One stream of the contract (``max_bytes = -1``: unlimited)."""

    name: str
    subjects: tuple[str, ...]
    retention: Literal["limits", "workqueue"]
    max_age: float
    duplicate_window: float
    max_bytes: int = -1
    discard: Literal["old", "new"] = "old"


@dataclass(slots=True, frozen=True)
class BucketSpec:
    """One KV bucket of the contract."""

    name: str
    history: int


def stream_specs(limits: StreamLimits) -> list[StreamSpec]:
    """The four streams of the contract."""
    window = limits.duplicate_window
    return [
        StreamSpec(EVENTS_STREAM, (f"{EVENTS_PREFIX}.>",), "limits",
                   limits.events_max_age, window, limits.events_max_bytes),
        StreamSpec(DELIVERIES_STREAM, (f"{DELIVERIES_PREFIX}.>",), "workqueue",
                   limits.deliveries_max_age, window),
        StreamSpec(DLQ_STREAM, (f"{DLQ_PREFIX}.>",), "limits", limits.dlq_max_age, window),
        StreamSpec(AUDIT_STREAM, (f"{AUDIT_PREFIX}.>",), "limits",
                   limits.audit_max_age, window, limits.audit_max_bytes),
    ]  # fmt: skip


BUCKETS = (BucketSpec(SILENCES_BUCKET, history=5), BucketSpec(CURSORS_BUCKET, history=1))
