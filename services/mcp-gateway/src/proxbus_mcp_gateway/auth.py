"""Callers and what they may do: scopes (read < operate < admin) and allowlists."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from .config import SCOPES, TokenSpec
from .errors import Forbidden

_RANK = {s: i for i, s in enumerate(SCOPES)}


def expand_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """``admin`` implies ``operate`` implies ``read``."""
    top = max((_RANK[s] for s in scopes if s in _RANK), default=-1)
    return frozenset(SCOPES[: top + 1])


def parse_scopes(text: str) -> frozenset[str]:
    """``read+operate`` -> expanded scope set (unknown names ignored)."""
    return expand_scopes(s.strip() for s in text.replace(",", "+").split("+"))


@dataclass(slots=True, frozen=True)
class Caller:
    """Who is calling, through which transport, and what it may touch."""

    name: str
    scopes: frozenset[str]
    transport: str = "mcp"
    token: TokenSpec | None = None

    @classmethod
    def from_token(cls, token: TokenSpec, transport: str) -> Caller:
        return cls(token.name, expand_scopes(token.scopes), transport, token)

    def require_scope(self, scope: str, what: str) -> None:
        """Raises:
        Forbidden: the caller lacks ``scope``.
        """
        if scope not in self.scopes:
            have = "+".join(s for s in SCOPES if s in self.scopes) or "none"
            raise Forbidden(
                f"forbidden: {what} needs the '{scope}' scope; caller '{self.name}' has {have}"
            )

    def require_tool(self, tool: str) -> None:
        if self.token and self.token.tools is not None and tool not in self.token.tools:
            raise Forbidden(f"forbidden: tool {tool} is not in the allowlist of '{self.name}'")

    def require_cluster(self, cluster: str) -> None:
        if self.token and self.token.clusters is not None and cluster not in self.token.clusters:
            raise Forbidden(
                f"forbidden: cluster {cluster} is not in the allowlist of '{self.name}'"
            )

    def cluster_allowed(self, cluster: str) -> bool:
        return self.token is None or self.token.clusters is None or cluster in self.token.clusters

    def require_node(self, node: str) -> None:
        if not self.node_allowed(node):
            raise Forbidden(f"forbidden: node {node} is not in the allowlist of '{self.name}'")

    def require_vmid(self, vmid: int) -> None:
        if not self.vmid_allowed(vmid):
            raise Forbidden(f"forbidden: guest {vmid} is not in the allowlist of '{self.name}'")

    def node_allowed(self, node: str | None) -> bool:
        if self.token is None or self.token.nodes is None:
            return True
        return node is not None and node in self.token.nodes

    def vmid_allowed(self, vmid: int | None) -> bool:
        if self.token is None or self.token.vmids is None:
            return True
        return vmid is not None and any(lo <= vmid <= hi for lo, hi in self.token.vmids)

    @property
    def allowlist_key(self) -> Hashable:
        """What ``node_allowed`` / ``vmid_allowed`` depend on (for memoized filtered results)."""
        return None if self.token is None else (self.token.nodes, self.token.vmids)

    @property
    def restricted(self) -> bool:
        """True when node or vmid allowlists apply (cluster-wide raw paths are then refused)."""
        return self.token is not None and (
            self.token.nodes is not None or self.token.vmids is not None
        )


class TokenTable:
    """Bearer secrets -> callers (constant-time compare against every token)."""

    def __init__(self, tokens: Iterable[TokenSpec]) -> None:
        self.tokens = list(tokens)

    def __bool__(self) -> bool:
        return bool(self.tokens)

    def lookup(self, secret: str, transport: str) -> Caller | None:
        found = None
        for token in self.tokens:
            if token.matches(secret):
                found = token
        return Caller.from_token(found, transport) if found else None
