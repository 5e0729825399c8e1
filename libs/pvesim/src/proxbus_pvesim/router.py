"""Route table: path templates like the schema's, matched segment by segment."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import Call

Handler = Callable[["Call"], Awaitable[Any]]

# Last path parameters that take the rest of the path, slashes included: pve-manager
# PVE/API2/Storage/Status.pm mounts Content with ``fragmentDelimiter => ''`` because
# "volume IDs may contain a slash '/'".
GREEDY_PARAMS = frozenset({"volume"})


@dataclass(frozen=True, slots=True)
class Route:
    """One served ``method path``; ``reads`` lists the query/body parameters the handler uses."""

    method: str
    path: str
    handler: Handler
    reads: tuple[str, ...] = ()
    public: bool = False


@dataclass(slots=True)
class _TreeNode:
    literal: dict[str, _TreeNode] = field(default_factory=dict)
    param: tuple[str, _TreeNode] | None = None
    routes: dict[str, Route] = field(default_factory=dict)


class Router:
    """Resolve request paths to routes and path parameters."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = list(routes)
        self._root = _TreeNode()
        for r in self.routes:
            node = self._root
            for seg in r.path.strip("/").split("/"):
                if seg.startswith("{") and seg.endswith("}"):
                    if node.param is None:
                        node.param = (seg[1:-1], _TreeNode())
                    elif node.param[0] != seg[1:-1]:
                        raise ValueError(f"conflicting parameter names at {r.path}")
                    node = node.param[1]
                else:
                    node = node.literal.setdefault(seg, _TreeNode())
            if r.method in node.routes:
                raise ValueError(f"duplicate route {r.method} {r.path}")
            node.routes[r.method] = r

    def resolve(self, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        """Find the route for ``method path`` and the path parameters (None when unknown)."""
        return self.resolve_segments(method, path.strip("/").split("/"))

    def resolve_segments(
        self, method: str, segments: list[str]
    ) -> tuple[Route | None, dict[str, str]]:
        """Like :meth:`resolve` for a path already split into (decoded) segments."""
        node = self._root
        params: dict[str, str] = {}
        for i, seg in enumerate(segments):
            nxt = node.literal.get(seg)
            if nxt is None:
                if node.param is None or not seg:
                    return None, {}
                name, nxt = node.param
                if name in GREEDY_PARAMS and not nxt.literal and nxt.param is None:
                    # the rest of the path is this one parameter
                    params[name] = "/".join(segments[i:])
                    return nxt.routes.get(method), params
                params[name] = seg
            node = nxt
        return node.routes.get(method), params

    def signatures(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """``(method, path, reads)`` of every route, for the schema check."""
        return [(r.method, r.path, r.reads) for r in self.routes]
