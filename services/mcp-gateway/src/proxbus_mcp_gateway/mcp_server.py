"""The MCP face of the gateway: tools/list and tools/call served from the registry."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any, cast

import anyio
from mcp import MCPError
from mcp.server.mcpserver import MCPServer
from mcp.shared.message import SessionMessage
from mcp.types import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    CallToolRequestParams,
    CallToolResult,
    GetPromptResult,
    InputRequiredResult,
    ListToolsResult,
    PaginatedRequestParams,
    TextContent,
    Tool,
    ToolAnnotations,
)
from pydantic import ValidationError

from .auth import Caller
from .gateway import Gateway
from .registry import ToolSpec
from .stdio import native_stdio

CALLER_STATE_KEY = "proxbus_caller"
INSTRUCTIONS = (
    "Proxmox VE/PBS through proxbus. Read tools are safe. Disruptive actions return a PLAN "
    "unless confirm=true: show the plan to the user first. Use wait=true to follow tasks. "
    "proxmox_api reaches any other API path."
)


def unreadable_answer(exc: Exception) -> str:
    """The JSON-RPC error line for a stdin line that is no JSON-RPC message: -32700 when it
    is not JSON (or too long, :data:`.stdio.MAX_LINE`), else -32600 with its ``id`` when one
    can be read (JSON-RPC 2.0 section 5: null when it cannot)."""
    code, message, rid = PARSE_ERROR, "Parse error", None
    if isinstance(exc, ValidationError):
        errors = exc.errors(include_url=False, include_context=False)
        if not any(e["type"] == "json_invalid" for e in errors):
            code, message = INVALID_REQUEST, "Invalid Request"
            for e in errors:
                given = e.get("input")
                if isinstance(given, dict):
                    candidate = given.get("id")
                    if isinstance(candidate, str | int) and not isinstance(candidate, bool):
                        rid = candidate
                        break
    error = {"code": code, "message": message}
    return json.dumps({"jsonrpc": "2.0", "id": rid, "error": error}) + "\n"


def tool_definition(spec: ToolSpec, *, read_only_gateway: bool = False) -> Tool:
    """The MCP tool entry; with ``READ_ONLY=true`` every listed tool is read-only (the only
    one that could write, ``proxmox_api``, then refuses anything but read-scope calls)."""
    read_only = spec.read_only or read_only_gateway
    return Tool(
        name=spec.name,
        title=spec.title,
        description=spec.description,
        input_schema=spec.input_schema(),
        output_schema=spec.output_schema,
        # the title once, at the top (MCP 2025-06-18 ``Tool.title``; clients show it before
        # ``annotations.title``): a copy in the annotations of every tool was 1.2 KB of tools/list
        annotations=ToolAnnotations(
            read_only_hint=read_only,
            destructive_hint=spec.destructive and not read_only,
            idempotent_hint=spec.idempotent,
            open_world_hint=spec.open_world,
        ),
    )


# Protocol revisions with tool annotations but without ``Tool.title`` (MCP 2025-06-18 added it).
TITLES_IN_ANNOTATIONS = frozenset({"2025-03-26"})


def _with_title(annotations: ToolAnnotations | None, title: str | None) -> ToolAnnotations:
    base = annotations if annotations is not None else ToolAnnotations()
    return base.model_copy(update={"title": title})


@contextlib.contextmanager
def _sdk_logging_unchanged() -> Iterator[None]:
    """Keep ``MCPServer.__init__`` from importing rich for a handler it cannot install.

    The SDK's constructor builds a ``RichHandler`` and passes it to ``logging.basicConfig``,
    which does nothing once the root logger has handlers (the runtime's ``configure_logging``
    ran first): the import of rich alone is 1.4 MiB of the idle gateway. With rich marked
    unimportable for the call, the SDK falls back to a ``StreamHandler``, equally unused.
    """
    if not logging.getLogger().handlers or "rich" in sys.modules:
        yield  # basicConfig would act (or rich is loaded anyway): leave the SDK alone
        return
    sys.modules["rich"] = None  # type: ignore[assignment]  # import rich -> ImportError
    try:
        yield
    finally:
        if sys.modules.get("rich", ...) is None:
            del sys.modules["rich"]


class GatewayMCPServer(MCPServer[Any]):
    """``MCPServer`` whose tools come from the gateway registry (one pipeline, audited)."""

    def __init__(self, gateway: Gateway, **kwargs: Any) -> None:
        self.gateway = gateway
        with _sdk_logging_unchanged():
            super().__init__(
                name="proxbus-mcp-gateway", instructions=INSTRUCTIONS, version="0.1.0", **kwargs
            )
        read_only = gateway.settings.read_only
        self._definitions = {
            s.name: tool_definition(s, read_only_gateway=read_only)
            for s in gateway.registry.tools.values()
        }
        # A client of 2025-03-26 knows no ``Tool.title``: it shows ``annotations.title`` or else
        # the tool's name. Its session gets the title there instead (no bigger a listing).
        self._titled_definitions = {
            name: tool.model_copy(
                update={"title": None, "annotations": _with_title(tool.annotations, tool.title)}
            )
            for name, tool in self._definitions.items()
        }
        # proxbus configures no tracer: the SDK's per-message spans would be CPU on every call.
        lowlevel = self._lowlevel_server
        lowlevel.middleware[:] = [
            m for m in lowlevel.middleware if type(m).__name__ != "OpenTelemetryMiddleware"
        ]

    @property
    def lowlevel_server(self) -> Any:
        """The SDK's low-level ``Server`` (what a session manager runs)."""
        return self._lowlevel_server

    def _caller(self, ctx: Any) -> Caller:
        request = getattr(ctx, "request", None)
        if request is None:
            return self.gateway.stdio_caller
        caller = request.scope.get("state", {}).get(CALLER_STATE_KEY)
        if isinstance(caller, Caller):
            return caller
        # Only reachable if the auth middleware is bypassed: fail closed.
        return Caller("unauthenticated", frozenset(), "http")

    async def _handle_list_tools(
        self, ctx: Any, params: PaginatedRequestParams | None
    ) -> ListToolsResult:
        caller = self._caller(ctx)
        titled = getattr(ctx, "protocol_version", None) in TITLES_IN_ANNOTATIONS
        definitions = self._titled_definitions if titled else self._definitions
        return ListToolsResult(tools=[definitions[s.name] for s in self.gateway.tools_for(caller)])

    def _tool_input_schema(self, name: str) -> dict[str, Any] | None:
        # Read per streamable-HTTP call (Mcp-Param headers): the listed schema, built once,
        # instead of pydantic's JSON schema generated again each time.
        tool = self._definitions.get(name)
        return None if tool is None else tool.input_schema

    async def run_stdio_async(self) -> None:
        """The SDK's stdio transport, fed by asyncio pipes instead of worker threads
        (:mod:`.stdio`); the SDK's own streams when stdin/stdout are not pipes or sockets."""
        from mcp.server.stdio import stdio_server

        async with native_stdio() as streams:
            stdin, stdout = streams if streams is not None else (None, None)
            async with stdio_server(cast(Any, stdin), cast(Any, stdout)) as (read, write):
                lowlevel = self._lowlevel_server
                options = lowlevel.create_initialization_options()
                if stdout is None:
                    await lowlevel.run(read, write, options)
                    return
                # The SDK passes a line it cannot read on as an exception, which its session
                # drops without an answer: answer it here (JSON-RPC 2.0 section 5), as the
                # HTTP transport does.
                inner_send, inner_read = anyio.create_memory_object_stream[
                    SessionMessage | Exception
                ](0)

                async def forward() -> None:
                    async with inner_send, read:
                        async for item in read:
                            if isinstance(item, Exception):
                                await stdout.write(unreadable_answer(item))
                                await stdout.flush()
                            else:
                                await inner_send.send(item)

                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(forward)
                    await lowlevel.run(inner_read, write, options)
                    tasks.cancel_scope.cancel()

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None, context: Any = None
    ) -> GetPromptResult | InputRequiredResult:
        """An unknown prompt name is invalid params (-32602, the MCP spec's server/prompts
        "Error Handling"), not the SDK's ``ValueError``: that answers code 0 and logs a
        traceback at ERROR for any client that asks (the conformance suite's prompts-get-*).
        """
        if self._prompt_manager.get_prompt(name) is None:
            raise MCPError(INVALID_PARAMS, f"Unknown prompt: {name}")
        return await super().get_prompt(name, arguments, context)

    async def _handle_call_tool(self, ctx: Any, params: CallToolRequestParams) -> CallToolResult:
        caller = self._caller(ctx)
        session = ctx.session

        async def progress(done: float, total: float | None, message: str | None) -> None:
            await session.report_progress(done, total, message)

        outcome = await self.gateway.call(params.name, params.arguments, caller, progress)
        if outcome.result is None:
            return CallToolResult(
                content=[TextContent(type="text", text=outcome.error or "error")], is_error=True
            )
        return CallToolResult(
            content=[TextContent(type="text", text=outcome.result.text)],
            structured_content=outcome.result.data,
        )
