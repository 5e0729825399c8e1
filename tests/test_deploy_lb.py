"""deploy/lb/nginx.conf, the `replicas` profile's balancer, run by a real nginx (Debian's).

- ``nginx -t`` accepts the file as compose mounts it, and rejects a broken copy.
- Started (from a temp copy, rewritten as below) in front of two real ingest-syslog replicas
  listening on the same port on two loopback addresses, syslog lines sent to its one TCP port
  and its one UDP port reach NATS, spread over both replicas, with node names from the syslog
  HOSTNAME field (not the balancer's address).

What the temp copy changes, and why: the listen ports become free loopback ports (514 needs
root and may be taken); the backend port of ``ingest-syslog:514`` becomes the replicas' free
port; the pid file goes to the temp directory; and ``resolver 127.0.0.11`` (Docker's embedded
DNS) becomes a stand-in on a free loopback port that answers the compose service name
``ingest-syslog`` with one A record per replica (127.0.0.2, 127.0.0.3), as Docker does for a
``--scale``d service, and NXDOMAIN for every other name. Everything else is the file as is:
``proxy_pass`` of a variable, ``valid=5s``, ``proxy_responses 0`` for UDP. No traffic leaves
127.0.0.0/8.

Debian builds nginx's stream module as a dynamic module (``--with-stream=dynamic``); the image
compose runs (``nginx:1.28-alpine``, nginx.org's build) has it built in. For Debian's nginx
the copy therefore starts with the ``load_module`` line of that module, read from ``nginx -V``.
A missing nginx fails these tests (``scripts/install.sh`` installs it), it never skips them.
"""

from __future__ import annotations

import asyncio
import collections
import re
import secrets
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from proxbus_devtools.procs import stop_process
from proxbus_devtools.testing import free_port
from proxbus_events import Event

ROOT = Path(__file__).resolve().parents[1]
LB_CONF = ROOT / "deploy" / "lb" / "nginx.conf"
REPLICAS = ("127.0.0.2", "127.0.0.3")


def nginx() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )
    assert found, "nginx missing: run ./scripts/install.sh (Debian: nginx, libnginx-mod-stream)"
    return found


def as_this_nginx_loads_it(conf: str) -> str:
    """``conf`` with the stream module loaded first when this nginx has it as a dynamic module."""
    built = subprocess.run([nginx(), "-V"], capture_output=True, text=True, timeout=10).stderr
    if "--with-stream=dynamic" not in built:
        assert "--with-stream" in built, f"this nginx has no stream module:\n{built}"
        return conf
    modules = re.search(r"--modules-path=(\S+)", built)
    module = (
        Path(modules.group(1) if modules else "/usr/lib/nginx/modules") / "ngx_stream_module.so"
    )
    assert module.exists(), f"{module} missing: install Debian's libnginx-mod-stream"
    return f"load_module {module};\n{conf}"


def nginx_test(conf: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [nginx(), "-t", "-p", str(conf.parent), "-e", "stderr", "-c", str(conf)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def replace_once(text: str, old: str, new: str) -> str:
    """``text`` with ``old`` (present exactly once: the file's shape is part of the test)."""
    assert text.count(old) == 1, f"expected one {old!r} in {LB_CONF.name}"
    return text.replace(old, new)


# ---------------------------------------------------------------------------- nginx -t


def test_nginx_accepts_the_balancer_config(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text(as_this_nginx_loads_it(LB_CONF.read_text()))
    result = nginx_test(conf)
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


def test_nginx_t_rejects_a_broken_copy(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    broken = replace_once(LB_CONF.read_text(), "proxy_responses 0;", "proxy_response 0;")
    conf.write_text(as_this_nginx_loads_it(broken))
    result = nginx_test(conf)
    assert result.returncode != 0
    assert 'unknown directive "proxy_response"' in result.stderr


# ---------------------------------------------------------------------------- nginx running


class ComposeDns(asyncio.DatagramProtocol):
    """Docker's embedded DNS as nginx's resolver uses it: A records of compose service names
    (one per replica), NXDOMAIN for other names. RFC 1035 4.1 messages, one question each."""

    def __init__(self, records: dict[str, tuple[str, ...]]) -> None:
        self.records = records
        self.queries: collections.Counter[str] = collections.Counter()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            reply = self.answer(data)
        except (IndexError, struct.error, UnicodeDecodeError):
            return  # not a query this stand-in understands: no answer, as a lost datagram
        assert self.transport is not None
        self.transport.sendto(reply, addr)

    def answer(self, query: bytes) -> bytes:
        ident, flags = struct.unpack("!HH", query[:4])
        labels, pos = [], 12
        while query[pos]:
            labels.append(query[pos + 1 : pos + 1 + query[pos]].decode("ascii"))
            pos += 1 + query[pos]
        qtype, _ = struct.unpack("!HH", query[pos + 1 : pos + 5])
        question = query[12 : pos + 5]
        name = ".".join(labels).lower()
        self.queries[name] += 1
        known = name in self.records
        addresses = self.records[name] if known and qtype == 1 else ()
        # QR, RD copied, RA; RCODE 0 or 3 (NXDOMAIN).
        reply_flags = 0x8000 | (flags & 0x0100) | 0x0080 | (0 if known else 3)
        header = struct.pack("!HHHHHH", ident, reply_flags, 1, len(addresses), 0, 0)
        answers = b"".join(
            struct.pack("!HHHIH", 0xC00C, 1, 1, 5, 4) + socket.inet_aton(address)
            for address in addresses
        )
        return header + question + answers


def free_on_every_replica() -> int:
    """A port free for TCP and UDP on every replica address."""
    while True:
        port = free_port(host=REPLICAS[0])
        try:
            for host in REPLICAS:
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    with socket.socket(socket.AF_INET, kind) as s:
                        s.bind((host, port))
            return port
        except OSError:
            continue


@pytest.fixture
async def dns() -> AsyncIterator[tuple[ComposeDns, int]]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: ComposeDns({"ingest-syslog": REPLICAS}), local_addr=("127.0.0.1", 0)
    )
    try:
        yield protocol, transport.get_extra_info("sockname")[1]
    finally:
        transport.close()


def balancer_copy(
    conf: str, *, dns_port: int, backend_port: int, tmp: Path
) -> tuple[str, dict[str, int]]:
    """The temp copy described in the module docstring; its listen ports by original port."""
    listen = {
        "514/udp": free_port(socket.SOCK_DGRAM),
        "514/tcp": free_port(),
        "2525/tcp": free_port(),
        "8090/tcp": free_port(),
    }
    conf = replace_once(conf, "resolver 127.0.0.11 ", f"resolver 127.0.0.1:{dns_port} ")
    conf = replace_once(conf, "pid /var/run/nginx.pid;", f"pid {tmp / 'nginx.pid'};")
    conf = replace_once(conf, "listen 514 udp;", f"listen 127.0.0.1:{listen['514/udp']} udp;")
    conf = replace_once(conf, "listen 514;", f"listen 127.0.0.1:{listen['514/tcp']};")
    conf = replace_once(conf, "listen 2525;", f"listen 127.0.0.1:{listen['2525/tcp']};")
    conf = replace_once(conf, "listen 8090;", f"listen 127.0.0.1:{listen['8090/tcp']};")
    assert conf.count("set $syslog_backend ingest-syslog:514;") == 2  # the UDP and TCP servers
    conf = conf.replace("ingest-syslog:514;", f"ingest-syslog:{backend_port};")
    assert not re.search(r"listen \d+( udp)?;", conf), "a listen port left unrewritten"
    return as_this_nginx_loads_it(conf), listen


async def received(http: aiohttp.ClientSession, health_port: int) -> float:
    async with http.get(f"http://127.0.0.1:{health_port}/metrics") as response:
        text = await response.text()
    return sum(
        float(value)
        for value in re.findall(r"^proxbus_syslog_received_total\{[^}]*\} (\S+)$", text, re.M)
    )


async def test_lines_through_the_balancer_reach_nats_from_both_replicas(
    stack: Any, nc: Any, dns: tuple[ComposeDns, int], tmp_path: Path
) -> None:
    resolver, dns_port = dns
    port = free_on_every_replica()
    replicas = [
        stack.spawn(
            f"ingest-syslog-{host}",
            "proxbus-ingest-syslog",
            lambda: (free_port(), {"syslog": port}, {}),
            SYSLOG_HOST=host,
            SYSLOG_PORT=str(port),
            SYSLOG_PEER_SHARE="1",  # deploy/README.md "Replicas": the balancer is one peer
        )
        for host in REPLICAS
    ]
    await stack.healthy(*replicas)

    text, listen = balancer_copy(
        LB_CONF.read_text(), dns_port=dns_port, backend_port=port, tmp=tmp_path
    )
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    checked = nginx_test(conf)
    assert checked.returncode == 0, checked.stderr
    log = tmp_path / "nginx.log"
    with log.open("wb") as out:
        balancer = subprocess.Popen(
            [nginx(), "-p", str(tmp_path), "-e", "stderr", "-c", str(conf), "-g", "daemon off;"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    seen: dict[str, Event] = {}

    async def on_event(msg: Any) -> None:
        event = Event.model_validate_json(msg.data)
        for marker in re.findall(r"lb-[0-9a-f]{8}-\w+-\d+", f"{event.title} {event.message}"):
            seen[marker] = event

    subscription = await nc.subscribe("proxbus.events.>", cb=on_event)
    try:
        deadline = time.monotonic() + 15
        while True:  # nginx is up once its TCP port accepts
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", listen["514/tcp"])
                writer.close()
                await writer.wait_closed()
                break
            except OSError:
                assert balancer.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "nginx did not listen\n" + log.read_text()
                await asyncio.sleep(0.05)

        run = secrets.token_hex(4)
        want: set[str] = set()
        # TCP: one connection per line, as many rsyslog senders would open; each connection
        # goes to one replica. LF framing.
        for n in range(24):
            marker = f"lb-{run}-tcp-{n}"
            want.add(marker)
            _, writer = await asyncio.open_connection("127.0.0.1", listen["514/tcp"])
            writer.write(stack.syslog_line(f"through the balancer {marker}").encode() + b"\n")
            await writer.drain()
            writer.close()
            await writer.wait_closed()
        # UDP: one datagram per source port, each a datagram session of its own.
        for n in range(24):
            marker = f"lb-{run}-udp-{n}"
            want.add(marker)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                line = stack.syslog_line(f"through the balancer {marker}")
                s.sendto(line.encode(), ("127.0.0.1", listen["514/udp"]))

        await stack.wait_until(
            lambda: want <= set(seen),
            "every line sent to the balancer published on NATS",
            timeout=20,
            detail=lambda: {
                "missing": sorted(want - set(seen)),
                "dns queries": dict(resolver.queries),
                "nginx": log.read_text()[-1500:],
            },
        )
        assert {seen[m].node for m in want} == {"pve2"}, "node from the HOSTNAME field"
        assert resolver.queries["ingest-syslog"] >= 1  # resolved at run time, by name

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            counts = [await received(http, replica.health_port) for replica in replicas]
        assert sum(counts) == len(want), (counts, stack.report())
        assert all(count > 0 for count in counts), f"one replica got nothing: {counts}"
    finally:
        await subscription.unsubscribe()
        stop_process(balancer)
    assert balancer.returncode == 0, log.read_text()
    assert "[emerg]" not in log.read_text()


async def test_the_dns_stand_in_answers_like_docker(dns: tuple[ComposeDns, int]) -> None:
    """What nginx gets from it: one A record per replica for the service, NXDOMAIN otherwise."""
    _, port = dns

    def query(name: str) -> bytes:
        labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
        return struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + labels + b"\0\0\1\0\1"

    loop = asyncio.get_running_loop()
    answers: asyncio.Queue[bytes] = asyncio.Queue()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            answers.put_nowait(data)

    transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1", port))
    try:
        transport.sendto(query("ingest-syslog"))
        reply = await asyncio.wait_for(answers.get(), 5)
        ident, flags, _, ancount = struct.unpack("!HHHH", reply[:8])
        assert (ident, flags & 0x800F, ancount) == (0x1234, 0x8000, 2)
        addresses = [socket.inet_ntoa(reply[i - 4 : i]) for i in (len(reply) - 16, len(reply))]
        assert addresses == list(REPLICAS)
        transport.sendto(query("ingest-email"))
        reply = await asyncio.wait_for(answers.get(), 5)
        assert struct.unpack("!H", reply[2:4])[0] & 0x000F == 3
    finally:
        transport.close()
