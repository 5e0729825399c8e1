"""The split of the shared libraries holds: checked by walking every import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
SERVICE_PACKAGES = {p.name for p in ROOT.glob("services/*/src/*") if p.is_dir()}
NOT_IN_CONTRACT = {"nats", "aiohttp", "prometheus_client", "pydantic_settings", "yaml"}


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports (relative imports excluded)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


def test_the_walk_sees_service_packages() -> None:
    assert {
        "proxbus_dispatcher",
        "proxbus_ingest_syslog",
        "proxbus_mcp_gateway",
    } <= SERVICE_PACKAGES


def test_no_module_under_libs_imports_a_service_package() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_modules(path) & SERVICE_PACKAGES)
        for path in ROOT.glob("libs/*/src/**/*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_contract_imports_neither_nats_nor_http() -> None:
    files = list(ROOT.glob("libs/events/src/proxbus_events/**/*.py"))
    assert files
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_modules(path) & NOT_IN_CONTRACT)
        for path in files
    }
    assert {k: v for k, v in offenders.items() if v} == {}
    # And at run time, transitively: importing the contract loads none of them.
    code = (
        "import sys, proxbus_events\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(NOT_IN_CONTRACT)!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_services_import_no_other_service_and_no_devtools() -> None:
    """Services share code only through the contract and the runtime (test helpers aside)."""
    offenders = {}
    for package in ROOT.glob("services/*/src/*"):
        if not package.is_dir():
            continue
        banned = (SERVICE_PACKAGES - {package.name}) | {"proxbus_devtools"}
        for path in package.glob("**/*.py"):
            if path.name == "testing.py":  # helpers for tests and benchmarks
                continue
            found = sorted(imported_modules(path) & banned)
            if found:
                offenders[str(path.relative_to(ROOT))] = found
    assert offenders == {}


def test_importing_the_contract_does_not_load_re2() -> None:
    """google-re2 (~4.7 MiB RSS) loads with the first regex matcher, not with the contract:
    the gateway's idle RSS budget (80 MiB, issue 17) has little room."""
    code = (
        "import sys, proxbus_events\n"
        "before = 're2' in sys.modules\n"
        "proxbus_events.Matcher.parse('node=pve1')\n"
        "plain = 're2' in sys.modules\n"
        "proxbus_events.Matcher.parse('node=~pve[12]')\n"
        "print(before, plain, 're2' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "True"]
