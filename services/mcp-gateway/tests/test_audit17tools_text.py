"""The text an agent reads must carry the ids it needs for the next call (issue 17 audit).

Many clients hand the model only the text content: a volume id or UPID cut with "…" in a
table cannot be passed to restore_backup / delete_backup / get_task_log / cancel_task.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from proxbus_mcp_gateway.gateway import Gateway
from proxbus_mcp_gateway.testing import ADMIN, gateway_on
from proxbus_pvesim.simulator import Simulator
from proxbus_pvesim.testing import run_simulator

LAB: dict[str, Any] = {
    "cluster": {"name": "lab", "nodes": 2},
    "guests": {
        "qemu": 0,
        "lxc": 0,
        "list": [
            {"vmid": 100, "type": "qemu", "name": "web1", "node": "pve1", "status": "running"}
        ],
    },
}


@pytest_asyncio.fixture
async def lab() -> AsyncIterator[tuple[Simulator, Gateway]]:
    async with run_simulator(LAB, instant=True) as sim, gateway_on(sim) as gw:
        yield sim, gw


async def call(gw: Gateway, tool: str, **args: Any) -> Any:
    out = await gw.call(tool, args, ADMIN)
    assert out.ok, (tool, out.error)
    return out.result


async def test_volume_ids_and_upids_appear_whole_in_the_text(
    lab: tuple[Simulator, Gateway],
) -> None:
    _, gw = lab
    assert (await call(gw, "create_backup", vmid=100, storage="local", wait=True)).data["upid"]
    assert (await call(gw, "pbs_start_gc", store="store1", wait=True)).data["upid"]
    for args in ({"storage": "local"}, {"storage": "pbs-store"}):
        listed = await call(gw, "list_storage_content", **args)
        assert listed.data["items"]
        for item in listed.data["items"]:
            assert item["volid"] in listed.text.split(), (item["volid"], listed.text)
        assert "…" not in listed.text
    tasks = await call(gw, "get_recent_tasks")
    for item in tasks.data["items"]:
        assert item["upid"] in tasks.text.split(), tasks.text
    pbs_tasks = await call(gw, "pbs_get_tasks")
    assert pbs_tasks.data["items"]
    for item in pbs_tasks.data["items"]:
        assert item["upid"] in pbs_tasks.text.split(), pbs_tasks.text


async def test_sizes_and_addresses_read_like_text(lab: tuple[Simulator, Gateway]) -> None:
    sim, gw = lab
    listed = await call(gw, "list_storage_content", storage="local", node="pve1", content="iso")
    assert "747.0M" in listed.text  # 783286272 bytes
    assert "783286272" not in listed.text
    net = await call(gw, "get_guest_network", vmid=100)
    assert sim.lab.guests[100].guest_ip() in net.text.split()
    assert "['" not in net.text
    disks = await call(gw, "get_guest_disks", vmid=100)
    assert "[" not in disks.text


async def test_plans_show_sizes_and_times_readably(lab: tuple[Simulator, Gateway]) -> None:
    _, gw = lab
    assert (await call(gw, "create_backup", vmid=100, storage="local", wait=True)).data["upid"]
    listed = await call(gw, "list_storage_content", storage="local", content="backup")
    item = listed.data["items"][0]
    plan = await call(gw, "delete_backup", volid=item["volid"])
    assert f"size={item['size'] / 1024**3:.1f}G" in plan.text, plan.text
    assert "ctime=20" in plan.text
    assert plan.data["current"]["size"] == item["size"]  # structured content keeps bytes


def test_progress_names_the_tasks_of_the_new_tools() -> None:
    """pve-manager www/manager6/Utils.js task_desc_table: ``resize`` (VM/CT Resize),
    ``imgdel`` (Erase data): progress reads what is happening, not the raw task type."""
    from proxbus_mcp_gateway.tools._common import describe_task

    resize = "UPID:pve1:00001234:00000001:65000000:resize:100:root@pam:"
    imgdel = "UPID:pve1:00001234:00000001:65000000:imgdel::root@pam:"
    assert describe_task(resize) == "disk resize 100"
    assert describe_task(imgdel) == "volume deletion"
