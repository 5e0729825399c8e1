"""prometheus-pve-exporter (from PyPI, in its own venv) scrapes the simulator with every collector.

The exporter is a widely used Proxmox client nobody here wrote: a scrape that answers 200
with the simulator's state shows the routes it reads (pve_exporter/collector/cluster.py and
node.py of 3.10.2) are served faithfully enough.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import venv
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from proxbus_pvesim.simulator import Simulator

EXPORTER = "prometheus-pve-exporter==3.10.2"
# The session fixture installs from PyPI (pip's own limit: 300 s): the suite's 60 s per test
# would cut a slow cold install with a bare "Timeout" instead of pip's reason.
pytestmark = pytest.mark.timeout(400)
# Every PVE collector of 3.10.2 (pve_exporter/cli.py), switched on explicitly.
COLLECTORS = (
    "status",
    "version",
    "node",
    "cluster",
    "resources",
    "backup-info",
    "qdevice",
    "config",
    "replication",
    "subscription",
)


@pytest.fixture(scope="session")
def exporter_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pve_exporter`` installed from PyPI into a venv of its own (once per session)."""
    root = tmp_path_factory.mktemp("pve-exporter-venv")
    venv.EnvBuilder(with_pip=True).create(root)
    pip = [str(root / "bin" / "python"), "-m", "pip", "install", "-q", EXPORTER]
    try:
        proc = subprocess.run(pip, capture_output=True, text=True, timeout=300, check=False)
        failed = proc.returncode != 0
        detail = proc.stderr[-2000:]
    except subprocess.TimeoutExpired as exc:
        failed, detail = True, f"pip timed out: {exc}"
    if failed:
        message = f"cannot install {EXPORTER} from PyPI: {detail}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return root / "bin" / "pve_exporter"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest_asyncio.fixture
async def exporter(
    exporter_bin: Path, pvesim: Simulator, tmp_path: Path
) -> AsyncIterator[tuple[str, Path]]:
    """The exporter listening on a free loopback port, configured for the simulator's token."""
    tok = pvesim.tokens.auditor
    config = tmp_path / "pve.yml"
    config.write_text(
        "default:\n"
        f"  user: {tok.user}\n"
        f"  token_name: {tok.tokenid}\n"
        f"  token_value: {tok.secret}\n"
        f"  verify_ssl: {pvesim.ca_path}\n"
    )
    port = _free_port()
    log = tmp_path / "exporter.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            str(exporter_bin),
            "--config.file",
            str(config),
            "--web.listen-address",
            f"127.0.0.1:{port}",
            *(f"--collector.{name}" for name in COLLECTORS),
            stdout=out,
            stderr=out,
        )
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
                writer.close()
                break
            except OSError:
                if proc.returncode is not None or asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"exporter did not listen: {log.read_text()}") from None
                await asyncio.sleep(0.1)
        yield f"http://127.0.0.1:{port}", log
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def _value(text: str, metric: str, /, **labels: str) -> float:
    """The sample of ``metric`` whose labels include ``labels`` (AssertionError when absent)."""
    for line in text.splitlines():
        m = re.fullmatch(r"([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)", line)
        if m is None or m.group(1) != metric:
            continue
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            return float(m.group(4))
    raise AssertionError(f"no sample {metric}{labels}")


async def test_exporter_scrapes_every_collector_over_https(
    pvesim: Simulator, exporter: tuple[str, Path]
) -> None:
    url, log = exporter
    pvesim.fail_replication("100-0")
    lab = pvesim.lab
    target = f"127.0.0.1:{pvesim.pve_port}"
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s,
        s.get(f"{url}/pve", params={"target": target, "cluster": "1", "node": "1"}) as r,
    ):
        text = await r.text()
    assert r.status == 200, f"{r.status}: {text[:2000]}\n{log.read_text()[-3000:]}"

    local = lab.local_node
    assert _value(text, "pve_up", id=f"node/{local}") == 1
    assert _value(text, "pve_up", id=f"cluster/{lab.cluster_name}") == 1
    running = next(g for g in lab.guests.values() if g.running)
    assert _value(text, "pve_up", id=f"{running.kind}/{running.vmid}") == 1
    assert _value(text, "pve_memory_size_bytes", id=f"{running.kind}/{running.vmid}") == (
        running.maxmem
    )
    assert _value(text, "pve_version_info", release="9.1") == 1
    assert _value(text, "pve_node_info", name=local, nodeid="1") == 1
    assert _value(text, "pve_cluster_info", id=f"cluster/{lab.cluster_name}") == 1

    uncovered = [g for g in lab.guests.values() if not any(j.covers(g) for j in lab.backup_jobs)]
    assert uncovered
    assert _value(text, "pve_not_backed_up_total", id=f"cluster/{lab.cluster_name}") == len(
        uncovered
    )
    assert _value(text, "pve_not_backed_up_info", id=f"{uncovered[0].kind}/{uncovered[0].vmid}")

    assert _value(text, "pve_subscription_status", id=f"node/{local}", status="notfound") == 1
    assert _value(text, "pve_subscription_status", id=f"node/{local}", status="active") == 0

    job = lab.replication[0]
    assert lab.guests[job.guest].node == local
    assert _value(text, "pve_replication_failed_syncs", id=job.id) == 1
    assert _value(text, "pve_replication_info", id=job.id, target=f"node/{job.target}") == 1

    on_local = [g for g in lab.guests.values() if g.node == local]
    onboot = re.findall(r"^pve_onboot_status\{.*\} 1\.0$", text, re.M)
    assert len(onboot) == len(on_local)
    # Every exporter request was answered by a served route (a 501 would have failed the scrape).
    assert all(rec.status == 200 for rec in pvesim.request_log), [
        (rec.method, rec.path, rec.status) for rec in pvesim.request_log if rec.status != 200
    ]
