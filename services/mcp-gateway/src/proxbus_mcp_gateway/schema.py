"""The vendored PVE/PBS API schema: resolve a path and validate parameters before any request."""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

from . import validate
from .errors import InvalidArgument, NotFound
from .registry import Scope

Product = Literal["pve", "pbs"]
_VAR_RE = re.compile(r"^\{([a-z0-9_-]+)\}$")
_SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9_.:@!=+-]{1,128}$")
_SEGMENT_CHECKS = {
    "node": validate.node_name,
    "vmid": validate.vmid,
    "storage": validate.storage_id,
    "upid": validate.upid,
    "snapname": validate.snapshot_name,
    "store": validate.datastore_name,
}
MAX_ARRAY = 64
_INT_RE = re.compile(r"^-?\d+$")
_NUM_RE = re.compile(r"^-?\d+(\.\d+)?$")
_BOOL = {"1": 1, "0": 0, "true": 1, "false": 0, "yes": 1, "no": 0, "on": 1, "off": 0}
_NAMED_FORMATS = {
    "pve-node": validate.NODE_RE,
    "pve-storage-id": validate.STORAGE_RE,
    "pve-vmid": re.compile(r"^[1-9]\d{2,8}$"),
    "pve-configid": re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]+$"),
}


@cache
def load() -> dict[str, dict[str, Any]]:
    """The compact schema (package data ``data/api-schema.json.gz``)."""
    raw = resources.files("proxbus_mcp_gateway.data").joinpath("api-schema.json.gz").read_bytes()
    data: dict[str, dict[str, Any]] = json.loads(gzip.decompress(raw))
    return data


@dataclass(slots=True, frozen=True)
class ResolvedCall:
    """A path matched against the schema, with its checked parameters."""

    product: Product
    template: str
    path: str
    method: str
    variables: dict[str, str]
    params: dict[str, Any]
    permission: Any

    @property
    def node(self) -> str | None:
        return self.variables.get("node")

    @property
    def vmid(self) -> int | None:
        v = self.variables.get("vmid")
        return int(v) if v is not None else None


@cache
def _templates(product: Product) -> list[tuple[list[str], str]]:
    return [(t.strip("/").split("/") if t != "/" else [], t) for t in load()[product]]


def match_path(product: Product, path: str) -> tuple[str, dict[str, str]]:
    """Find the schema template for a concrete path; variables are validated.

    Raises:
        InvalidArgument: the path is malformed or a variable is invalid.
        NotFound: no such path in the schema.
    """
    clean = validate.api_path(path)
    segments = clean.strip("/").split("/") if clean != "/" else []
    best: tuple[int, str, dict[str, str]] | None = None
    for parts, template in _templates(product):
        if len(parts) != len(segments):
            continue
        variables: dict[str, str] = {}
        literal = 0
        for part, seg in zip(parts, segments, strict=True):
            m = _VAR_RE.match(part)
            if m:
                variables[m.group(1)] = seg
            elif part == seg:
                literal += 1
            else:
                break
        else:
            if best is None or literal > best[0]:
                best = (literal, template, variables)
    if best is None:
        raise NotFound(f"{clean} is not a {product.upper()} API path (checked against the schema)")
    _, template, variables = best
    for name, value in variables.items():
        check = _SEGMENT_CHECKS.get(name)
        if check is not None:
            check(value)
        elif not _SAFE_SEGMENT.fullmatch(value):
            raise InvalidArgument(f"invalid value {value!r} for {{{name}}} in {template}")
    return template, variables


def resolve(
    product: Product, method: str, path: str, params: dict[str, Any] | None
) -> ResolvedCall:
    """Validate a raw API call against the schema.

    Raises:
        InvalidArgument: unknown or invalid parameter, missing required one.
        NotFound: unknown path or method.
    """
    method = method.upper()
    template, variables = match_path(product, path)
    spec = load()[product][template].get(method)
    if spec is None:
        allowed = ", ".join(sorted(load()[product][template]))
        raise NotFound(f"{method} is not allowed on {template} (allowed: {allowed})")
    args: dict[str, Any] = spec.get("a", {})
    given = dict(params or {})
    out: dict[str, Any] = {}
    for name, value in given.items():
        if name in variables:
            if str(value) != variables[name]:
                raise InvalidArgument(f"parameter {name} conflicts with the path")
            continue
        pspec = args.get(name)
        if pspec is None:
            if spec.get("x"):
                out[name] = _scalar(name, value)
                continue
            known = ", ".join(k for k in sorted(args) if k not in variables) or "none"
            raise InvalidArgument(
                f"unknown parameter {name!r} for {method} {template} (known: {known})"
            )
        out[name] = check_param(name, value, pspec)
    missing = [n for n, p in args.items() if p.get("r") and n not in variables and n not in out]
    if missing:
        raise InvalidArgument(
            f"missing required parameter(s) for {method} {template}: " + ", ".join(sorted(missing))
        )
    return ResolvedCall(
        product,
        template,
        "/" + "/".join(path.strip("/").split("/")) if path != "/" else "/",
        method,
        variables,
        out,
        spec.get("perm"),
    )


def _scalar(name: str, value: Any) -> Any:
    if isinstance(value, bool | int | float | str):
        return value
    raise InvalidArgument(f"parameter {name} must be a scalar")


def check_param(name: str, value: Any, spec: dict[str, Any]) -> Any:
    """One parameter against its compact spec; returns the value to send.

    Raises:
        InvalidArgument: wrong type, out of range, not in the enum, pattern mismatch.
    """
    kind = spec.get("t", "string")
    if kind == "boolean":
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int) and value in (0, 1):
            return value
        if isinstance(value, str) and value.lower() in _BOOL:
            return _BOOL[value.lower()]
        raise InvalidArgument(f"parameter {name} must be a boolean")
    if kind in ("integer", "number"):
        if isinstance(value, bool):
            raise InvalidArgument(f"parameter {name} must be a {kind}")
        if isinstance(value, str):
            pat = _INT_RE if kind == "integer" else _NUM_RE
            if not pat.fullmatch(value.strip()):
                raise InvalidArgument(f"parameter {name} must be a {kind}")
            value = int(value) if kind == "integer" else float(value)
        if not isinstance(value, int | float) or (kind == "integer" and not isinstance(value, int)):
            raise InvalidArgument(f"parameter {name} must be a {kind}")
        if "min" in spec and value < spec["min"]:
            raise InvalidArgument(f"parameter {name} must be >= {spec['min']}")
        if "max" in spec and value > spec["max"]:
            raise InvalidArgument(f"parameter {name} must be <= {spec['max']}")
        return value
    if kind == "array":
        # e.g. the guest agent's exec ``command``: sent as repeated form fields, as pvesh does.
        items = value if isinstance(value, list) else [value]
        if not items or len(items) > MAX_ARRAY:
            raise InvalidArgument(f"parameter {name} must be a list of 1 to {MAX_ARRAY} values")
        out = []
        for item in items:
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                raise InvalidArgument(f"parameter {name} must be a list of strings or numbers")
            if any(c in str(item) for c in "\x00\r\n"):
                raise InvalidArgument(f"parameter {name} contains control characters")
            out.append(str(item))
        return out
    if kind == "object":
        raise InvalidArgument(f"parameter {name}: object parameters are not supported here")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidArgument(f"parameter {name} must be a string")
    text = str(value)
    if any(c in text for c in "\x00\r\n") and name not in ("description", "comment", "notes"):
        raise InvalidArgument(f"parameter {name} contains control characters")
    if "ml" in spec and len(text) > spec["ml"]:
        raise InvalidArgument(f"parameter {name} is longer than {spec['ml']} characters")
    if "e" in spec and text not in [str(e) for e in spec["e"]]:
        raise InvalidArgument(f"parameter {name} must be one of: " + ", ".join(map(str, spec["e"])))
    fmt = spec.get("f")
    if fmt in _NAMED_FORMATS and not _NAMED_FORMATS[fmt].fullmatch(text):
        raise InvalidArgument(f"parameter {name} is not a valid {fmt}")
    pattern = spec.get("p")
    if pattern:
        compiled = _compile(pattern)
        if compiled is not None and not compiled.fullmatch(text):
            raise InvalidArgument(f"parameter {name} does not match {pattern}")
    return text


@cache
def _compile(pattern: str) -> re.Pattern[str] | None:
    """The schema's pattern as a Python regex, or None when it cannot be translated.

    PBS writes patterns as ``/^...$/`` (JavaScript-style delimiters, proxmox-schema's
    ``ApiStringFormat::Pattern`` display), PVE as Perl's stringified ``qr//`` (``(?^:...)``),
    and both products use POSIX classes (``[:cntrl:]``) inside brackets.
    """
    if len(pattern) >= 2 and pattern.startswith("/") and pattern.endswith("/"):
        pattern = pattern[1:-1]
    # PVE's schema holds Perl's stringified ``qr//``: ``(?^:...)`` / ``(?^i:...)`` (the caret
    # resets the flags) -> Python's scoped groups ``(?:...)`` / ``(?i:...)``.
    pattern = _PERL_GROUP.sub(lambda m: f"(?{m.group(1)}:" if m.group(1) else "(?:", pattern)
    for posix, python in _POSIX_CLASSES.items():
        # ``[[:^cntrl:]]`` (negated, PBS: Rust regex syntax) is a set of its own.
        negated = "[[:^" + posix[2:] + "]"
        pattern = pattern.replace(negated, f"[^{python}]")
        pattern = pattern.replace(posix, python)
    try:
        return re.compile(pattern)
    except re.error:
        return None


_PERL_GROUP = re.compile(r"\(\?\^([imsx]*):")
_POSIX_CLASSES = {
    "[:cntrl:]": r"\x00-\x1f\x7f",
    "[:alpha:]": "A-Za-z",
    "[:digit:]": "0-9",
    "[:alnum:]": "A-Za-z0-9",
    "[:space:]": r"\s",
    "[:xdigit:]": "0-9A-Fa-f",
}


def required_scope(call: ResolvedCall) -> Scope:
    """``read`` / ``operate`` / ``admin`` from the method and the schema's permission data
    (:mod:`.api_scopes`)."""
    from .api_scopes import required_scope as scope_for

    return scope_for(call.product, call.method, call.template, call.permission)
