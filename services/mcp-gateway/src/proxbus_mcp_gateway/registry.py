"""Transport-independent tools: metadata, input models and the handler of each tool.

The MCP server and the NATS micro service both call :meth:`Gateway.call`, so validation,
authorization and audit are the same whichever way a call arrives.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from .auth import Caller
    from .gateway import Gateway

Scope = Literal["read", "operate", "admin"]
ProgressFn = Callable[[float, float | None, str | None], Awaitable[None]]


class ToolInput(BaseModel):
    """Base of every tool's arguments: unknown arguments are an error."""

    model_config = ConfigDict(extra="forbid")


@dataclass(slots=True)
class ToolResult:
    """Structured data plus the compact text an LLM reads."""

    data: dict[str, Any]
    text: str


@dataclass(slots=True)
class CallContext:
    gateway: Gateway
    caller: Caller
    progress: ProgressFn | None = None
    # Several clusters and a call without ``cluster``: the ones it went to (for the audit).
    clusters: list[str] | None = None

    async def report(self, progress: float, total: float | None, message: str | None) -> None:
        if self.progress is not None:
            await self.progress(progress, total, message)


Handler = Callable[[CallContext, Any], Awaitable[ToolResult]]


@dataclass(slots=True, frozen=True)
class ToolSpec:
    name: str
    title: str
    description: str
    input_model: type[ToolInput]
    handler: Handler
    scope: Scope = "read"
    destructive: bool = False
    idempotent: bool = True
    open_world: bool = True
    output_schema: dict[str, Any] = field(default_factory=dict)

    @property
    def read_only(self) -> bool:
        """Never changes anything (``proxmox_api`` may, with the right scope and confirm)."""
        return self.scope == "read" and not self.destructive

    def input_schema(self) -> dict[str, Any]:
        return compact_schema(self.input_model.model_json_schema())


class Registry:
    """Tools by name, in registration order."""

    def __init__(self) -> None:
        self.tools: dict[str, ToolSpec] = {}

    def add(self, spec: ToolSpec) -> None:
        if spec.name in self.tools:
            raise ValueError(f"tool {spec.name} registered twice")
        self.tools[spec.name] = spec

    def tool(
        self,
        title: str,
        *,
        scope: Scope = "read",
        destructive: bool = False,
        idempotent: bool = True,
        open_world: bool = True,
        output: dict[str, Any] | None = None,
    ) -> Callable[[Handler], Handler]:
        """Decorator registering ``async def handler(ctx, args: InputModel) -> ToolResult``.

        The tool is named after the handler and described by its docstring (white space folded).
        """

        def wrap(fn: Handler) -> Handler:
            name = fn.__name__
            model = fn.__annotations__.get("args")
            if isinstance(model, str):
                model = fn.__globals__[model]
            if not (isinstance(model, type) and issubclass(model, ToolInput)):
                raise TypeError(f"{name}: annotate args with a ToolInput model")
            if not fn.__doc__:
                raise TypeError(f"{name}: the docstring is the tool's description")
            description = " ".join(fn.__doc__.split())
            self.add(
                ToolSpec(
                    name=name,
                    title=title,
                    description=description,
                    input_model=model,
                    handler=fn,
                    scope=scope,
                    destructive=destructive,
                    idempotent=idempotent,
                    open_world=open_world,
                    output_schema=output or OBJECT_OUTPUT,
                )
            )
            return fn

        return wrap


OBJECT_OUTPUT: dict[str, Any] = {"type": "object"}


def list_output(item_props: dict[str, str] | None = None, partial: bool = True) -> dict[str, Any]:
    """``{items: [...], count, errors?}``; ``item_props`` names the main fields and their types.

    Every named field may also be ``null``: Proxmox leaves fields out or sends null for some
    entries (HA status: ``state`` only on services), and clients validate strictly. A tool
    that reads one source and never answers partially says ``partial=False``: its schema has
    no ``errors`` (tools/list stays under 40 KB).
    """
    item: dict[str, Any] = {"type": "object"}
    if item_props:
        item["properties"] = {k: {"type": [v, "null"]} for k, v in item_props.items()}
    props: dict[str, Any] = {
        "items": {"type": "array", "items": item},
        "count": {"type": "integer"},
    }
    if partial:
        props["errors"] = {"type": "array", "items": {"type": "string"}}
    return {"type": "object", "properties": props, "required": ["items", "count"]}


def compact_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Pydantic's JSON schema without titles and with ``X | None`` reduced to ``X``."""

    def walk(node: Any, names: bool = False) -> Any:
        if isinstance(node, dict):
            if names:  # a "properties" map: keys are argument names, not keywords
                return {k: walk(v) for k, v in node.items()}
            out = {}
            for k, v in node.items():
                if k == "title" and isinstance(v, str):
                    continue
                out[k] = walk(v, names=k in ("properties", "$defs"))
            any_of = out.get("anyOf")
            if isinstance(any_of, list):
                rest = [s for s in any_of if s != {"type": "null"}]
                if len(rest) == 1 and len(rest) < len(any_of):
                    del out["anyOf"]
                    out.update(rest[0])
            if out.get("default", 0) is None:
                del out["default"]
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    result: dict[str, Any] = walk(schema)
    return result
