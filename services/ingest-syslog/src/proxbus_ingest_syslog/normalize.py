"""Turns a parsed, classified syslog line into an ``Event`` (pure)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from proxbus_events import (
    EVENT_SCHEMA,
    FINGERPRINT_SUBJECT_KEY,
    MESSAGE_LIMIT,
    TITLE_LIMIT,
    Event,
    Severity,
    Source,
    apply_severity_floor,
    compute_fingerprint,
    deterministic_event_id,
    new_event_id,
    severity_from_syslog,
    truncate,
)

from .classify import FALLBACK_KIND, Classification
from .parse import SyslogMessage
from .rules import DETAIL_OF

_SEVERITIES = [severity_from_syslog(code) for code in range(8)]
_NODE_LIMIT = 253
_EVENT_FIELDS = (
    "schema_", "id", "timestamp", "received_at", "source", "site", "node", "severity", "kind",
    "title", "message", "vmid", "fingerprint", "correlation_id", "metadata",
)  # fmt: skip
# The shortcut below is only taken while the model is the one it was written for.
FAST_PATH = tuple(Event.model_fields) == _EVENT_FIELDS
_FIELDS_SET = frozenset(_EVENT_FIELDS)


class NodeNamer:
    """Host name → node name: the configured mapping, else the short name (no domain)."""

    def __init__(self, mapping: Mapping[str, str] | None = None) -> None:
        self._mapping = {k.lower(): v for k, v in (mapping or {}).items()}
        self._cache: dict[str, str | None] = {}

    def __call__(self, hostname: str | None) -> str | None:
        if not hostname:
            return None
        found = self._cache.get(hostname, "")
        if found != "":
            return found
        node = self._name(hostname)
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[hostname] = node
        return node

    def _name(self, hostname: str) -> str | None:
        key = hostname.lower()
        if key in self._mapping:
            return self._mapping[key]
        try:
            ipaddress.ip_address(key)
            return key  # an address has no "short name"
        except ValueError:
            pass
        short = key.split(".", 1)[0]
        return self._mapping.get(short, short) or None


def line_severity(msg: SyslogMessage, cls: Classification) -> Severity:
    """Severity from the PRI, raised by the rule's minimum and the contract's floor."""
    severity = _SEVERITIES[msg.pri & 7]
    if cls.severity is not None:
        severity = severity.at_least(cls.severity)
    if cls.kind != FALLBACK_KIND:
        severity = apply_severity_floor(cls.kind, severity)
    elif DETAIL_OF in cls.metadata and severity.rank > Severity.INFO.rank:
        # a follow-on line of a happening another line is the event of (rules.DETAIL_OF):
        # kept for the record, not a second notification; the PRI stays in metadata
        severity = Severity.INFO
    return severity


def build_event(
    msg: SyslogMessage,
    cls: Classification,
    *,
    site: str,
    node_of: NodeNamer,
    received_at: datetime,
    severity: Severity | None = None,
    extra: Mapping[str, Any] | None = None,
    validate: bool = False,
) -> Event:
    """The event for one line (``severity`` if already computed by the caller).

    Built without pydantic validation while the model is the one the shortcut was written for
    (``FAST_PATH``); ``validate=True`` takes the validated path (the tests compare both).
    """
    sender = node_of(msg.hostname)
    node = None if cls.no_node else node_of(cls.node) if cls.node else sender
    timestamp = msg.timestamp or received_at
    title = cls.title
    if title is None:
        title = f"{msg.app}: {msg.message}" if msg.app else msg.message
    meta: dict[str, Any] = {"facility": msg.facility, "syslog_severity": msg.severity}
    if msg.app:
        meta["app"] = msg.app
    if msg.procid:
        meta["pid"] = msg.procid
    if msg.hostname:
        meta["hostname"] = msg.hostname
    if msg.msgid:
        meta["msgid"] = msg.msgid
    if msg.structured_data:
        meta["sd"] = msg.structured_data
    meta["format"] = msg.format
    if msg.truncated:
        meta["truncated"] = True
    if cls.rule:
        meta["rule"] = cls.rule
    if cls.metadata:
        meta.update(cls.metadata)
    if cls.no_node and sender and "reporter" not in meta:
        # an event about no node (a lost knet peer) says which node logged it
        meta["reporter"] = sender
    if extra:
        meta.update(extra)
    fields: dict[str, Any] = {
        "schema_": EVENT_SCHEMA,
        "id": None,
        "timestamp": timestamp,
        "received_at": received_at,
        "source": Source.SYSLOG,
        "site": site,
        "node": node,
        "severity": severity or line_severity(msg, cls),
        "kind": cls.kind,
        "title": title or "(empty message)",
        "message": msg.message,
        "vmid": cls.vmid,
        "fingerprint": "",
        "correlation_id": cls.correlation_id,
        "metadata": meta,
    }
    if cls.dedup_key is not None:
        # Same fact seen twice (two lines, two replicas, a resend) → one stored event.
        bucket = int(timestamp.timestamp()) // 60 * 60 if cls.kind == "oom.kill" else timestamp
        fields["id"] = deterministic_event_id(bucket, site, node, cls.kind, *cls.dedup_key)
    else:
        fields["id"] = new_event_id()
    return construct_event(fields, validate=validate)


def construct_event(fields: dict[str, Any], *, validate: bool = False) -> Event:
    """The ``Event`` for ``fields`` (all of them, in model order) without re-validation.

    The hot path: pydantic validation is about a third of the per-line cost, and
    ``model_construct`` is slower still (measured). This applies the model's own rules
    here instead, for values this module built (enums are enums, datetimes UTC-aware,
    kinds from the rule table, vmids of at most 9 digits, site checked by the settings):
    title single-lined and truncated, message truncated, node stripped, fingerprint
    computed. ``tests/test_normalize.py`` checks that the result equals the validated
    model. An unusual value (an over-long node name) goes through full validation.
    """
    node = fields["node"]
    if node is not None:
        node = node.strip() or None
        fields["node"] = node
    if validate or not FAST_PATH or (node is not None and len(node) > _NODE_LIMIT):
        fields["schema"] = fields.pop("schema_")
        return Event(**fields)  # pydantic names the offending field
    title = truncate(" ".join(fields["title"].split()), TITLE_LIMIT)
    fields["title"] = title
    if len(fields["message"]) > MESSAGE_LIMIT:
        fields["message"] = truncate(fields["message"], MESSAGE_LIMIT)
    fields["fingerprint"] = compute_fingerprint(
        fields["kind"],
        fields["site"],
        node,
        fields["vmid"],
        title,
        fields["metadata"].get(FINGERPRINT_SUBJECT_KEY),
    )
    event = Event.__new__(Event)
    # What pydantic's own construct() sets, minus its per-field default handling.
    object.__setattr__(event, "__dict__", fields)
    object.__setattr__(event, "__pydantic_fields_set__", set(_FIELDS_SET))
    object.__setattr__(event, "__pydantic_extra__", None)
    object.__setattr__(event, "__pydantic_private__", None)
    return event
