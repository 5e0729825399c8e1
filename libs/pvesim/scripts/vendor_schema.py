"""Regenerate src/proxbus_pvesim/schema/{pve,pbs}.json from the official API schemas.

Usage: uv run python libs/pvesim/scripts/vendor_schema.py [SHARED_DIR]
(default SHARED_DIR: ../shared/proxmox-api relative to the repository, or /work/shared/proxmox-api)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from proxbus_pvesim.simulator import pbs_routes, pve_routes

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "src" / "proxbus_pvesim" / "schema"


def _source_dir(argv: list[str]) -> Path:
    if len(argv) > 1:
        return Path(argv[1])
    for candidate in (
        HERE.parents[2].parent / "shared" / "proxmox-api",
        Path("/work/shared/proxmox-api"),
    ):
        if candidate.is_dir():
            return candidate
    raise SystemExit("cannot find proxmox-api schemas; pass the directory")


def subset(full: dict[str, dict[str, object]], routes: list[tuple[str, str]]) -> dict[str, object]:
    """Keep only the served path/method pairs."""
    out: dict[str, dict[str, object]] = {}
    for method, path in routes:
        entry = full.get(path, {}).get(method)
        if entry is None:
            raise SystemExit(f"{method} {path} is not in the official schema")
        out.setdefault(path, {})[method] = entry
    return dict(sorted(out.items()))


def main() -> None:
    """Write the vendored subsets."""
    src = _source_dir(sys.argv)
    for product, file, routes in (
        ("pve", "pve-9.1.json", pve_routes()),
        ("pbs", "pbs.json", pbs_routes()),
    ):
        full = json.loads((src / file).read_text())
        data = subset(full, [(r.method, r.path) for r in routes])
        (OUT / f"{product}.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        print(f"{product}: {len(data)} paths from {file}")


if __name__ == "__main__":
    main()
