"""Vendor a compact copy of the official PVE and PBS API schemas into the package.

Keeps, per path and method: parameters (type, required, enum, pattern, named format,
minimum/maximum, maxLength), the permission check and whether the method is protected.
Run from the repository root (the schemas live in ../shared/proxmox-api beside it):

    uv run python services/mcp-gateway/scripts/vendor_schema.py [--source DIR]
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "src" / "proxbus_mcp_gateway" / "data" / "api-schema.json.gz"
SOURCES = {"pve": "pve-9.1.json", "pbs": "pbs.json"}


def compact_param(spec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"t": spec.get("type", "string")}
    if not spec.get("optional"):
        out["r"] = 1
    if "enum" in spec:
        out["e"] = spec["enum"]
    if "pattern" in spec:
        out["p"] = spec["pattern"]
    fmt = spec.get("format")
    if isinstance(fmt, str):
        out["f"] = fmt
    for key, short in (("minimum", "min"), ("maximum", "max"), ("maxLength", "ml")):
        if key in spec:
            out[short] = spec[key]
    return out


def compact(schema: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, methods in sorted(schema.items()):
        entry: dict[str, Any] = {}
        for method, info in methods.items():
            if method not in ("GET", "POST", "PUT", "DELETE"):
                continue
            params = (info.get("parameters") or {}).get("properties") or {}
            m: dict[str, Any] = {"a": {k: compact_param(v) for k, v in sorted(params.items())}}
            extra = (info.get("parameters") or {}).get("additionalProperties")
            if extra:
                m["x"] = 1
            perms = info.get("permissions")
            if perms:
                m["perm"] = (
                    perms.get("check")
                    or perms.get("description")
                    or ("user" if perms.get("user") else None)
                )
            if info.get("protected"):
                m["prot"] = 1
            entry[method] = m
        if entry:
            out[path] = entry
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    default = HERE.parents[3] / "shared" / "proxmox-api"
    parser.add_argument("--source", type=Path, default=default)
    args = parser.parse_args()
    data = {"_source": {}, "pve": {}, "pbs": {}}
    for product, name in SOURCES.items():
        raw = json.loads((args.source / name).read_text(encoding="utf-8"))
        data[product] = compact(raw)
        data["_source"][product] = name
    text = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(gzip.compress(text, mtime=0))
    print(f"{OUT}: {len(text)} bytes json, {OUT.stat().st_size} bytes gzip")


if __name__ == "__main__":
    main()
