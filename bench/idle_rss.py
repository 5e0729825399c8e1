"""Idle RSS of every service's console script (issue 19: each under 80 MB, recorded here).

Starts a private nats-server (and the simulator for the gateway and the watcher), then each
console script with its HTTP port free on loopback; once its port answers, waits ``--settle``
seconds and reads ``VmRSS`` / ``RssAnon`` / ``RssFile`` from ``/proc/<pid>/status``. Prints a
markdown table. Run: ``uv run python bench/idle_rss.py [--settle 10]``.

"80 MB" is read both ways, each in its own column: 80 MiB (80 x 2^20 bytes: the unit of
``VmRSS``/1024 as ps and top show it, of the issue's own figures for the other services, and of
the gateway's test) and 80 x 10^6 bytes (76.3 MiB).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from proxbus_devtools.testing import NatsServer, free_port, nats_server_binary, wait_for_port
from proxbus_mcp_gateway.testing import sim_env
from proxbus_pvesim.testing import run_simulator

# A valid Ed25519 public key (hex) for ingest-discord's settings; idle, nothing is verified.
_DISCORD_KEY = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"


def status_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def script(name: str) -> list[str]:
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        raise SystemExit(f"{name} is not installed in this environment")
    return [found]


def services(
    nats_url: str, sim_vars: dict[str, str], spool_dir: str
) -> list[tuple[str, list[str], dict[str, str], int]]:
    common = {"NATS_URL": nats_url, "PROXBUS_SITE": "lab", "LOG_LEVEL": "WARNING",
              "HEALTH_HOST": "127.0.0.1", "SPOOL_DIR": spool_dir}  # fmt: skip
    out = []
    port = free_port()
    out.append(("ingest-syslog", script("proxbus-ingest-syslog"),
                {**common, "HEALTH_PORT": str(port), "SYSLOG_HOST": "127.0.0.1",
                 "SYSLOG_PORT": str(free_port())}, port))  # fmt: skip
    port = free_port()
    out.append(("ingest-email", script("proxbus-ingest-email"),
                {**common, "HEALTH_PORT": str(port), "SMTP_HOST": "127.0.0.1",
                 "SMTP_PORT": str(free_port())}, port))  # fmt: skip
    port = free_port()
    out.append(("ingest-pve-ws", script("proxbus-ingest-pve-ws"),
                {**common, "HEALTH_PORT": str(port), "PVE_WEBHOOK_SECRET": "idle",
                 "PVE_WS_CLUSTERS": "lab"}, port))  # fmt: skip
    port = free_port()
    out.append(("dispatcher", script("proxbus-dispatcher"),
                {**common, "HEALTH_PORT": str(port)}, port))  # fmt: skip
    port = free_port()
    out.append(("mcp-gateway", script("proxbus-mcp-gateway"),
                {**common, **sim_vars, "GATEWAY_PORT": str(port),
                 "GATEWAY_TOKENS": "bench:read:idle-secret"}, port))  # fmt: skip
    port = free_port()
    out.append(("ingest-discord", script("proxbus-ingest-discord"),
                {**common, "DISCORD_PORT": str(port), "DISCORD_HOST": "127.0.0.1",
                 "DISCORD_PUBLIC_KEY": _DISCORD_KEY, "HEALTH_PORT": str(free_port())}, port))  # fmt: skip
    return out


async def measure(settle: float) -> list[tuple[str, dict[str, int] | str]]:
    binary = nats_server_binary()
    if binary is None:
        raise SystemExit("nats-server is not installed")
    results: list[tuple[str, dict[str, int] | str]] = []
    with tempfile.TemporaryDirectory(prefix="proxbus-rss-") as tmp:
        broker = NatsServer(binary, Path(tmp))
        broker.start()
        try:
            async with run_simulator(instant=True) as sim:
                sim_vars = sim_env(sim)
                for name, argv, env, port in services(broker.url, sim_vars, f"{tmp}/spool"):
                    proc = subprocess.Popen(
                        argv,
                        env={**os.environ, **env},
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE,
                    )
                    try:
                        await asyncio.to_thread(wait_for_port, port, "127.0.0.1", 30)
                        await asyncio.sleep(settle)  # idle on purpose: this is what is measured
                        if proc.poll() is not None:
                            raise RuntimeError(f"exited with {proc.returncode}")
                        results.append((name, status_kib(proc.pid)))
                    except (TimeoutError, RuntimeError) as exc:
                        err = proc.stderr.read().decode()[-300:] if proc.poll() is not None else ""
                        results.append((name, f"not measured: {exc} {err}".strip()))
                    finally:
                        proc.terminate()
                        try:
                            proc.wait(10)
                        except subprocess.TimeoutExpired:
                            proc.kill()
                            proc.wait()
                        if proc.stderr is not None:
                            proc.stderr.close()
        finally:
            broker.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--settle", type=float, default=10.0, help="idle seconds before reading")
    args = parser.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results = asyncio.run(measure(args.settle))
    print(f"Idle RSS after {args.settle:.0f} s, {started}, Python {sys.version.split()[0]}\n")
    print(
        "| service | RSS MiB | anonymous MiB | file-backed MiB | under 80 MiB "
        "| under 80 x 10^6 bytes |"
    )
    print("| --- | ---: | ---: | ---: | :---: | :---: |")
    for name, value in results:
        if isinstance(value, str):
            print(f"| {name} | {value} | | | | |")
            continue
        rss, anon, file = (value.get(k, 0) / 1024 for k in ("VmRSS", "RssAnon", "RssFile"))
        mib = "yes" if rss < 80 else "no"
        mb = "yes" if rss * 1024 * 1024 < 80e6 else "no"
        print(f"| {name} | {rss:.1f} | {anon:.1f} | {file:.1f} | {mib} | {mb} |")


if __name__ == "__main__":
    main()
