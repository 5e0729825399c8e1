"""Fault scenarios and what they emit (SMTP, syslog, webhook)."""

import asyncio
import email
from email.message import Message
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session
from proxbus_pvesim.simulator import Simulator
from proxbus_pvesim.testing import api_session, run_simulator


class _MailSink:
    def __init__(self) -> None:
        self.mails: asyncio.Queue[Message] = asyncio.Queue()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        await self.mails.put(email.message_from_bytes(raw))
        return "250 OK"


class _SyslogSink(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.lines: asyncio.Queue[str] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.lines.put_nowait(data.decode())


async def _get(s: aiohttp.ClientSession, path: str, **params: Any) -> Any:
    async with s.get(f"/api2/json{path}", params=params) as r:
        assert r.status == 200, (path, r.status, r.reason)
        return (await r.json())["data"]


async def _wait_task(s: aiohttp.ClientSession, upid: str) -> dict[str, Any]:
    node = upid.split(":")[1]
    async with asyncio.timeout(5):
        while True:
            st = await _get(s, f"/nodes/{node}/tasks/{upid}/status")
            if st["status"] == "stopped":
                return dict(st)
            await asyncio.sleep(0.01)


async def _post(s: aiohttp.ClientSession, path: str, **data: Any) -> Any:
    async with s.post(f"/api2/json{path}", data=data) as r:
        assert r.status == 200, (path, r.status, r.reason)
        return (await r.json())["data"]


async def test_crashed_vm_is_stopped_without_new_task(pvesim: Simulator) -> None:
    async with api_session(pvesim) as s:
        vm = next(v for v in await _get(s, "/nodes/pve1/qemu") if v["status"] == "running")
        before = await _get(s, "/cluster/tasks")
        pvesim.crash_guest(vm["vmid"])
        current = await _get(s, f"/nodes/pve1/qemu/{vm['vmid']}/status/current")
        assert current["status"] == "stopped"
        assert await _get(s, "/cluster/tasks") == before


async def test_failed_backup_gives_task_error_mail_and_syslog() -> None:
    loop = asyncio.get_running_loop()
    sink = _MailSink()
    smtp = await loop.create_server(lambda: SMTP(sink), "127.0.0.1", 0)
    transport, syslog = await loop.create_datagram_endpoint(
        _SyslogSink, local_addr=("127.0.0.1", 0)
    )
    try:
        async with run_simulator() as sim, api_session(sim) as s:
            sim.set_targets(
                smtp=("127.0.0.1", smtp.sockets[0].getsockname()[1]),
                syslog=("127.0.0.1", transport.get_extra_info("sockname")[1]),
            )
            sim.fail_next_backup(101, error="backup write data failed: No space left")
            upid = await _post(s, "/nodes/pve2/vzdump", vmid="101", storage="pbs-store")
            st = await _wait_task(s, upid)
            assert st["exitstatus"] == "job errors"
            log = await _get(s, f"/nodes/pve2/tasks/{upid}/log")
            assert log[-1]["t"] == "TASK ERROR: job errors"
            assert any(
                "ERROR: Backup of VM 101 failed - backup write data failed" in line["t"]
                for line in log
            )
            async with asyncio.timeout(5):
                mail = await sink.mails.get()
                lines = [await syslog.lines.get() for _ in range(6)]
            assert mail["Subject"] == "vzdump backup status (pve2.lab.example): backup failed"
            assert mail.is_multipart()
            parts = {
                p.get_content_type(): p.get_payload(decode=True).decode()
                for p in mail.walk()
                if not p.is_multipart()
            }
            assert "101" in parts["text/plain"]
            assert "text/html" in parts
            # task start, the vzdump lines PVE also sends to syslog, task end
            assert lines[0].endswith(f"starting task {upid}")
            worker = f"pvedaemon[{int(upid.split(':')[2], 16)}]: "
            assert [line.split(worker, 1)[1] for line in lines[1:5]] == [
                "INFO: starting new backup job: vzdump 101 --storage pbs-store --mode snapshot "
                "--node pve2",
                "INFO: Starting Backup of VM 101 (qemu)",
                "ERROR: Backup of VM 101 failed - backup write data failed: No space left",
                "INFO: Backup job finished with errors",
            ]
            assert lines[3].startswith("<27>")
            assert "pvedaemon[" in lines[5]
            assert lines[5].endswith(f"end task {upid} job errors")
            assert lines[5].startswith("<27>")
    finally:
        smtp.close()
        transport.close()


async def test_emission_to_dead_target_is_counted_not_raised() -> None:
    async with run_simulator() as sim, api_session(sim) as s:
        sim.set_targets(smtp=("127.0.0.1", 9), webhook_url="http://127.0.0.1:9/hook")
        upid = await _post(s, "/nodes/pve1/vzdump", vmid="100", storage="local")
        assert (await _wait_task(s, upid))["exitstatus"] == "OK"
        await sim.emitter.drain()
        assert sim.emitter.failed["smtp"] == 1
        assert sim.emitter.failed["webhook"] == 1


async def test_webhook_post_carries_bearer_and_fields() -> None:
    got: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

    async def hook(request: web.Request) -> web.Response:
        await got.put((request.headers.get("Authorization", ""), await request.json()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with run_simulator() as sim:
            sim.set_targets(webhook_url=f"http://127.0.0.1:{port}/hook", webhook_secret="s3cr3t")
            sim.fail_replication("100-0")
            async with asyncio.timeout(5):
                auth, body = await got.get()
        assert auth == "Bearer s3cr3t"
        assert body["title"] == "Replication Job: '100-0' failed"
        assert body["severity"] == "error"
        assert body["fields"] == {"type": "replication", "hostname": "pve1", "job-id": "100-0"}
        assert isinstance(body["timestamp"], int)
    finally:
        await runner.cleanup()


async def test_fenced_node_is_offline_and_ha_guests_recover(pvesim: Simulator) -> None:
    ha = [g.vmid for g in pvesim.lab.guests.values() if g.ha and g.node == "pve2"]
    pvesim.fence_node("pve2")
    async with api_session(pvesim) as s:
        status = {
            e["name"]: e.get("online")
            for e in await _get(s, "/cluster/status")
            if e["type"] == "node"
        }
        assert status == {"pve1": 1, "pve2": 0, "pve3": 1}
        res = await _get(s, "/cluster/resources", type="vm")
        for r in res:
            if r["vmid"] in ha:
                assert r["node"] != "pve2"
                assert r["status"] == "running"
            elif r["node"] == "pve2":
                assert r["status"] == "unknown"
        async with s.get("/api2/json/nodes/pve2/qemu") as r:
            assert r.status == 595


async def test_lost_quorum_blocks_writes_but_not_reads(pvesim: Simulator) -> None:
    pvesim.set_quorum(False)
    async with api_session(pvesim) as s:
        assert (await _get(s, "/cluster/status"))[0]["quorate"] == 0
        async with s.post("/api2/json/nodes/pve1/qemu/100/status/stop") as r:
            assert r.status == 500
            assert r.reason == "cluster not ready - no quorum?"


async def test_stopped_api_refuses_connections_until_started(pvesim: Simulator) -> None:
    await pvesim.stop_api()
    async with api_session(pvesim) as s:
        with pytest.raises(aiohttp.ClientConnectorError):
            await _get(s, "/version")
    await pvesim.start_api()
    async with api_session(pvesim) as s:
        assert (await _get(s, "/version"))["release"] == "9.1"


async def test_dropped_connection_gets_no_answer(pvesim: Simulator) -> None:
    pvesim.drop_connections("/cluster", count=1)
    assert pvesim.tls is not None
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", pvesim.pve_port, ssl=pvesim.tls.client_context(), server_hostname="localhost"
    )
    tok = pvesim.tokens.admin.header
    writer.write(
        f"GET /api2/json/cluster/resources HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: {tok}\r\n\r\n".encode()
    )
    await writer.drain()
    async with asyncio.timeout(5):
        try:
            answer = await reader.read()
        except (ConnectionResetError, OSError):
            answer = b""
    writer.close()
    assert answer == b""
    async with api_session(pvesim) as s:
        assert await _get(s, "/cluster/resources")


async def test_forced_error_status_is_served_count_times(pvesim: Simulator) -> None:
    pvesim.fail_requests("/nodes", status=503, count=2)
    async with api_session(pvesim) as s:
        for _ in range(2):
            async with s.get("/api2/json/nodes") as r:
                assert r.status == 503
        assert len(await _get(s, "/nodes")) == 3


async def test_full_storage_makes_backup_fail(pvesim: Simulator) -> None:
    pvesim.fill_storage("local", 100, node="pve1")
    async with api_session(pvesim) as s:
        st = await _get(s, "/nodes/pve1/storage/local/status")
        assert st["avail"] == 0
        upid = await _post(s, "/nodes/pve1/vzdump", vmid="100", storage="local")
        assert (await _wait_task(s, upid))["exitstatus"] == "job errors"


async def test_admin_api_requires_token_and_injects_faults(pvesim: Simulator) -> None:
    url = f"http://127.0.0.1:{pvesim.admin_port}"
    async with aiohttp.ClientSession() as c:
        async with c.post(f"{url}/faults/crash_guest", json={"vmid": 100}) as r:
            assert r.status == 401
        hdr = {"Authorization": f"Bearer {pvesim.admin_token}"}
        async with c.post(f"{url}/faults/crash-guest", json={"vmid": 100}, headers=hdr) as r:
            assert r.status == 200
        async with c.post(f"{url}/faults/os_system", json={}, headers=hdr) as r:
            assert r.status == 404
        async with c.post(f"{url}/faults/stop_api", json={}, headers=hdr) as r:
            assert r.status == 200
        async with c.get(f"{url}/state", headers=hdr) as r:
            state = await r.json()
    assert pvesim.lab.guests[100].status == "stopped"
    assert state["api_running"]["pve"] is False


async def test_running_task_can_be_stopped_and_lists_without_status() -> None:
    async with run_simulator(instant=False, task_seconds=30) as sim, api_session(sim) as s:
        upid = await _post(s, "/nodes/pve1/qemu/100/status/reboot")
        running = [t for t in await _get(s, "/cluster/tasks") if t["upid"] == upid]
        assert "status" not in running[0]
        assert "endtime" not in running[0]
        async with s.delete(f"/api2/json/nodes/pve1/tasks/{upid}") as r:
            assert r.status == 200
        st = await _get(s, f"/nodes/pve1/tasks/{upid}/status")
        assert st["status"] == "stopped"
        assert st["exitstatus"] == "interrupted by signal"


async def test_migration_moves_guest_to_target(pvesim: Simulator) -> None:
    async with api_session(pvesim) as s:
        upid = await _post(s, "/nodes/pve1/qemu/100/migrate", target="pve3", online="1")
        assert upid.split(":")[5] == "qmigrate"
        assert (await _wait_task(s, upid))["exitstatus"] == "OK"
        assert 100 in [v["vmid"] for v in await _get(s, "/nodes/pve3/qemu")]
        async with s.get("/api2/json/nodes/pve1/qemu/100/status/current") as r:
            assert r.status == 500


async def test_snapshot_create_rollback_delete(pvesim: Simulator) -> None:
    base = "/nodes/pve1/qemu/100/snapshot"
    async with api_session(pvesim) as s:
        await _wait_task(s, await _post(s, base, snapname="before_upgrade"))
        names = [x["name"] for x in await _get(s, base)]
        assert names == ["before_upgrade", "current"]
        dup = await _wait_task(s, await _post(s, base, snapname="before_upgrade"))
        assert dup["exitstatus"] == "snapshot name 'before_upgrade' already used"
        await _wait_task(s, await _post(s, f"{base}/before_upgrade/rollback"))
        async with s.delete(f"/api2/json{base}/before_upgrade") as r:
            await _wait_task(s, (await r.json())["data"])
        assert [x["name"] for x in await _get(s, base)] == ["current"]


async def test_lxc_has_no_reset_and_start_of_running_ct_fails(pvesim: Simulator) -> None:
    ct = next(g for g in pvesim.lab.guests.values() if g.kind == "lxc" and g.running)
    async with api_session(pvesim) as s:
        async with s.post(f"/api2/json/nodes/{ct.node}/lxc/{ct.vmid}/status/reset") as r:
            assert r.status == 501
        async with s.post(f"/api2/json/nodes/{ct.node}/lxc/{ct.vmid}/status/start") as r:
            assert r.status == 500
            assert r.reason == f"CT {ct.vmid} already running"


async def test_starting_running_vm_fails_the_task(pvesim: Simulator) -> None:
    vm = next(g for g in pvesim.lab.guests.values() if g.kind == "qemu" and g.running)
    async with api_session(pvesim) as s:
        upid = await _post(s, f"/nodes/{vm.node}/qemu/{vm.vmid}/status/start")
        assert (await _wait_task(s, upid))["exitstatus"] == f"VM {vm.vmid} already running"
        errors = await _get(s, f"/nodes/{vm.node}/tasks", errors="1")
        assert errors[0]["upid"] == upid


async def test_pbs_verify_of_corrupt_group_fails(pvesim: Simulator) -> None:
    pvesim.corrupt_backup(100)
    async with api_session(pvesim, service="PBS") as s:
        upid = await _post(
            s, "/admin/datastore/store1/verify", **{"backup-type": "vm", "backup-id": "100"}
        )
        st = await _get(s, f"/nodes/localhost/tasks/{upid}/status")
        assert st["exitstatus"].startswith("verification failed")
        snaps = await _get(s, "/admin/datastore/store1/snapshots", **{"backup-id": "100"})
        assert {x["verification"]["state"] for x in snaps} == {"failed"}
