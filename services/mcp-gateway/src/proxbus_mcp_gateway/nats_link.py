"""What NATS brings to the gateway once the runtime has connected it: the audit stream, the
RPC service and the event tools.

The runtime's ``Service(require_nats=False)`` connects in the background (``app.py``) and
calls :func:`bring_up` when NATS and JetStream are ready; until then the gateway serves MCP,
the audit goes to the log and the event tools answer "not connected".
"""

from __future__ import annotations

import logging
from typing import Any

from proxbus_runtime import EventPublisher

from .gateway import Gateway

log = logging.getLogger(__name__)


async def bring_up(gateway: Gateway, nc: Any, js: Any, publisher: EventPublisher) -> Any | None:
    """Attach a connected NATS client, its JetStream context (streams already ensured) and the
    runtime's publisher: audit stream, event tools, RPC service (if enabled). Returns the RPC
    service (or None).
    """
    gateway.attach_nats(nc, js, publisher)
    rpc = None
    if gateway.settings.rpc_enabled:
        from .rpc import start_rpc

        rpc = await start_rpc(gateway, nc)
    servers = str(nc.connected_url.netloc) if getattr(nc, "connected_url", None) else "?"
    log.info(
        "NATS connected (%s): audit to JetStream%s, event tools on",
        servers,
        ", RPC service proxbus-gateway registered" if rpc is not None else "",
    )
    return rpc
