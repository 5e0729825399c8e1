"""The vendored official API schema: parameter validation and route-vs-schema checks."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from ..errors import ApiError

_BOOL = {
    "1": True,
    "0": False,
    "true": True,
    "false": False,
    "yes": True,
    "no": False,
    "on": True,
    "off": False,
}
_FORMATS: dict[str, tuple[re.Pattern[str], str]] = {
    "pve-node": (
        re.compile(r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?"),
        "value does not look like a valid node name",
    ),
    "pve-configid": (re.compile(r"[a-z][a-z0-9_]+", re.I), "invalid configuration ID"),
    "pve-storage-id": (
        re.compile(r"[a-z][a-z0-9\-_.]*[a-z0-9]", re.I),
        "storage ID contains illegal characters",
    ),
    "pve-vmid-list": (re.compile(r"\d+([,;\s]+\d+)*"), "value does not look like a valid VM ID"),
    "pve-realm": (
        re.compile(r"[A-Za-z][A-Za-z0-9.\-_]+"),
        "value does not look like a valid realm",
    ),
    "pve-storage-content": (
        re.compile(r"images|rootdir|vztmpl|iso|backup|snippets|import"),
        "invalid content type",
    ),
    # pve-common src/PVE/JSONSchema.pm pve_verify_dns_name: dot-joined labels.
    "dns-name": (
        re.compile(
            r"([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?\.)*[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?"
        ),
        "value does not look like a valid DNS name",
    ),
    "pve-storage-content-list": (
        re.compile(
            r"(images|rootdir|vztmpl|iso|backup|snippets|import|none)"
            r"(,(images|rootdir|vztmpl|iso|backup|snippets|import))*"
        ),
        "invalid content type",
    ),
}
_BAD_FORMAT = "invalid format - "
_INDEXED = re.compile(r"\d+$")
_POSIX = {
    "[:cntrl:]": r"\x00-\x1f\x7f",
    "[:^cntrl:]": r"^\x00-\x1f\x7f",
    "[:alpha:]": "a-zA-Z",
    "[:alnum:]": "a-zA-Z0-9",
    "[:digit:]": "0-9",
}


@cache
def load_schema(product: str) -> dict[str, dict[str, Any]]:
    """Load the vendored schema subset for ``pve`` or ``pbs`` (package data)."""
    text = resources.files("proxbus_pvesim.schema").joinpath(f"{product}.json").read_text("utf-8")
    data: dict[str, dict[str, Any]] = json.loads(text)
    return data


def _compile(pattern: str) -> re.Pattern[str] | None:
    if pattern.startswith("/") and pattern.endswith("/") and len(pattern) > 1:
        pattern = pattern[1:-1]
    pattern = pattern.replace("(?^:", "(?:").replace("(?^i:", "(?i:")
    for posix, py in _POSIX.items():
        pattern = pattern.replace(posix, py)
    try:
        return re.compile(pattern)
    except re.error:
        return None


@dataclass(slots=True)
class ParamSpec:
    """Validation rules of one parameter, compiled from the schema."""

    name: str
    type: str
    optional: bool
    enum: tuple[str, ...] | None
    pattern: re.Pattern[str] | None
    fmt: str | None
    minimum: float | None
    maximum: float | None
    max_length: int | None
    min_length: int | None = None
    requires: str | None = None
    # a property string (``scsi0: local-lvm:32,iothread=1``): its keys' schemas
    props: Mapping[str, Any] | None = None

    def check(self, raw: Any, name: str | None = None) -> Any:
        """Coerce and check one value; return it typed or raise ``ValueError`` with PVE wording.

        ``name`` is the parameter as sent (``scsi0`` for the schema's ``scsi[n]``).
        """
        if self.type == "array":
            items = raw if isinstance(raw, list) else [raw]
            if any(isinstance(i, (dict, list)) for i in items):
                raise ValueError("type check ('string') failed - got a nested structure")
            return [str(i) for i in items]
        if isinstance(raw, list):
            # A repeated parameter that is not an array: pve-http-server decode_urlencoded joins
            # the values with NUL ("like CGI.pm") and the type check sees that one string.
            raw = "\0".join(str(i) for i in raw)
        if self.type == "boolean":
            if isinstance(raw, bool):
                return raw
            v = _BOOL.get(str(raw).lower())
            if v is None:
                raise ValueError(f"type check ('boolean') failed - got '{raw}'")
            return v
        if self.type in ("integer", "number"):
            try:
                num: float = int(str(raw)) if self.type == "integer" else float(str(raw))
            except ValueError:
                raise ValueError(f"type check ('{self.type}') failed - got '{raw}'") from None
            if self.fmt == "pve-vmid" and not 100 <= num <= 999999999:
                raise ValueError(f"{_BAD_FORMAT}value does not look like a valid VM ID\n")
            if self.minimum is not None and num < self.minimum:
                raise ValueError(f"value must have a minimum value of {self.minimum:g}")
            if self.maximum is not None and num > self.maximum:
                raise ValueError(f"value must have a maximum value of {self.maximum:g}")
            return num
        s = str(raw)
        # pve-common JSONSchema.pm check_prop: format, then pattern, then maxLength, then enum;
        # a format error reads "invalid format - <reason>\n".
        rule = _FORMATS.get(self.fmt or "")
        if rule is not None and not rule[0].fullmatch(s):
            raise ValueError(f"{_BAD_FORMAT}{rule[1]}\n")
        if self.pattern is not None and not self.pattern.fullmatch(s):
            raise ValueError("value does not match the regex pattern")
        if self.props is not None:
            problem = _property_string_problem(name or self.name, self.props, s)
            if problem is not None:
                raise ValueError(f"{_BAD_FORMAT}{problem}")
        if self.max_length is not None and len(s) > self.max_length:
            raise ValueError(f"value may only be {self.max_length} characters long")
        if self.min_length is not None and len(s) < self.min_length:
            raise ValueError(f"value must be at least {self.min_length} characters long")
        if self.enum is not None and s not in self.enum:
            raise ValueError(
                f"value '{s}' does not have a value in the enumeration '{', '.join(self.enum)}'"
            )
        return s


def _property_string_problem(name: str, fmt: Mapping[str, Any], text: str) -> str | None:
    """What pve-common ``parse_property_string`` (src/PVE/JSONSchema.pm) objects to in
    ``text``, worded as its ``die`` / ``raise "format error"`` (None when it parses)."""
    default_key = next((k for k, v in fmt.items() if v.get("default_key")), None)
    res: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        m = re.fullmatch(r"([^=]+)=(.+)", part, re.S)
        if m is not None:
            key, value = m.group(1), m.group(2)
            if key in res:
                return f"duplicate key in comma-separated list property: {key}\n"
            schema = fmt.get(key)
            if schema is not None and schema.get("alias"):
                if schema.get("keyAlias"):
                    res[str(schema["keyAlias"])] = key
                key = str(schema["alias"])
                schema = fmt.get(key)
            if schema is None:
                return f"invalid key in comma-separated list property: {key}\n"
            res[key] = value
        elif "=" not in part:
            if default_key is None:
                return "value without key, but schema does not define a default key\n"
            if default_key in res:
                return f"duplicate key in comma-separated list property: {default_key}\n"
            res[default_key] = part
        else:
            return "missing key in comma-separated list property\n"
    errors = []
    for key, schema in fmt.items():
        if schema.get("alias"):
            continue
        if key not in res:
            if not schema.get("optional") and "default" not in schema:
                errors.append(f"{name}.{key}: property is missing and it is not optional")
            continue
        try:
            _spec(key, schema).check(res[key])
        except ValueError as exc:
            errors.append(f"{name}.{key}: {str(exc).rstrip()}")
    if errors:
        return "format error\n" + "".join(e + "\n" for e in errors)
    return None


def _spec(name: str, p: Mapping[str, Any]) -> ParamSpec:
    fmt = p.get("format")
    pattern = p.get("pattern")
    requires = p.get("requires")
    return ParamSpec(
        name=name,
        type=str(p.get("type", "string")),
        optional=bool(p.get("optional")) or "default" in p,
        enum=tuple(str(e) for e in p["enum"]) if "enum" in p else None,
        pattern=_compile(pattern) if isinstance(pattern, str) else None,
        fmt=fmt if isinstance(fmt, str) else None,
        minimum=p.get("minimum"),
        maximum=p.get("maximum"),
        max_length=p.get("maxLength"),
        min_length=p.get("minLength"),
        requires=requires if isinstance(requires, str) else None,
        props=fmt if isinstance(fmt, Mapping) else None,
    )


class MethodSchema:
    """Parameters and permissions of one ``path`` + ``method`` from the schema."""

    def __init__(self, path: str, method: str, entry: Mapping[str, Any]) -> None:
        self.path = path
        self.method = method
        params = entry.get("parameters") or {}
        self.additional = bool(params.get("additionalProperties"))
        self.params = {n: _spec(n, p) for n, p in (params.get("properties") or {}).items()}
        self.permissions: Mapping[str, Any] = entry.get("permissions") or {}

    def validate(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Return typed parameters or raise a 400 with per-parameter errors like Proxmox."""
        errors: dict[str, str] = {}
        out: dict[str, Any] = {}
        for name, value in raw.items():
            spec = self.params.get(name)
            if spec is None and name[-1:].isdigit():
                # indexed options (net0, scsi1, mp2) are declared once as net[n], scsi[n]...
                spec = self.params.get(_INDEXED.sub("[n]", name))
            if spec is None:
                if not self.additional:
                    errors[name] = (
                        "property is not defined in schema and the schema does "
                        "not allow additional properties"
                    )
                continue
            try:
                out[name] = spec.check(value, name)
            except ValueError as exc:
                errors[name] = str(exc)
        for name, spec in self.params.items():
            if not spec.optional and name not in raw:
                errors[name] = "property is missing and it is not optional"
        for name in raw:
            spec = self.params.get(name) or self.params.get(_INDEXED.sub("[n]", name))
            if spec is not None and spec.requires and spec.requires not in raw:
                # JSONSchema.pm check_object: "missing property - '<name>' requires this property"
                errors.setdefault(
                    spec.requires, f"missing property - '{name}' requires this property"
                )
        if errors:
            raise ApiError(400, "Parameter verification failed.", errors)
        return out


class SchemaIndex:
    """Compiled lookups over one product's vendored schema."""

    def __init__(self, product: str, data: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.product = product
        self.data = data if data is not None else load_schema(product)
        self._compiled: dict[tuple[str, str], MethodSchema] = {}

    def method(self, path: str, method: str) -> MethodSchema | None:
        """The compiled schema of ``method path`` or None when the schema lacks it."""
        key = (path, method)
        hit = self._compiled.get(key)
        if hit is None:
            entry = self.data.get(path, {}).get(method)
            if entry is None:
                return None
            hit = self._compiled[key] = MethodSchema(path, method, entry)
        return hit


def route_problems(
    routes: Iterable[tuple[str, str, Iterable[str]]], index: SchemaIndex
) -> list[str]:
    """Check served routes ``(method, path, params_read)`` against the schema; list what is wrong."""
    problems = []
    for method, path, reads in routes:
        ms = index.method(path, method)
        if ms is None:
            problems.append(f"{method} {path}: not in the {index.product} schema")
            continue
        problems.extend(
            f"{method} {path}: parameter {name!r} not in the schema"
            for name in reads
            if name not in ms.params
        )
    return problems
