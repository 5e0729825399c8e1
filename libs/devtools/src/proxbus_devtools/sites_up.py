"""``proxbus sites link`` and ``proxbus up --sites N``: the multi-site topology on one machine.

``up --sites N`` runs, under the ``proxbus up`` supervisor: a hub nats-server (JetStream domain
``hub``), N site nats-servers (leaf nodes of the hub, domains ``site1``..``siteN``), one
ingest-syslog per site (``PROXBUS_SITE=siteN``, ``NATS_JS_DOMAIN=siteN``, syslog on
``--syslog-port`` + i - 1), the dispatcher at the hub printing every notification (console
receiver), and with ``--demo`` one Proxmox simulator per site sending its syslog lines to that
site's ingest. The hub's PROXBUS_EVENTS is linked to every site's once the hub answers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
from pathlib import Path
from typing import Any

import nats
import nats.errors
import nats.js.errors
from proxbus_runtime import ServiceSettings, connect_nats

from .multisite import LocalTopology, link_sites, scale_streams, wait_for_jetstream
from .status import LiveView, PlainView, StatusBoard, probe_forever
from .supervisor import Child, Supervisor, _script, until_signal

log = logging.getLogger("proxbus.up")
# The stream of the dispatcher's state bucket (services/dispatcher/README.md), created at its start.
DISPATCHER_STATE_STREAM = "KV_proxbus_dispatcher_state"

_CONSOLE_ROUTES = """\
receivers:
  - name: console
    type: console
    title_template: "[{{ event.site }}] {{ event.title }}"
route:
  receiver: console
  group_by: [site, node, kind]
"""


def add_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``sites`` command group."""
    sites = sub.add_parser("sites", help="multi-site: link the hub's event stream to sites")
    ssub = sites.add_subparsers(dest="sites_command", required=True)
    link = ssub.add_parser(
        "link",
        help="make the hub's PROXBUS_EVENTS source each site's (run against the hub; additive)",
    )
    link.add_argument("sites", nargs="+", help="the sites' JetStream domains, e.g. site1 site2")
    link.add_argument(
        "--replicas", type=int, choices=(1, 3), help="scale the hub's streams and buckets (R3)"
    )
    link.add_argument("--wait", type=float, default=60.0, help="seconds to wait for JetStream")


async def run_link(args: argparse.Namespace, settings: ServiceSettings) -> int:
    """``proxbus sites link``: exit 0 when the hub sources every site named."""
    nc = await connect_nats(settings, name="proxbus-sites-link")  # fails fast when unreachable
    try:
        js = nc.jetstream(domain=settings.nats_js_domain, timeout=5)
        await wait_for_jetstream(js, args.wait)
        added = await link_sites(
            js, args.sites, replicas=args.replicas, limits=settings.stream_limits()
        )
        info = await js.stream_info("PROXBUS_EVENTS")
        sources = [s.external.api for s in info.config.sources or [] if s.external is not None]
        print(f"added: {', '.join(added) or 'none'}; PROXBUS_EVENTS sources: {', '.join(sources)}")
        return 0
    finally:
        await nc.close()


def plan_sites(args: argparse.Namespace, topology: LocalTopology) -> list[Child]:
    """The processes of ``up --sites``: servers first, then the site ingests, the dispatcher."""
    children = [
        Child(node.name, [node.binary, "-c", str(node.config_path)], ready_url=node.url)
        for node in [*topology.hub, *topology.leaves.values()]
    ]
    routes = topology.root / "routes.yaml"
    routes.write_text(_CONSOLE_ROUTES)
    for i, (site, leaf) in enumerate(topology.leaves.items()):
        script = _script("proxbus-ingest-syslog")
        if script is None:
            raise SystemExit("proxbus-ingest-syslog is not installed")
        syslog_port = args.syslog_port + i
        env = {
            "NATS_URL": leaf.url,
            "NATS_JS_DOMAIN": site,
            "PROXBUS_SITE": site,
            "SYSLOG_HOST": "127.0.0.1",
            "SYSLOG_PORT": str(syslog_port),
            "HEALTH_HOST": "127.0.0.1",
            "HEALTH_PORT": str(args.health_port + 1 + i),
        }
        children.append(Child(f"ingest-syslog-{site}", [script], env))
        if args.demo:
            sim = _script("proxbus-pvesim")
            if sim is None:
                raise SystemExit("the demo needs the proxbus-pvesim package")
            children.append(
                Child(
                    f"pvesim-{site}",
                    [
                        sim,
                        "--port",
                        "0",
                        "--pbs-port",
                        "0",
                        "--activity",
                        "15",
                        "--syslog-target",
                        f"127.0.0.1:{syslog_port}",
                    ],
                )
            )
    dispatcher = _script("proxbus-dispatcher")
    if dispatcher is None:
        raise SystemExit("proxbus-dispatcher is not installed")
    children.append(
        Child(
            "dispatcher",
            [dispatcher],
            {
                "NATS_URL": topology.hub_url,
                "PROXBUS_SITE": "hub",
                "ROUTES_FILE": str(routes),
                "ENRICH_ENABLED": "false",
                "HEALTH_HOST": "127.0.0.1",
                "HEALTH_PORT": str(args.health_port),
            },
        )
    )
    return children


async def _link_when_ready(
    topology: LocalTopology, stop: asyncio.Event, replicas: int | None = None
) -> None:
    """Link the hub to every site as soon as the hub's JetStream answers (retrying).

    With ``replicas`` (a three-node hub), the hub's streams and buckets are scaled to that many,
    the dispatcher's state bucket too once the dispatcher has created it.
    """
    settings = ServiceSettings(nats_url=topology.hub_url)
    while not stop.is_set():
        try:
            nc = await connect_nats(settings, "proxbus-sites-link")
        except (nats.errors.Error, OSError):
            await asyncio.sleep(0.5)
            continue
        try:
            js = nc.jetstream(timeout=5)
            await wait_for_jetstream(js, 60)
            await link_sites(js, list(topology.leaves), replicas=replicas)
            log.info("hub PROXBUS_EVENTS sources %s", ", ".join(topology.leaves))
            if replicas is not None:
                await _scale_when_created(js, stop, replicas, DISPATCHER_STATE_STREAM)
            return
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
            log.warning("linking the sites failed (%s); retrying", exc)
            await asyncio.sleep(1.0)
        finally:
            await nc.close()


async def _scale_when_created(js: Any, stop: asyncio.Event, replicas: int, stream: str) -> None:
    """Scale the hub's proxbus streams and buckets again once ``stream`` exists (a bucket a
    service creates at its start), for at most two minutes."""
    deadline = time.monotonic() + 120
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            await scale_streams(js, replicas)
            if (await js.stream_info(stream)).config.num_replicas == replicas:
                return
        except nats.js.errors.NotFoundError:
            pass  # not created yet
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
    log.warning("%s was not created within 2 minutes: not scaled to R%d", stream, replicas)


def run_sites_up(args: argparse.Namespace, binary: str) -> int:
    """``proxbus up --sites N``: until SIGINT/SIGTERM, under the ``proxbus up`` supervisor."""
    data_dir = Path(args.data_dir)
    root = data_dir / "multisite"
    sites = [f"site{i + 1}" for i in range(args.sites)]
    topology = LocalTopology(
        binary,
        root,
        sites=sites,
        hub_nodes=3 if args.hub_cluster else 1,
        hub_port=args.nats_port,
        # the ports the services listen on are the user's; the NATS servers take others
        avoid_ports=[
            *range(args.syslog_port, args.syslog_port + args.sites),
            *range(args.health_port, args.health_port + args.sites + 1),
        ],
    )
    children = plan_sites(args, topology)
    board = StatusBoard(c.name for c in children)
    board.footer = [f"hub NATS: {topology.hub_url} (domain hub)"] + [
        f"{site}: NATS {leaf.url} (domain {site}), syslog 127.0.0.1:{args.syslog_port + i}"
        for i, (site, leaf) in enumerate(topology.leaves.items())
    ]
    board.footer.append(f"  web console: http://127.0.0.1:{args.health_port}/  Ctrl-C stops")
    tty = sys.stdout.isatty() and not getattr(args, "plain", False)
    view: LiveView | PlainView = LiveView(board) if tty else PlainView(board)
    logging.getLogger().setLevel(logging.INFO)
    supervisor = Supervisor(
        children, board, data_dir, view.print, site="hub", nats_url=topology.hub_url
    )

    with view:
        return asyncio.run(
            until_signal(
                supervisor.run,
                lambda stop: _link_when_ready(topology, stop, 3 if args.hub_cluster else None),
                lambda stop: probe_forever(board, stop),
            )
        )
