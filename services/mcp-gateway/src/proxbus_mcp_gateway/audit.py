"""One audit record per tool call on ``proxbus.audit.<site>.<tool>`` (stream PROXBUS_AUDIT)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from proxbus_events import audit_subject
from proxbus_runtime.ratelog import RateLimitedLog

if TYPE_CHECKING:
    from proxbus_runtime import EventPublisher

log = logging.getLogger("proxbus.audit")

_SECRET_KEY = re.compile(
    r"secret|token|password|passwd|passphrase|cookie|ticket|apikey|api_key|"
    r"private|sshkeys|authorization|credential",
    re.IGNORECASE,
)
# Parameters of the official PVE/PBS schemas that carry a secret (passwords, cloud-init
# password, ACME EAB / S3 / encryption keys, Ceph keyrings, TFA secrets). Plans of
# ``proxmox_api`` show them as "***" (tools/api.py); the audit masks them and the above.
SECRET_PARAM = re.compile(
    r"password|secret|keyring|hmac|^(key|token|certkey|client-key|access-key|encryption-key"
    r"|decryption-keys)$",
    re.IGNORECASE,
)
REDACTED = "***"


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key) or SECRET_PARAM.search(key))


MAX_QUEUE = 10_000


def redact(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` with secret-looking keys masked and long strings cut."""
    if depth > 6:
        return "…"
    if isinstance(value, dict):
        return {
            str(k): (REDACTED if is_secret_key(str(k)) else redact(v, depth + 1))
            for k, v in list(value.items())[:64]
        }
    if isinstance(value, list | tuple):
        return [redact(v, depth + 1) for v in list(value)[:64]]
    if isinstance(value, str) and len(value) > 512:
        return value[:512] + "…"
    return value


MAX_ARGUMENTS = 16 * 1024
MAX_MESSAGE = 8 * 1024  # characters of an error message kept (an upstream error can be long)
"""Bytes of (redacted) arguments an audit record carries; more are replaced by their names."""


def bounded_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    """``redact(arguments)``, or only their names when that is over :data:`MAX_ARGUMENTS`
    (a 4 MiB call body must not make a record JetStream refuses: 1 MiB payload limit)."""
    clean: dict[str, Any] = redact(arguments)
    size = len(json.dumps(clean, default=str, separators=(",", ":")))
    if size <= MAX_ARGUMENTS:
        return clean
    names = ", ".join(sorted(str(k)[:64] for k in list(arguments)[:16]))
    return {"_omitted": f"arguments too large for the audit ({names})"}


@dataclass(slots=True)
class AuditRecord:
    tool: str
    caller: str
    transport: str
    arguments: dict[str, Any]
    outcome: str
    duration_ms: float
    site: str
    message: str | None = None
    code: int | None = None
    ts: float = field(default_factory=time.time)
    # Only on a gateway with several clusters, for a call without ``cluster``: the clusters
    # it was resolved to or answered by (absent otherwise: one-cluster records are unchanged).
    clusters: list[str] | None = None

    def __post_init__(self) -> None:
        # A bounded, redacted copy: a queued record keeps no reference to the call's input.
        self.arguments = bounded_arguments(self.arguments)
        if self.message is not None and len(self.message) > MAX_MESSAGE:
            self.message = self.message[:MAX_MESSAGE] + "…"

    def to_json(self) -> bytes:
        record: dict[str, Any] = {
            "schema": "proxbus.audit/v1",
            "ts": self.ts,
            "site": self.site,
            "tool": self.tool,
            "caller": self.caller,
            "transport": self.transport,
            "arguments": self.arguments,
            "outcome": self.outcome,
            "code": self.code,
            "message": self.message,
            "duration_ms": self.duration_ms,
        }
        if self.clusters is not None:
            record["clusters"] = self.clusters
        return json.dumps(
            record,
            default=str,
            separators=(",", ":"),
        ).encode()


class AuditLog:
    """Queues records and publishes them to JetStream in the background (bounded, counted),
    through the runtime's publisher (``EventPublisher.send``: the one publish path).

    Without NATS (no publisher attached yet), records go to the ``proxbus.audit`` logger.
    """

    def __init__(self, site: str, *, ack_timeout: float = 5.0) -> None:
        self.publisher: EventPublisher | None = None
        self.site = site
        self.ack_timeout = ack_timeout
        self.published = 0
        self.dropped = 0
        self.failed = 0
        self._queue: asyncio.Queue[AuditRecord] = asyncio.Queue(MAX_QUEUE)
        self.trouble = RateLimitedLog(log, "audit records not published")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.publisher is not None and self._task is None:
            self._task = asyncio.create_task(self._run(self.publisher), name="audit-publisher")

    def attach(self, publisher: EventPublisher) -> None:
        """Publish to JetStream from now on (records before went to the log)."""
        self.publisher = publisher
        self.start()

    def detach(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.publisher = None

    def record(self, rec: AuditRecord) -> None:
        if self.publisher is None:
            if log.isEnabledFor(logging.INFO):
                log.info("audit %s", rec.to_json().decode())
            return
        try:
            self._queue.put_nowait(rec)
        except asyncio.QueueFull:
            self.dropped += 1
            # A flood of calls while NATS is slow or gone: a count, not a line per call.
            self.trouble.record("queue full, record dropped", rec.caller)

    async def _run(self, publisher: EventPublisher) -> None:
        while True:
            rec = await self._queue.get()
            subject = audit_subject(rec.site, rec.tool)
            body = rec.to_json()
            for attempt in range(5):
                try:
                    ack = await publisher.send(subject, body)
                    await asyncio.wait_for(ack, self.ack_timeout)
                    self.published += 1
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.failed += 1
                    self.trouble.record(
                        "publish failed", detail=str(exc or type(exc).__name__)[:200]
                    )
                    await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
            else:
                self.dropped += 1
            self._queue.task_done()

    async def close(self, timeout: float = 5.0) -> None:
        """Flush what is queued (up to ``timeout``) and stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
