"""Scenario building, UPIDs, task history bounds and pure helpers."""

import time
from pathlib import Path

import pytest
from proxbus_pvesim import ScenarioError, build_lab, load_scenario
from proxbus_pvesim.auth import PVE_ROLES, AclEntry, Principal
from proxbus_pvesim.emit import syslog_line
from proxbus_pvesim.model import BackupSnapshot
from proxbus_pvesim.pbs_api import prune_selection
from proxbus_pvesim.tasks import PBS_UPID, PVE_UPID, TaskManager
from proxmoxer.tools import Tasks


def test_default_lab_is_deterministic_and_believable() -> None:
    a, b = build_lab().lab, build_lab().lab
    assert [(g.vmid, g.name, g.node, g.status) for g in a.guests.values()] == [
        (g.vmid, g.name, g.node, g.status) for g in b.guests.values()
    ]
    assert list(a.nodes) == ["pve1", "pve2", "pve3"]
    assert sum(g.kind == "qemu" for g in a.guests.values()) == 20
    assert sum(g.kind == "lxc" for g in a.guests.values()) == 10
    assert set(a.storages) == {"local", "local-lvm", "pbs-store"}
    assert a.pbs is not None
    assert a.pbs.datastores["store1"].snapshots


def test_scenario_file_describes_standalone_node(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(
        "standalone: edge1\nguests:\n  qemu: 0\n  lxc: 0\n  list:\n"
        "    - {vmid: 300, type: qemu, name: fw, node: edge1, tags: [infra]}\n"
        "pbs: null\ntask_seconds: {default: 1, vzdump: 5}\n"
    )
    sc = load_scenario(f)
    assert sc.lab.cluster_name is None
    assert list(sc.lab.nodes) == ["edge1"]
    assert sc.lab.guests[300].tags == ("infra",)
    assert sc.lab.pbs is None
    assert sc.task_seconds["vzdump"] == 5


def test_invalid_scenario_raises_scenario_error(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("guests:\n  list:\n    - {vmid: 1, node: nowhere}\n")
    with pytest.raises(ScenarioError):
        load_scenario(f)


async def test_upids_decode_like_proxmoxer_and_history_is_bounded() -> None:
    tm = TaskManager("PVE", {"default": 0}, instant=True, per_node=5)
    tasks = [tm.start("pve1", "qmstart", "100", "root@pam!admin", lambda t: 0) for _ in range(8)]
    assert PVE_UPID.fullmatch(tasks[0].upid)
    decoded = Tasks.decode_upid(tasks[0].upid)
    assert decoded["node"] == "pve1"
    assert decoded["type"] == "qmstart"
    assert decoded["user"] == "root@pam"
    assert len(tm.by_node["pve1"]) == 5
    assert tasks[0].upid not in tm.index
    pbs = TaskManager("PBS", {"default": 0}, instant=True)
    assert PBS_UPID.fullmatch(
        pbs.start("pbs1", "garbage_collection", "store1", "root@pam", lambda t: 0).upid
    )
    await tm.close()
    await pbs.close()


def test_most_specific_acl_path_wins() -> None:
    p = Principal(
        "op@pve!x", (AclEntry("/", "PVEAuditor"), AclEntry("/vms/100", "NoAccess")), PVE_ROLES
    )
    assert p.has("/vms/101", "VM.Audit")
    assert not p.has("/vms/100", "VM.Audit")
    assert not p.has("/vms/101", "VM.PowerMgmt")


def test_syslog_lines_follow_rfc3164_and_rfc5424() -> None:
    line = syslog_line("rfc3164", "pve1", "pvedaemon", 1401, "err", "end task X boom", when=0)
    assert line.startswith("<27>")
    assert " pve1 pvedaemon[1401]: end task X boom" in line
    line = syslog_line("rfc5424", "pve1", "pvedaemon", 1401, "info", "hi", when=0)
    assert line.startswith("<30>1 ")
    assert " pve1 pvedaemon 1401 - - hi" in line


def test_prune_keeps_last_n() -> None:
    snaps = [BackupSnapshot("vm", "100", 1_700_000_000 + i * 86400, 1) for i in range(5)]
    kept = prune_selection(snaps, {"keep-last": 2})
    assert kept == {snaps[4].backup_time, snaps[3].backup_time}
    assert len(prune_selection(snaps, {})) == 5


def test_prune_marks_like_pbs_across_options() -> None:
    """keep-last=2,keep-daily=2 on two backups a day: the two newest (same day), then the newest
    of each of the next two days; the day's second backups are removed; a protected one stays
    (pbs-datastore src/prune.rs ``compute_prune_info``)."""
    day0 = int(time.mktime((2025, 3, 10, 12, 0, 0, 0, 0, -1)))
    times = [day0 - d * 86400 - h * 3600 for d in range(5) for h in (0, 2)]
    opts = {"keep-last": 2, "keep-daily": 2}
    kept = prune_selection([BackupSnapshot("vm", "100", t, 1) for t in times], opts)
    assert sorted(kept, reverse=True) == [times[0], times[1], times[2], times[4]]
    snaps = [BackupSnapshot("vm", "100", t, 1, protected=t == times[-1]) for t in times]
    assert times[-1] in prune_selection(snaps, opts)
