"""Reading ``routes.yaml``: ``${VAR}`` expansion, YAML line mapping, validation.

Invalid files fail with ``ConfigError`` naming the file, the line of the failing key and the
reason (YAML node marks map pydantic's error locations back to lines).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import ConfigError
from ..notifiers import ReceiverBase
from .resolved import DispatcherConfig, resolve_route
from .schema import RouteConfig, RoutesFile

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


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
    root = resolve_route(model.route, None, "root")
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
