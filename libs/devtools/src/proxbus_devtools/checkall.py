"""``proxbus check --all``: every service's ``--test-connection``, one block per service.

With a running ``proxbus up`` (its ``up.json`` in the data directory) each service is checked
with the environment the supervisor gives it (NATS URL, the demo's env file, the per-service
``PROXBUS_<SERVICE>_*`` overrides); otherwise with this shell's environment. The services run
in parallel, each bounded by its own 15 s budget.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CHECK_TIMEOUT = 15.0
# Variables never copied from up.json's per-child environment (they are secrets or paths to
# them); the children get them from the env file they read themselves.
_SECRET_WORDS = ("SECRET", "TOKEN", "PASSWORD")


def _script(name: str) -> str | None:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else shutil.which(name)


def check_env(
    service: str, state: Mapping[str, Any] | None, environ: Mapping[str, str], nats_url: str | None
) -> dict[str, str]:
    """The environment ``proxbus-<service> --test-connection`` runs with."""
    from .supervisor import env_file_for, service_env

    env = dict(environ)
    if state is not None:
        child = (state.get("children") or {}).get(service) or {}
        env.update({k: str(v) for k, v in (child.get("env") or {}).items()})
        env_file = state.get("env_file")
        if env_file and Path(env_file).exists():
            env.update(env_file_for(service, Path(env_file)))
    if nats_url:
        env["NATS_URL"] = nats_url
    env.update(service_env(service, environ))
    env.setdefault("LOG_LEVEL", "WARNING")
    return env


async def _one(service: str, env: dict[str, str]) -> tuple[str, int, list[str]]:
    script = _script(f"proxbus-{service}")
    if script is None:
        return service, 1, [f"FAIL proxbus-{service} is not installed"]
    proc = await asyncio.create_subprocess_exec(
        script, "--test-connection", env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), CHECK_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return service, 1, [f"FAIL no answer within {CHECK_TIMEOUT:g} s"]
    lines = [line for line in out.decode(errors="replace").splitlines() if line.strip()]
    return service, proc.returncode or 0, lines


async def check_all(
    services: list[str], state: Mapping[str, Any] | None, nats_url: str | None
) -> int:
    """Run every service's check; print ``service: line`` per check; 0 when all pass."""
    jobs = [_one(s, check_env(s, state, os.environ, nats_url)) for s in services]
    failed = False
    width = max(len(s) for s in services)
    for service, code, lines in await asyncio.gather(*jobs):
        failed |= code != 0
        for line in lines or [f"FAIL exit {code} without output"]:
            print(f"{service:<{width}}  {line}", flush=True)
    return 1 if failed else 0
