"""Vendor the parameter names (and enums) of every official PVE 8.4 / 9.1 and PBS API method
for the gateway's tests (``tests/data/official-params.json.gz``).

The tests check that what the dedicated tools send exists in every Proxmox version the
gateway supports; they must run on a clean checkout, where ``../shared/proxmox-api`` (the
official schemas) is not present. Run from the repository root after the schemas change:

    uv run python services/mcp-gateway/scripts/vendor_official_params.py [--source DIR]
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "tests" / "data" / "official-params.json.gz"
FILES = ("pve-8.4.json", "pve-9.1.json", "pbs.json")


def methods(schema: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The schema's shape (``{path: {method: {parameters: {properties: ...}}}}``), each
    parameter reduced to its ``enum`` if it has one."""
    out: dict[str, Any] = {}
    for path, by_method in schema.items():
        for method, info in by_method.items():
            if not isinstance(info, dict):
                continue
            props = (info.get("parameters") or {}).get("properties") or {}
            kept = {p: ({"enum": s["enum"]} if "enum" in s else {}) for p, s in props.items()}
            out.setdefault(path, {})[method] = {"parameters": {"properties": kept}}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    default = HERE.parents[2].parent / "shared" / "proxmox-api"
    parser.add_argument("--source", type=Path, default=default)
    args = parser.parse_args()
    data = {name: methods(json.loads((args.source / name).read_text())) for name in FILES}
    raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(gzip.compress(raw, mtime=0))
    print(f"{OUT}: {len(raw)} bytes, {OUT.stat().st_size} gzipped")


if __name__ == "__main__":
    main()
