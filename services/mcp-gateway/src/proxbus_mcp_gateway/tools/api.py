"""``proxmox_api``: the rest of the PVE/PBS API, validated against the vendored schema."""

import re
from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema

from .. import schema
from ..audit import SECRET_PARAM
from ..errors import Forbidden
from ..registry import CallContext, Registry, ToolInput, ToolResult
from ._common import ClusterArg, answered, plan
from ._compact import STRINGS, shape
from .pbs import ServerArg


def register(reg: Registry) -> None:
    class ApiIn(ToolInput):
        method: Literal["GET", "POST", "PUT", "DELETE"] = "GET"
        path: str = Field(
            pattern=r"^/[A-Za-z0-9_./:@!=+{}-]*$",
            max_length=512,
            description="e.g. /nodes/pve1/disks/list",
        )
        params: Annotated[
            dict[str, str | int | float | bool | list[str | int | float]],
            # the same values in JSON Schema's words (integer is a number): half the bytes
            WithJsonSchema(
                {
                    "type": "object",
                    "additionalProperties": {
                        "type": ["string", "number", "boolean", "array"],
                        "items": {"type": ["string", "number"]},
                    },
                }
            ),
        ] = Field(default_factory=dict, description="query/body; a list for array parameters")
        product: Literal["pve", "pbs"] = "pve"
        cluster: ClusterArg = None
        server: ServerArg = None
        confirm: bool = False  # the description says it: "Non-GET: confirm=true, else a plan"

    # ``data`` is whatever the endpoint returns (any JSON type): left untyped. Without
    # confirm a write is a plan (planned: true, as every action tool's).
    @reg.tool(
        "Proxmox API call",
        destructive=True,
        idempotent=False,
        output=shape("", planned="boolean", method="string", path="string", errors=STRINGS),
    )
    async def proxmox_api(ctx: CallContext, args: ApiIn) -> ToolResult:
        """Any PVE/PBS API path, checked against the official schema; scope by its permissions:
        read = audit GETs, operate = power/snapshot/backup/migrate, admin = the rest. Non-GET:
        confirm=true, else a plan.
        """
        call = schema.resolve(args.product, args.method, args.path, dict(args.params))
        caller = ctx.caller
        scope = schema.required_scope(call)
        if ctx.gateway.settings.read_only and scope != "read":
            raise Forbidden("forbidden: READ_ONLY=true allows only GET through proxmox_api")
        caller.require_scope(scope, f"{call.method} {call.template}")
        if caller.restricted:
            # A node allowlist names PVE nodes: a PBS path (its own {node} too) is outside it.
            pbs_node = args.product == "pbs" and call.node is not None
            if (call.node is None or pbs_node) and caller.token and caller.token.nodes is not None:
                what = "a PBS path" if pbs_node else "not node-scoped"
                raise Forbidden(
                    f"forbidden: '{caller.name}' is limited to some nodes; "
                    f"{call.template} is {what}"
                )
            if call.vmid is None and caller.token and caller.token.vmids is not None:
                raise Forbidden(
                    f"forbidden: '{caller.name}' is limited to some guests; "
                    f"{call.template} is not guest-scoped"
                )
        if call.node is not None and args.product == "pve":
            caller.require_node(call.node)
        if call.vmid is not None:
            caller.require_vmid(call.vmid)
        pool = ctx.gateway.pool
        several = args.product == "pve" and call.node is None and pool.several_groups(args.cluster)
        if several and call.method != "GET":
            # Several standalone hosts: no host to pick for a write without {node}.
            pool.require_one_group(args.cluster, call.path)
        if call.method != "GET" and not args.confirm:
            return plan(
                call.method,
                call.path,
                {
                    "template": call.template,
                    "params": masked(call.params),
                    "permission": call.permission,
                },
                f"sends {call.method} {call.path} to the {args.product.upper()} API",
            )
        result: Any
        if several:
            return await _every_host(ctx, args.cluster, call.path, call.params)
        if args.product == "pbs":
            result = await pool.pbs_request(
                args.cluster, args.server, call.method, call.path, call.params or None
            )
        else:
            node = call.node if call.node else None
            result = await pool.request(
                args.cluster,
                call.method,
                call.path,
                call.params or None,
                node=node,
                cache=not LIVE_READS.search(call.template),
            )
        text = _render(result)
        return ToolResult({"method": call.method, "path": call.path, "data": result}, text)


# GETs that ask something live and must never come from the read cache (CACHE_TTL): the
# guest agent (exec-status reports a result once, get-time, file-read...) and a task's
# status and log while it runs.
LIVE_READS = re.compile(r"/agent/|/tasks/\{upid\}")


def masked(params: dict[str, Any] | None) -> dict[str, Any]:
    """``params`` with secret values replaced, for plans (text and structured content)."""
    return {k: "***" if SECRET_PARAM.search(k) else v for k, v in (params or {}).items()}


async def _every_host(
    ctx: CallContext, cluster: str | None, path: str, params: dict[str, Any] | None
) -> ToolResult:
    """A GET without ``{node}`` on several standalone hosts: each answers for itself (e.g.
    ``/cluster/resources``, ``/cluster/tasks``: the ingest-pve-ws watcher polls these). List
    answers are joined (entries name their node), hosts that failed are listed in
    ``errors``; any other answer cannot be joined and is refused like a write.

    Raises:
        ToolFailure: every host failed, or the answers are not lists (409).
    """
    pool = ctx.gateway.pool
    answers, errors = answered(await pool.request_all(cluster, path, params or None), f"GET {path}")
    if not all(isinstance(result, list) for _, result in answers):
        pool.require_one_group(cluster, path)
    joined = [item for _, result in answers for item in result]
    data: dict[str, Any] = {"method": "GET", "path": path, "data": joined}
    if errors:
        data["errors"] = errors
    text = _render(joined) + ("\nerrors: " + "; ".join(errors) if errors else "")
    return ToolResult(data, text)


def _render(result: Any, limit: int = 6000) -> str:
    import json

    text = json.dumps(result, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[:limit] + "…(truncated; see structuredContent)"
