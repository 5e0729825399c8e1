"""The client of the gateway's tools over NATS request/reply (contract: ``proxbus_events.rpc``)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import nats.errors
from nats.aio.client import Client as NATS
from proxbus_events import CALLER_HEADER, ERROR_CODE_HEADER, ERROR_HEADER, rpc_subject

from .errors import RpcError, RpcTimeout, RpcUnavailable

NO_RESPONDERS_GRACE = 0.5


async def call_tool(
    nc: NATS,
    tool: str,
    arguments: dict[str, Any] | None = None,
    *,
    timeout: float = 5.0,
    caller: str = "unknown",
    no_responders_grace: float = NO_RESPONDERS_GRACE,
    cluster: str | None = None,
) -> Any:
    """Call a gateway tool over NATS and return its structured result.

    ``cluster``: send it to ``proxbus.rpc.<cluster>.<tool>``, which only a gateway serving
    that cluster/site answers (several sites on one NATS); without it any gateway answers.

    Raises:
        RpcUnavailable: no gateway is running (after ``no_responders_grace`` seconds of
            retrying "no responders"; a subclass of RpcTimeout).
        RpcTimeout: no gateway answered within ``timeout``.
        RpcError: the tool answered with an error (``code`` is HTTP-like: 400, 403, 404, 502...).
    """
    payload = json.dumps(arguments or {}).encode()
    deadline = time.monotonic() + timeout
    # A gateway that is just (re)starting may not have its subscriptions everywhere yet:
    # "no responders" is retried briefly before it is reported.
    unavailable_until = time.monotonic() + min(no_responders_grace, timeout)
    while True:
        remaining = max(0.05, deadline - time.monotonic())
        try:
            msg = await nc.request(
                rpc_subject(tool, cluster),
                payload,
                timeout=remaining,
                headers={CALLER_HEADER: caller},
            )
            break
        except nats.errors.NoRespondersError:
            if time.monotonic() >= unavailable_until:
                raise RpcUnavailable(tool) from None
            await asyncio.sleep(0.05)
        except (TimeoutError, nats.errors.TimeoutError):
            raise RpcTimeout(tool, timeout) from None
    headers = msg.headers or {}
    if ERROR_HEADER in headers:
        try:
            code = int(headers.get(ERROR_CODE_HEADER, "500"))
        except ValueError:
            code = 500
        raise RpcError(tool, code, headers[ERROR_HEADER])
    try:
        return json.loads(msg.data) if msg.data else None
    except json.JSONDecodeError as exc:
        raise RpcError(tool, 502, f"invalid JSON reply: {exc}") from exc
