"""The ``routes.yaml`` model: receivers, the route tree and inhibit rules.

Invalid files fail with ``ConfigError`` naming the file, the line of the failing key and the
reason (YAML node marks map pydantic's error locations back to lines).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from jinja2 import TemplateSyntaxError
from proxbus_events import Matcher, Severity
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .durations import Duration
from .errors import ConfigError
from .templates import compile_template

GROUP_LABELS = frozenset(
    {"site", "node", "source", "kind", "severity", "vmid", "fingerprint", "title", "correlation_id"}
)
ALL_LABELS = "..."
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _parse_matchers(value: Any) -> Any:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return value
    out = []
    for v in value:
        if not isinstance(v, str):
            out.append(v)
            continue
        try:
            out.append(Matcher.parse(v))
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ValueError(f"invalid matcher {v!r}: {err['msg']}") from None
        except ValueError as exc:
            raise ValueError(f"invalid matcher {v!r}: {exc}") from None
    return out


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class ReceiverBase(_Strict):
    """Options every receiver has: templates, limits and retry policy."""

    name: str = Field(pattern=r"^[a-z0-9_-]{1,64}$")
    title_template: str | None = None
    body_template: str | None = None
    concurrency: int = Field(default=4, ge=1, le=256)
    rate_limit: float | None = Field(default=None, gt=0, description="notifications per second")
    max_attempts: int = Field(default=10, ge=1, le=1000)
    max_age: Duration = 24 * 3600.0
    backoff_base: Duration = 1.0
    backoff_max: Duration = 300.0
    timeout: Duration = 10.0

    @field_validator("title_template", "body_template")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                compile_template(value)
            except TemplateSyntaxError as exc:
                raise ValueError(
                    f"template error at template line {exc.lineno}: {exc.message}"
                ) from exc
        return value


class DiscordReceiver(ReceiverBase):
    type: Literal["discord"]
    url: str = Field(pattern=r"^https?://")
    username: str = "proxbus"
    avatar_url: str | None = None


DEFAULT_GOTIFY_PRIORITIES: dict[Severity, int] = {
    Severity.DEBUG: 0,
    Severity.INFO: 2,
    Severity.NOTICE: 4,
    Severity.WARNING: 5,
    Severity.ERROR: 8,
    Severity.CRITICAL: 10,
}


class GotifyReceiver(ReceiverBase):
    type: Literal["gotify"]
    url: str = Field(pattern=r"^https?://")
    token: str = Field(min_length=1)
    priorities: dict[Severity, int] = Field(default_factory=lambda: dict(DEFAULT_GOTIFY_PRIORITIES))
    markdown: bool = True


class WebhookReceiver(ReceiverBase):
    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")
    secret: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)


class EmailReceiver(ReceiverBase):
    type: Literal["email"]
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    security: Literal["starttls", "tls", "none"] = "starttls"
    validate_certs: bool = True
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1)

    @field_validator("to", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return (
            [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        )


class AppriseReceiver(ReceiverBase):
    type: Literal["apprise"]
    urls: list[str] = Field(min_length=1)

    @field_validator("urls", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return (
            [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        )


class NatsReceiver(ReceiverBase):
    type: Literal["nats"]
    subject: str = Field(pattern=r"^[^\s*>]+$")


ReceiverConfig = Annotated[
    DiscordReceiver
    | GotifyReceiver
    | WebhookReceiver
    | EmailReceiver
    | AppriseReceiver
    | NatsReceiver,
    Field(discriminator="type"),
]


class RouteConfig(_Strict):
    """One node of the route tree as written; unset timing/grouping is inherited."""

    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    receiver: str | None = None
    matchers: Annotated[list[Matcher], Field(default_factory=list)]
    continue_: bool = Field(default=False, alias="continue")
    group_by: list[str] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    routes: list[RouteConfig] = Field(default_factory=list)

    @field_validator("matchers", mode="before")
    @classmethod
    def _split_matchers(cls, value: Any) -> Any:
        return _parse_matchers(value)

    @field_validator("group_by")
    @classmethod
    def _labels(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return value
        if ALL_LABELS in value and len(value) > 1:
            raise ValueError("'...' must be the only label when used")
        for label in value:
            if label != ALL_LABELS and label not in GROUP_LABELS:
                raise ValueError(
                    f"unknown label {label!r} (one of {', '.join(sorted(GROUP_LABELS))} or '...')"
                )
        return value


class InhibitRuleConfig(_Strict):
    """A source event mutes target events that share the ``equal`` labels, for ``duration``."""

    source_matchers: list[Matcher] = Field(min_length=1)
    target_matchers: list[Matcher] = Field(min_length=1)
    equal: list[str] = Field(default_factory=list)
    duration: Duration = 3600.0
    resolve_matchers: list[Matcher] = Field(default_factory=list)

    @field_validator("source_matchers", "target_matchers", "resolve_matchers", mode="before")
    @classmethod
    def _split_matchers(cls, value: Any) -> Any:
        return _parse_matchers(value)

    @field_validator("equal")
    @classmethod
    def _labels(cls, value: list[str]) -> list[str]:
        for label in value:
            if label not in GROUP_LABELS:
                raise ValueError(f"unknown label {label!r}")
        return value


class RoutesFile(_Strict):
    """The whole file."""

    receivers: list[ReceiverConfig] = Field(min_length=1)
    route: RouteConfig
    inhibit_rules: list[InhibitRuleConfig] = Field(default_factory=list)
    max_events_per_notification: int = Field(default=50, ge=1, le=500)


# --- resolved (inherited) tree -------------------------------------------------------------


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


def _resolve(cfg: RouteConfig, parent: Route | None, route_id: str) -> Route:
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
    route.routes = [_resolve(child, route, f"{route_id}.{i}") for i, child in enumerate(cfg.routes)]
    return route


# --- loading with line numbers -------------------------------------------------------------


def _expand_env(value: Any, loc: tuple[Any, ...], errors: list[tuple[tuple[Any, ...], str]]) -> Any:
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                errors.append((loc, f"environment variable {name} is not set"))
                return ""
            return os.environ[name]

        return _ENV_REF.sub(sub, value)
    if isinstance(value, list):
        return [_expand_env(v, (*loc, i), errors) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _expand_env(v, (*loc, k), errors) for k, v in value.items()}
    return value


def _line_of(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the YAML node at ``loc`` (or its nearest existing ancestor)."""
    node = root
    if node is None:
        return None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == part:
                    node = value_node
                    break
            else:
                continue  # a pydantic-only component (union tag) or a missing key
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if 0 <= part < len(node.value):
                node = node.value[part]
            else:
                break
    return int(node.start_mark.line) + 1


def _key_line(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """Line of the *key* at ``loc`` when it exists (a value may start on the next line)."""
    if root is None or not loc:
        return _line_of(root, loc)
    parent_line = _line_of(root, loc[:-1])
    node = root
    for part in loc[:-1]:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), node)
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
    if isinstance(node, yaml.MappingNode):
        for key_node, _ in node.value:
            if key_node.value == loc[-1]:
                return int(key_node.start_mark.line) + 1
    return _line_of(root, loc) or parent_line


def _fmt_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse_config(text: str, path: str = "<routes.yaml>") -> DispatcherConfig:
    """Validate a routes file's text into a ``DispatcherConfig``.

    Raises:
        ConfigError: YAML syntax, schema or consistency errors, with the line.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ConfigError(f"YAML syntax: {exc.problem}", path=path, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML syntax: {exc}", path=path) from None
    if not isinstance(data, dict):
        raise ConfigError("the file must be a mapping with receivers and route", path=path, line=1)
    env_errors: list[tuple[tuple[Any, ...], str]] = []
    data = _expand_env(data, (), env_errors)
    if env_errors:
        loc, reason = env_errors[0]
        raise ConfigError(f"{_fmt_loc(loc)}: {reason}", path=path, line=_key_line(node, loc))
    try:
        model = RoutesFile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{_fmt_loc(loc)}: {msg}", path=path, line=_key_line(node, loc)) from None
    return _build(model, node, path)


def _build(model: RoutesFile, node: yaml.Node | None, path: str) -> DispatcherConfig:
    def fail(loc: tuple[Any, ...], reason: str) -> ConfigError:
        return ConfigError(f"{_fmt_loc(loc)}: {reason}", path=path, line=_key_line(node, loc))

    receivers: dict[str, ReceiverBase] = {}
    for i, receiver in enumerate(model.receivers):
        if receiver.name in receivers:
            raise fail(("receivers", i, "name"), f"duplicate receiver name {receiver.name!r}")
        receivers[receiver.name] = receiver
    if model.route.matchers:
        raise fail(
            ("route", "matchers"), "the root route must not have matchers (it takes every event)"
        )
    if not model.route.receiver:
        raise fail(("route",), "the root route needs a receiver")

    def check(cfg: RouteConfig, loc: tuple[Any, ...]) -> None:
        if cfg.receiver is not None and cfg.receiver not in receivers:
            raise fail((*loc, "receiver"), f"unknown receiver {cfg.receiver!r}")
        for i, child in enumerate(cfg.routes):
            check(child, (*loc, "routes", i))

    check(model.route, ("route",))
    root = _resolve(model.route, None, "root")
    seen: set[str] = set()
    stack = [root]
    while stack:
        route = stack.pop()
        if route.id in seen:
            raise fail(("route",), f"duplicate route name {route.id!r}")
        seen.add(route.id)
        stack.extend(route.routes)
    return DispatcherConfig(
        receivers=receivers,
        root=root,
        inhibit_rules=list(model.inhibit_rules),
        max_events_per_notification=model.max_events_per_notification,
    )


def load_config(path: Path) -> DispatcherConfig:
    """Read and validate a routes file.

    Raises:
        ConfigError: unreadable or invalid, with the line and reason.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", path=str(path)) from None
    return parse_config(text, str(path))
