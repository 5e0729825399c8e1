"""CLI: ``proxbus-pvesim`` runs the simulator until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from .activity import DemoActivity
from .errors import ScenarioError
from .scenario import build_lab, load_scenario
from .simulator import Simulator


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="proxbus-pvesim", description="Proxmox VE + PBS API simulator over HTTPS"
    )
    p.add_argument("--scenario", help="YAML or JSON scenario file (default: the 'lab' cluster)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8006, help="PVE API port (0 = any free port)")
    p.add_argument("--pbs-port", type=int, default=8007, help="PBS API port (0 = any free port)")
    p.add_argument("--admin-port", type=int, default=None, help="admin API port (off if unset)")
    p.add_argument(
        "--task-seconds", type=float, default=None, help="simulated task duration (0 = instant)"
    )
    p.add_argument(
        "--write-env",
        metavar="FILE",
        help="write the gateway's environment (seed variables, token, fingerprint) to FILE",
    )
    p.add_argument("--smtp-target", metavar="HOST:PORT", help="send notification mail here")
    p.add_argument("--syslog-target", metavar="HOST:PORT", help="send syslog lines here (UDP)")
    p.add_argument("--webhook-url", help="POST PVE webhook notifications here")
    p.add_argument(
        "--webhook-secret",
        default=os.environ.get("PVESIM_WEBHOOK_SECRET"),
        help="bearer secret for --webhook-url (default: $PVESIM_WEBHOOK_SECRET; the environment "
        "keeps it out of `ps` and cannot be misread as an option when it starts with '-')",
    )
    p.add_argument(
        "--activity",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="demo: start/stop guests and run (sometimes failing) backups every SECONDS",
    )
    return p


def _host_port(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    host, _, port = value.rpartition(":")
    return host or "127.0.0.1", int(port)


def gateway_env(sim: Simulator) -> dict[str, str]:
    """The seed variables that point the MCP gateway (or any proxmoxer user) at ``sim``."""
    node = sim.lab.local_node
    prefix = node.upper().replace("-", "_")
    t = sim.tokens.admin
    env = {
        "LAB_CONFIGURATION": "CLUSTERED" if sim.lab.cluster_name else "STANDALONE",
        "PROXBUS_SITE": sim.lab.site,
        "PVE_NODES": node,
        f"PVE_{prefix}_HOST": f"127.0.0.1:{sim.pve_port}",
        f"PVE_{prefix}_USER": t.user,
        f"PVE_{prefix}_TOKEN_NAME": t.tokenid,
        f"PVE_{prefix}_TOKEN_VALUE": t.secret,
        f"{prefix}_FINGERPRINT": sim.fingerprint,
        "VERIFY_SSL": "true",
        # The simulated members' cluster IPs are made up: never dial them.
        "DISCOVER_ENDPOINTS": "false",
    }
    if sim.lab.pbs is not None:
        pbs = sim.lab.pbs.name
        pprefix = pbs.upper().replace("-", "_")
        pt = sim.pbs_tokens.admin
        env |= {
            "PBS_NODES": pbs,
            f"PBS_{pprefix}_HOST": f"127.0.0.1:{sim.pbs_port}",
            f"PBS_{pprefix}_USER": pt.user,
            f"PBS_{pprefix}_TOKEN_NAME": pt.tokenid,
            f"PBS_{pprefix}_TOKEN_VALUE": pt.secret,
            f"{pprefix}_FINGERPRINT": sim.fingerprint,
        }
    return env


def write_env_file(path: str, env: dict[str, str]) -> None:
    """Write ``KEY=VALUE`` lines atomically (readers never see half a file)."""
    lines = [f"{k}={v}" for k, v in env.items()]
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write("# written by proxbus-pvesim --write-env\n" + "\n".join(lines) + "\n")
    os.replace(tmp, path)


async def _run(args: argparse.Namespace) -> int:
    try:
        scenario = load_scenario(args.scenario) if args.scenario else build_lab()
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    instant = args.task_seconds == 0
    sim = Simulator(
        scenario,
        host=args.host,
        pve_port=args.port,
        pbs_port=args.pbs_port,
        admin_port=args.admin_port,
        instant=instant,
        task_seconds=args.task_seconds,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await sim.start()
    except OSError as exc:
        print(f"error: cannot listen: {exc}", file=sys.stderr)
        return 1
    sim.set_targets(
        smtp=_host_port(args.smtp_target),
        syslog=_host_port(args.syslog_target),
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
    )
    if args.write_env:
        write_env_file(args.write_env, gateway_env(sim))
    try:
        t = sim.tokens.admin
        lines = [
            f"PVE URL:      {sim.pve_url}/api2/json",
            f"PBS URL:      {sim.pbs_url}/api2/json" if sim.pbs else "PBS URL:      (none)",
            f"fingerprint:  {sim.fingerprint}",
            f"CA:           {sim.ca_path}",
            f"API token:    user={t.user} token_name={t.tokenid} token_value={t.secret}",
            f"header:       Authorization: {t.header}",
            f"PBS token:    {sim.pbs_tokens.admin.header}",
            f"read-only:    {sim.tokens.auditor.header}",
            f"password:     root@pam / {sim.scenario.root_password}",
        ]
        if sim.admin is not None:
            lines += [f"admin URL:    {sim.admin.url}", f"admin token:  Bearer {sim.admin_token}"]
        print("\n".join(lines), flush=True)
        if args.activity > 0:
            activity = asyncio.create_task(DemoActivity(sim, args.activity).run(stop))
            await stop.wait()
            await activity
        else:
            await stop.wait()
    finally:
        await sim.stop()
    return 0


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``proxbus-pvesim`` console script."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(_run(_parser().parse_args(argv))))


if __name__ == "__main__":
    main()
