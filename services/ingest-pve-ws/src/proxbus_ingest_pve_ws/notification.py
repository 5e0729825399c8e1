"""PVE/PBS notifications pushed to us (webhook target, Gotify) → events. Pure, no I/O."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping
from typing import Any

from proxbus_events import (
    FINGERPRINT_SUBJECT_KEY,
    Event,
    Severity,
    Source,
    apply_severity_floor,
    deterministic_event_id,
)
from proxbus_events.proxmox import backup_subject_vmid, guest_id, parse_vzdump_table, short_host
from pydantic import ValidationError

# Notification severities of proxmox-notify (``unknown`` is a real value).
_PVE_SEVERITY = {
    "info": Severity.INFO,
    "notice": Severity.NOTICE,
    "warning": Severity.WARNING,
    "error": Severity.ERROR,
    "unknown": Severity.NOTICE,
}

# type → (kind when the notification reports an error, kind otherwise)
_KIND_BY_TYPE: dict[str, tuple[str, str]] = {
    "vzdump": ("backup.failed", "backup.ok"),
    "replication": ("replication.failed", "replication.failed"),
    "fencing": ("node.fencing", "node.fencing"),
    "package-updates": ("updates.available", "updates.available"),
    "system-mail": ("webhook.message", "webhook.message"),
    "gc": ("gc.failed", "gc.ok"),
    "verification": ("verify.failed", "verify.ok"),
    "verify": ("verify.failed", "verify.ok"),
    "sync": ("sync.failed", "sync.ok"),
    "prune": ("prune.failed", "prune.ok"),
    "tape-backup": ("tape.failed", "tape.ok"),
    "tape-load": ("tape.failed", "webhook.message"),
    "acme": ("acme.failed", "webhook.message"),
}

_FENCE_NODE = re.compile(r"fenc\w*\s+node\s+'?([A-Za-z0-9][A-Za-z0-9.-]*)'?", re.IGNORECASE)
_TEST = re.compile(r"\btest notification\b", re.IGNORECASE)
_REPLICATION_JOB = re.compile(r"(\d{1,9})-\d+")
_DATASTORE_KINDS = frozenset({"gc", "verify", "prune", "sync", "tape"})
_FENCED = re.compile(r"^\s*successfully fenced node\b", re.IGNORECASE)
_TEXT_KEYS = ("message", "body", "text", "content")
# Gotify extras are namespaced maps ({"client::display": {"contentType": ...}}); deeper ones
# are dropped: the event must serialize (pydantic refuses past a few hundred levels).
_MAX_EXTRAS_DEPTH = 8


class NotificationError(ValueError):
    """Raised when a pushed body is not a notification we can turn into an event."""


def _event(**fields: Any) -> Event:
    """The event, or ``NotificationError`` naming the field a hostile value broke (a lone
    surrogate in a title, a date past year 9999): a clear 400, never a 500 or a poison pill."""
    try:
        return Event(**fields)
    except ValidationError as exc:
        where = ".".join(str(p) for p in exc.errors()[0]["loc"]) or "event"
        raise NotificationError(f"not a valid event: bad {where}") from None


def _nesting(value: object, limit: int) -> int:
    """How deep lists/dicts nest in ``value`` (stops counting past ``limit``)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            depth += 1
            if depth > limit:
                return depth
            deepest = max(deepest, depth)
            stack.extend((v, depth) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _clean(value: Any, depth: int = 0) -> Any:
    """``value`` with lone surrogates (JSON ``"\\ud800"``, which ``json`` decodes as is and
    nothing can encode) replaced by U+FFFD: such a title is still the notification."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value) if _SURROGATE.search(value) else value
    if depth > 64:
        return None
    if isinstance(value, dict):
        return {_clean(k): _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v, depth + 1) for v in value]
    return value


def _scalar(value: object) -> object:
    """A JSON scalar kept as metadata; anything else (a list, a map) is dropped."""
    return value if isinstance(value, str | int | float | bool) or value is None else None


def gotify_priority_severity(priority: object) -> Severity:
    """Gotify priority → severity, the inverse of PVE's Gotify target (1/3/5/9).

    0 → debug, 1-2 → info, 3-4 → notice, 5-7 → warning, 8-10 → error, above 10 → critical;
    a missing or non-numeric priority is ``info``.
    """
    if isinstance(priority, bool) or not isinstance(priority, int | float):
        return Severity.INFO
    if isinstance(priority, float) and not math.isfinite(priority):
        return Severity.INFO  # JSON 1e999 / NaN as Python's json reads them
    p = int(priority)
    if p <= 0:
        return Severity.DEBUG
    if p <= 2:
        return Severity.INFO
    if p <= 4:
        return Severity.NOTICE
    if p <= 7:
        return Severity.WARNING
    if p <= 10:
        return Severity.ERROR
    return Severity.CRITICAL


def notification_kind(ntype: str | None, severity: Severity, title: str) -> str:
    """The event kind for a notification of ``ntype`` (``fields.type``) at ``severity``."""
    if _TEST.search(title):
        return "test.notification"
    pair = _KIND_BY_TYPE.get((ntype or "").lower())
    if pair is None:
        return "webhook.message"
    # pve-ha-manager templates/default/fencing-subject.txt.hbs: "Successfully fenced node 'X'"
    # once the fence is acknowledged, "Trying to fence node 'X'" before (DESIGN.md kinds).
    if pair[0] == "node.fencing" and _FENCED.search(title):
        return "node.fenced"
    failed = severity.rank >= Severity.ERROR.rank
    return pair[0] if failed else pair[1]


def _epoch(value: object) -> float:
    if isinstance(value, bool):
        return time.time()
    if isinstance(value, int | float) and 0 < value < 1e11:
        return float(value)
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,11}", value.strip()):
        return float(value.strip())
    return time.time()


def parse_webhook_body(body: bytes, content_type: str = "application/json") -> dict[str, Any]:
    """Decode a webhook body to a mapping with at least ``title`` and ``message``.

    A JSON object is taken as is; plain text (a target whose body is ``{{ message }}``)
    becomes ``{"title": <first line>, "message": <text>}``.

    Raises:
        NotificationError: empty body, invalid UTF-8 / JSON, or not an object.
    """
    if not body.strip():
        raise NotificationError("empty body")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise NotificationError("body is not UTF-8") from None
    looks_json = "json" in content_type.lower() or text.lstrip().startswith(("{", "["))
    if not looks_json:
        first = text.strip().splitlines()[0]
        return {"title": first, "message": text}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotificationError(
            f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except (ValueError, RecursionError) as exc:  # an integer over 4300 digits, deep nesting
        raise NotificationError(f"invalid JSON: {str(exc)[:80]}") from None
    if not isinstance(data, dict):
        raise NotificationError("JSON body must be an object")
    return data


def webhook_event(data: Mapping[str, Any], *, site: str) -> Event:
    """A PVE webhook notification (the documented template, or a tolerated variant) → Event.

    Raises:
        NotificationError: neither a title nor a message is present.
    """
    data = _clean(data)
    fields = data.get("fields")
    fields = fields if isinstance(fields, dict) else {}
    title = data.get("title")
    message = next((data[k] for k in _TEXT_KEYS if isinstance(data.get(k), str)), "")
    if not isinstance(title, str) or not title.strip():
        title = message.strip().splitlines()[0] if message.strip() else ""
    if not title:
        raise NotificationError("notification has neither a title nor a message")
    raw_sev = data.get("severity")
    if isinstance(raw_sev, str) and raw_sev.lower() in _PVE_SEVERITY:
        severity = _PVE_SEVERITY[raw_sev.lower()]
    elif "priority" in data:
        severity = gotify_priority_severity(data.get("priority"))
    else:
        severity = Severity.INFO
    ntype = fields.get("type") if isinstance(fields.get("type"), str) else None
    kind = notification_kind(ntype, severity, title)
    hostname = fields.get("hostname") or data.get("hostname")
    hostname = hostname if isinstance(hostname, str) else None
    node = short_host(hostname)
    if kind in ("node.fencing", "node.fenced"):
        m = _FENCE_NODE.search(title) or _FENCE_NODE.search(message)
        node = short_host(m.group(1)) if m else node
    vmid = guest_id(fields.get("vmid"))
    ts = _epoch(data.get("timestamp"))
    metadata: dict[str, Any] = {
        "notification_type": ntype,
        "notification_severity": raw_sev if isinstance(raw_sev, str) else None,
        "fields": {str(k): v for k, v in fields.items() if isinstance(v, str | int | float | bool)},
    }
    job_id = fields.get("job-id")
    if kind == "replication.failed" and isinstance(job_id, str):
        # pve-manager PVE/API2/Replication.pm: metadata "job-id" => "<vmid>-<n>"
        metadata[FINGERPRINT_SUBJECT_KEY] = job_id
        job = _REPLICATION_JOB.fullmatch(job_id)
        if vmid is None and job:
            vmid = guest_id(job.group(1))
    elif kind.split(".")[0] in _DATASTORE_KINDS and isinstance(fields.get("datastore"), str):
        # proxmox-backup src/server/notifications.rs: metadata "datastore" => the job's store
        metadata[FINGERPRINT_SUBJECT_KEY] = fields["datastore"]
    if kind in ("backup.failed", "backup.ok"):
        # The webhook carries the mail's text: read the per-guest table the same way the
        # mail path does, so one failed guest has its vmid whichever way the report came.
        guests = parse_vzdump_table(message)
        if guests:
            metadata["guests"] = [
                {"vmid": g.vmid, "name": g.name, "status": g.status} for g in guests
            ]
            failed = [g.vmid for g in guests if g.status != "ok"]
            if len(failed) > 1:
                metadata["failed_vmids"] = failed
            if vmid is None:
                vmid = backup_subject_vmid(guests, kind == "backup.failed")
    return _event(
        id=deterministic_event_id(ts, "pve-webhook", site, hostname, ntype, title, message),
        source=Source.PVE_WEBHOOK,
        site=site,
        node=node,
        severity=apply_severity_floor(kind, severity),
        kind=kind,
        title=title,
        message=message,
        timestamp=ts,
        vmid=vmid if vmid is not None and vmid <= 999_999_999 else None,
        correlation_id=fields.get("job-id") if isinstance(fields.get("job-id"), str) else None,
        metadata=metadata,
    )


def gotify_event(msg: Mapping[str, Any], *, site: str, server: str) -> Event:
    """A Gotify stream / REST message → Event (kind ``gotify.message``).

    Raises:
        NotificationError: the message has no integer ``id`` or no text at all.
    """
    msg_id = msg.get("id")
    if isinstance(msg_id, bool) or not isinstance(msg_id, int):
        raise NotificationError("Gotify message without an integer id")
    extras = msg.get("extras") if isinstance(msg.get("extras"), dict) else {}
    if _nesting(extras, _MAX_EXTRAS_DEPTH) > _MAX_EXTRAS_DEPTH:
        extras = {}
    msg = _clean({**msg, "extras": extras})
    extras = msg["extras"]
    raw_title, raw_text = msg.get("title"), msg.get("message")
    title = raw_title if isinstance(raw_title, str) else ""
    text = raw_text if isinstance(raw_text, str) else ""
    title = title or (text.strip().splitlines()[0] if text.strip() else "")
    if not title:
        raise NotificationError(f"Gotify message {msg_id} has no title or text")
    date = msg.get("date")
    ts = _parse_date(date) if isinstance(date, str) else time.time()
    return _event(
        # The date is part of the id's time bits only; the id identity is server + message id.
        id=deterministic_event_id(ts, "gotify", server, msg_id),
        source=Source.GOTIFY,
        site=site,
        severity=gotify_priority_severity(msg.get("priority")),
        kind="gotify.message",
        title=title,
        message=text,
        timestamp=ts,
        metadata={
            "gotify_id": msg_id,
            "gotify_appid": _scalar(msg.get("appid")),
            "gotify_priority": _scalar(msg.get("priority")),
            "gotify_extras": extras,
        },
    )


def _parse_date(value: str) -> float:
    from datetime import datetime

    text = value.strip().replace("Z", "+00:00")
    # Gotify sends nanosecond fractions, which fromisoformat() does not take.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        ts = datetime.fromisoformat(text).timestamp()
    except (ValueError, OverflowError):
        return time.time()
    return ts if 0 < ts < 1e11 else time.time()  # what an Event takes (as _epoch)
