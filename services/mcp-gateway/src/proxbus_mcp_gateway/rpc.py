"""The same tools over NATS request/reply: micro service ``proxbus-gateway``, ``proxbus.rpc.<tool>``."""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

import pydantic_core
from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import Service
from proxbus_events import CALLER_HEADER, RPC_SERVICE_NAME, rpc_subject, sanitize_token

from .auth import Caller
from .gateway import Gateway

log = logging.getLogger(__name__)
MAX_REQUEST = 256 * 1024


async def start_rpc(gateway: Gateway, nc: Any) -> Service:
    """Register one endpoint per tool; callers get the ``RPC_SCOPES`` scopes."""
    service = await add_service(
        nc,
        name=RPC_SERVICE_NAME,
        version="0.1.0",
        description="proxbus MCP gateway tools over NATS",
    )
    try:
        for spec in gateway.tools_for():
            # As tools/list: with READ_ONLY=true nothing listed can change anything.
            destructive = spec.destructive and not gateway.settings.read_only
            await service.add_endpoint(
                name=spec.name,
                subject=rpc_subject(spec.name),
                handler=_handler(gateway, spec.name),
                metadata={"scope": spec.scope, "destructive": "true" if destructive else "false"},
            )
        # Multi-site routing: one endpoint per cluster this gateway serves, on
        # proxbus.rpc.<cluster>.<tool>; a gateway without the cluster never subscribes to it.
        for cluster in gateway.pool.clusters:
            await service.add_endpoint(
                name=f"cluster-{sanitize_token(cluster)}",
                subject=rpc_subject("*", cluster),
                handler=_handler(gateway, None, cluster),
                metadata={"cluster": cluster},
            )
        # A PING round trip: the server has processed every SUB before we report ready.
        await nc.flush(timeout=5)
    except BaseException:
        # Half registered: unsubscribe what was, so that a retry starts clean.
        with contextlib.suppress(Exception):
            await service.stop()
        raise
    log.info(
        "RPC service %s: %d tools on proxbus.rpc.* and proxbus.rpc.{%s}.*",
        RPC_SERVICE_NAME,
        len(gateway.tools_for()),
        ",".join(gateway.pool.clusters),
    )
    return service


def _handler(gateway: Gateway, tool: str | None, cluster: str | None = None) -> Any:
    async def handle(req: Request) -> None:
        name = tool if tool is not None else req.subject.rsplit(".", 1)[-1]
        caller = gateway.rpc_caller((req.headers or {}).get(CALLER_HEADER, "unknown"))
        if len(req.data) > MAX_REQUEST:
            await _refuse(req, gateway, name, {}, caller, 413, "request too large")
            return
        try:
            # pydantic-core: a recursion limit (ValueError) where json.loads would raise
            # RecursionError on a deeply nested body.
            args = pydantic_core.from_json(req.data) if req.data else {}
        except ValueError:
            args = None
        if not isinstance(args, dict):
            message = "request body must be a JSON object of tool arguments"
            await _refuse(req, gateway, name, {}, caller, 400, message)
            return
        if cluster is not None:
            given = args.get("cluster")
            if given is not None and given != cluster:
                message = f"cluster {given!r} sent on the subject of {cluster!r}"
                await _refuse(req, gateway, name, args, caller, 400, message)
                return
            spec = gateway.registry.tools.get(name)
            if spec is not None and "cluster" in spec.input_model.model_fields:
                args = {**args, "cluster": cluster}
        outcome = await gateway.call(name, args, caller)
        if outcome.result is None:
            await _error(req, outcome.code, outcome.error or "error")
            return
        await req.respond(json.dumps(outcome.result.data, default=str).encode())

    return handle


async def _refuse(
    req: Request,
    gateway: Gateway,
    name: str,
    args: dict[str, Any],
    caller: Caller,
    code: int,
    message: str,
) -> None:
    gateway.refuse(name, args, caller, message, code)
    await _error(req, code, message)


async def _error(req: Request, code: int, message: str) -> None:
    # Header values are single-line; the body keeps the full text (e.g. a task's log tail).
    header = " | ".join(line for line in message.splitlines() if line.strip())[:1024]
    await req.respond_error(str(code), header, json.dumps({"error": message}).encode())
