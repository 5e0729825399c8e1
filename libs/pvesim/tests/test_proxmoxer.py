"""Unmodified proxmoxer against the simulator, TLS verification on."""

import hashlib
import socket
import ssl

import pytest
import requests
from proxbus_pvesim.testing import ThreadedSimulator
from proxmoxer import AuthenticationError, ProxmoxAPI, ResourceException
from proxmoxer.tools import Tasks


def _api(sim: ThreadedSimulator, **auth: str) -> ProxmoxAPI:
    return ProxmoxAPI("127.0.0.1", port=sim.pve_port, verify_ssl=str(sim.ca_path), **auth)


def test_proxmoxer_starts_vm_and_waits_for_task(pvesim_thread: ThreadedSimulator) -> None:
    px = _api(pvesim_thread, **pvesim_thread.tokens.admin.proxmoxer_kwargs())
    assert [n["node"] for n in px.nodes.get()] == ["pve1", "pve2", "pve3"]
    vms = px.nodes("pve1").qemu.get()
    stopped = next(v for v in vms if v["status"] == "stopped")
    upid = px.nodes("pve1").qemu(stopped["vmid"]).status.start.post()
    assert Tasks.decode_upid(upid)["type"] == "qmstart"
    status = Tasks.blocking_status(px, upid, timeout=10, polling_interval=0.02)
    assert status["exitstatus"] == "OK"
    assert px.nodes("pve1").qemu(stopped["vmid"]).status.current.get()["status"] == "running"


def test_wrong_token_gets_401(pvesim_thread: ThreadedSimulator) -> None:
    tok = pvesim_thread.tokens.admin
    px = _api(pvesim_thread, user=tok.user, token_name=tok.tokenid, token_value="wrong")
    with pytest.raises((AuthenticationError, ResourceException)) as info:
        px.nodes.get()
    assert getattr(info.value, "status_code", 401) == 401


def test_missing_auth_gets_401_with_empty_body(pvesim_thread: ThreadedSimulator) -> None:
    r = requests.get(
        f"{pvesim_thread.pve_url}/api2/json/nodes", verify=str(pvesim_thread.ca_path), timeout=5
    )
    assert r.status_code == 401
    assert r.content == b""


def test_read_only_token_starting_vm_gets_403(pvesim_thread: ThreadedSimulator) -> None:
    px = _api(pvesim_thread, **pvesim_thread.tokens.auditor.proxmoxer_kwargs())
    with pytest.raises(ResourceException) as info:
        px.nodes("pve1").qemu(100).status.start.post()
    assert info.value.status_code == 403
    assert info.value.content == "Permission check failed (/vms/100, VM.PowerMgmt)"


def test_password_login_needs_csrf_token_for_writes(pvesim_thread: ThreadedSimulator) -> None:
    ca = str(pvesim_thread.ca_path)
    base = f"{pvesim_thread.pve_url}/api2/json"
    r = requests.post(
        f"{base}/access/ticket",
        data={"username": "root@pam", "password": "pvesim"},
        verify=ca,
        timeout=5,
    )
    data = r.json()["data"]
    cookies = {"PVEAuthCookie": data["ticket"]}
    assert requests.get(f"{base}/nodes", cookies=cookies, verify=ca, timeout=5).ok
    no_csrf = requests.post(
        f"{base}/nodes/pve1/qemu/100/status/stop", cookies=cookies, verify=ca, timeout=5
    )
    assert no_csrf.status_code == 401
    ok = requests.post(
        f"{base}/nodes/pve1/qemu/100/status/stop",
        cookies=cookies,
        verify=ca,
        headers={"CSRFPreventionToken": data["CSRFPreventionToken"]},
        timeout=5,
    )
    assert ok.json()["data"].startswith("UPID:pve1:")


def test_bad_password_raises_authentication_error(pvesim_thread: ThreadedSimulator) -> None:
    with pytest.raises(AuthenticationError):
        _api(pvesim_thread, user="root@pam", password="nope")


def test_unknown_vmid_node_and_path_errors_match_proxmox(pvesim_thread: ThreadedSimulator) -> None:
    px = _api(pvesim_thread, **pvesim_thread.tokens.admin.proxmoxer_kwargs())
    with pytest.raises(ResourceException) as info:
        px.nodes("pve1").qemu(999).status.current.get()
    assert info.value.status_code == 500
    assert (
        info.value.content == "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist"
    )
    with pytest.raises(ResourceException) as info:
        px.nodes("nosuch").qemu.get()
    assert "hostname lookup 'nosuch' failed" in info.value.content
    with pytest.raises(ResourceException) as info:
        px.nodes("pve1").foo.get()
    assert info.value.status_code == 501
    assert info.value.content == "Method 'GET /nodes/pve1/foo' not implemented"
    with pytest.raises(ResourceException) as info:
        px.nodes("pve1").qemu("abc").status.current.get()
    assert info.value.status_code == 400
    assert "vmid" in info.value.errors


def test_pbs_token_lists_snapshots_with_verification(pvesim_thread: ThreadedSimulator) -> None:
    pbs = ProxmoxAPI(
        "127.0.0.1",
        port=pvesim_thread.pbs_port,
        service="PBS",
        verify_ssl=str(pvesim_thread.ca_path),
        **pvesim_thread.pbs_tokens.admin.proxmoxer_kwargs(),
    )
    snaps = pbs.admin.datastore("store1").snapshots.get()
    assert any(s.get("verification", {}).get("state") == "ok" for s in snaps)
    upid = pbs.admin.datastore("store1").gc.post()
    assert len(upid.split(":")) == 10
    status = pbs.nodes("localhost").tasks(upid).status.get()
    assert status["status"] == "stopped"
    assert status["exitstatus"] == "OK"


def test_fingerprint_is_sha256_of_served_certificate(pvesim_thread: ThreadedSimulator) -> None:
    ctx = ssl.create_default_context(cafile=str(pvesim_thread.ca_path))
    with (
        socket.create_connection(("127.0.0.1", pvesim_thread.pve_port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    digest = hashlib.sha256(der).hexdigest().upper()
    assert pvesim_thread.fingerprint == ":".join(digest[i : i + 2] for i in range(0, 64, 2))


def test_proxmoxer_agent_exec_sends_the_command_array_intact(
    pvesim_thread: ThreadedSimulator,
) -> None:
    # proxmoxer (requests) sends a list as repeated form values: command=echo&command=a+b...
    px = _api(pvesim_thread, **pvesim_thread.tokens.admin.proxmoxer_kwargs())
    vm = next(v for v in px.nodes("pve1").qemu.get() if v["status"] == "running")
    agent = px.nodes("pve1").qemu(vm["vmid"]).agent
    command = ["echo", "a b", "c"]
    pid = agent.exec.post(command=command)["pid"]
    assert pvesim_thread.call(lambda s: s.agent_exec.history[-1].command) == tuple(command)
    assert agent("exec-status").get(pid=pid) == {"exited": 1, "exitcode": 0, "out-data": "a b c\n"}
    with pytest.raises(ResourceException) as info:
        agent("exec-status").get(pid=pid)
    assert info.value.status_code == 500
    assert "Invalid parameter 'pid'" in info.value.content
