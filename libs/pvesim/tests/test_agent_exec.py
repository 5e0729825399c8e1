"""QEMU guest agent ``agent/exec`` + ``agent/exec-status`` over HTTPS, as PVE answers them.

Sources: qemu-server ``PVE/API2/Qemu/Agent.pm`` and ``PVE/QemuServer/Agent.pm``
(``assert_agent_available``, ``qemu_exec``, ``qemu_exec_status``), qemu-ga ``qga/commands.c``
(a result is reported once; an unknown pid is "Invalid parameter 'pid'"). The ``command``
array is sent as repeated form values (``command=a&command=b``), as proxmoxer and pvesh do.
"""

from __future__ import annotations

from typing import Any

from proxbus_pvesim.pve_agent import MAX_PENDING, OS_RELEASE
from proxbus_pvesim.testing import api_session, run_simulator

API = "/api2/json"
LAB: dict[str, Any] = {
    "cluster": {"name": "lab", "nodes": 1},
    "guests": {
        "qemu": 0,
        "lxc": 0,
        "list": [
            {"vmid": 100, "type": "qemu", "name": "web1", "node": "pve1", "status": "running"},
            {"vmid": 101, "type": "qemu", "name": "db1", "node": "pve1", "status": "stopped"},
            {
                "vmid": 102,
                "type": "qemu",
                "name": "noagent",
                "node": "pve1",
                "status": "running",
                "agent": False,
            },
        ],
    },
}
EXEC = f"{API}/nodes/pve1/qemu/100/agent/exec"
STATUS = f"{API}/nodes/pve1/qemu/100/agent/exec-status"


async def _exec(s: Any, command: list[str], vmid: int = 100, **extra: str) -> tuple[int, Any]:
    form = [("command", c) for c in command] + list(extra.items())
    async with s.post(f"{API}/nodes/pve1/qemu/{vmid}/agent/exec", data=form) as r:
        return r.status, (await r.json())["data"] if r.status == 200 else r.reason


async def _status(s: Any, pid: int, vmid: int = 100) -> tuple[int, Any]:
    path = f"{API}/nodes/pve1/qemu/{vmid}/agent/exec-status"
    async with s.get(path, params={"pid": str(pid)}) as r:
        return r.status, (await r.json())["data"] if r.status == 200 else r.reason


async def _run(s: Any, command: list[str], **extra: str) -> dict[str, Any]:
    status, started = await _exec(s, command, **extra)
    assert status == 200, started
    status, result = await _status(s, started["pid"])
    assert status == 200, result
    return dict(result)


async def test_exec_runs_the_array_and_exec_status_reports_it_once() -> None:
    async with run_simulator(LAB) as sim, api_session(sim) as s:
        status, started = await _exec(s, ["uname", "-a"])
        assert status == 200, started
        assert set(started) == {"pid"}
        assert isinstance(started["pid"], int)
        [run] = sim.agent_exec.history
        assert (run.vmid, run.pid, run.command) == (100, started["pid"], ("uname", "-a"))
        status, result = await _status(s, started["pid"])
        assert status == 200, result
        assert result == {
            "exited": 1,
            "exitcode": 0,
            "out-data": "Linux web1 6.1.0-28-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 "
            "(2024-11-22) x86_64 GNU/Linux\n",
        }
        # qemu-ga forgets a result once reported
        assert await _status(s, started["pid"]) == (
            500,
            "VM 100 qmp command 'guest-exec-status' failed - Invalid parameter 'pid'",
        )
        assert await _status(s, 424242) == (
            500,
            "VM 100 qmp command 'guest-exec-status' failed - Invalid parameter 'pid'",
        )


async def test_the_simulated_commands_answer_deterministically() -> None:
    async with run_simulator(LAB) as sim, api_session(sim) as s:
        assert await _run(s, ["hostname"]) == {"exited": 1, "exitcode": 0, "out-data": "web1\n"}
        assert await _run(s, ["/usr/bin/cat", "/etc/os-release"]) == {
            "exited": 1,
            "exitcode": 0,
            "out-data": OS_RELEASE,
        }
        assert (await _run(s, ["uname", "-r"]))["out-data"] == "6.1.0-28-amd64\n"
        # elements keep their spaces: three arguments, not four
        assert (await _run(s, ["echo", "a b", "c"]))["out-data"] == "a b c\n"
        assert sim.agent_exec.history[-1].command == ("echo", "a b", "c")
        assert await _run(s, ["cat"], **{"input-data": "from stdin"}) == {
            "exited": 1,
            "exitcode": 0,
            "out-data": "from stdin",
        }
        assert sim.agent_exec.history[-1].input_data == "from stdin"
        assert await _run(s, ["false"]) == {"exited": 1, "exitcode": 1}
        assert await _run(s, ["rm", "-rf", "/"]) == {
            "exited": 1,
            "exitcode": 127,
            "err-data": "rm: command not found\n",
        }


async def test_stopped_vm_no_agent_and_bad_parameters_are_errors() -> None:
    async with run_simulator(LAB) as sim, api_session(sim) as s:
        assert await _exec(s, ["hostname"], vmid=101) == (500, "VM 101 is not running")
        assert await _exec(s, ["hostname"], vmid=102) == (500, "No QEMU guest agent configured")
        assert await _status(s, 1000, vmid=101) == (500, "VM 101 is not running")
        assert await _exec(s, ["hostname"], vmid=999) == (
            500,
            "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist",
        )
        assert await _exec(s, [""]) == (
            500,
            "VM 100 qmp command 'guest-exec' failed - "
            "Failed to execute child process \u201c\u201d (No such file or directory)",
        )
        async with s.post(EXEC, data={}) as r:  # command is required (schema)
            assert r.status == 400
            assert "command" in (await r.json())["errors"]
        async with s.get(STATUS, params={"pid": "x"}) as r:
            assert r.status == 400
            assert (await r.json())["errors"]["pid"] == "type check ('integer') failed - got 'x'"
        async with s.get(STATUS, params=[("pid", "1"), ("pid", "2")]) as r:  # not an array
            assert r.status == 400
            # pve-http-server decode_urlencoded joins repeated values with NUL
            assert (await r.json())["errors"][
                "pid"
            ] == "type check ('integer') failed - got '1\x002'"
        async with s.post(EXEC, data={"command": "x", "input-data": "y" * 65537}) as r:
            assert r.status == 400
        assert sim.agent_exec.history == []


async def test_exec_needs_guest_agent_unrestricted() -> None:
    async with run_simulator(LAB) as sim:
        # PVEVMUser has VM.GuestAgent.Audit only; the schema asks VM.GuestAgent.Unrestricted
        async with api_session(sim, sim.tokens.auditor) as s:
            status, reason = await _exec(s, ["hostname"])
            assert status == 403
            assert "VM.GuestAgent.Unrestricted" in reason
        assert sim.agent_exec.history == []


async def test_unreported_results_are_bounded() -> None:
    async with run_simulator(LAB) as sim, api_session(sim) as s:
        pids = []
        for _ in range(MAX_PENDING + 5):
            status, started = await _exec(s, ["true"])
            assert status == 200
            pids.append(started["pid"])
        assert len(sim.agent_exec.pending) == MAX_PENDING
        assert len(sim.agent_exec.history) == MAX_PENDING
        assert (await _status(s, pids[0]))[0] == 500  # the oldest were forgotten
        assert await _status(s, pids[-1]) == (200, {"exited": 1, "exitcode": 0})
