"""The resolved configuration the dispatcher runs with (Alertmanager's ``dispatch/route.go``):
every route with its inherited settings filled in, receivers by name."""

from __future__ import annotations

from dataclasses import dataclass, field

from proxbus_events import Matcher

from ..notifiers import ReceiverBase
from .schema import ALL_LABELS, InhibitRuleConfig, RouteConfig


@dataclass(slots=True, eq=False)
class Route:
    """A route with every inherited setting filled in; ``id`` names it in group keys."""

    id: str
    receiver: str
    matchers: tuple[Matcher, ...] = ()
    continue_: bool = False
    group_by: tuple[str, ...] = (ALL_LABELS,)
    group_wait: float = 0.0
    group_interval: float = 300.0
    repeat_interval: float = 4 * 3600.0
    routes: list[Route] = field(default_factory=list)

    @property
    def groups_all(self) -> bool:
        """True when every event is its own group (``group_by: ['...']``)."""
        return self.group_by == (ALL_LABELS,)


@dataclass(slots=True)
class DispatcherConfig:
    """What the dispatcher runs with: receivers by name, the root route, inhibit rules."""

    receivers: dict[str, ReceiverBase]
    root: Route
    inhibit_rules: list[InhibitRuleConfig] = field(default_factory=list)
    max_events_per_notification: int = 50

    def iter_routes(self) -> list[Route]:
        out: list[Route] = []
        stack = [self.root]
        while stack:
            route = stack.pop()
            out.append(route)
            stack.extend(reversed(route.routes))
        return out


def resolve_route(cfg: RouteConfig, parent: Route | None, route_id: str) -> Route:
    """``cfg`` and its children with unset keys inherited from ``parent``."""
    base = parent or Route(id="", receiver="")
    route = Route(
        id=cfg.name or route_id,
        receiver=cfg.receiver or base.receiver,
        matchers=tuple(cfg.matchers),
        continue_=cfg.continue_,
        group_by=tuple(cfg.group_by) if cfg.group_by is not None else base.group_by,
        group_wait=cfg.group_wait if cfg.group_wait is not None else base.group_wait,
        group_interval=cfg.group_interval
        if cfg.group_interval is not None
        else base.group_interval,
        repeat_interval=(
            cfg.repeat_interval if cfg.repeat_interval is not None else base.repeat_interval
        ),
    )
    route.routes = [
        resolve_route(child, route, f"{route_id}.{i}") for i, child in enumerate(cfg.routes)
    ]
    return route
