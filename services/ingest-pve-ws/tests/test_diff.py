from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from proxbus_events import Severity
from proxbus_ingest_pve_ws.diff import (
    Snapshot,
    Thresholds,
    build_snapshot,
    diff_snapshots,
    storage_level,
)

T = Thresholds()


def _res(
    status: str = "running", node_status: str = "online", used: int = 50, uptime: int = 1000
) -> list[dict[str, Any]]:
    return [
        {"type": "node", "node": "pve1", "status": node_status, "id": "node/pve1"},
        {"type": "node", "node": "pve2", "status": "online", "id": "node/pve2"},
        {
            "type": "qemu",
            "vmid": 100,
            "name": "web",
            "node": "pve1",
            "status": status,
            "uptime": uptime,
        },
        {"type": "storage", "storage": "local", "node": "pve1", "disk": used, "maxdisk": 100},
    ]


def _snap(
    at: float, prev: Snapshot | None = None, ha: list[dict[str, Any]] | None = None, **kw: Any
) -> Snapshot:
    return build_snapshot(_res(**kw), ha, now=at, previous=prev, thresholds=T)


def _diff(prev: Snapshot, cur: Snapshot, tasks: list[dict[str, Any]] | None = None) -> list[Any]:
    return diff_snapshots(prev, cur, tasks or [], cluster="lab", site="lab")


def test_running_to_stopped_without_task_is_a_crash() -> None:
    a = _snap(1000.0)
    b = _snap(1005.0, a, status="stopped", uptime=0)
    [ev] = _diff(a, b)
    assert (ev.kind, ev.severity, ev.vmid, ev.node) == (
        "vm.crashed",
        Severity.CRITICAL,
        100,
        "pve1",
    )


def test_stop_task_since_boot_explains_the_stop() -> None:
    a = _snap(1000.0)
    b = _snap(1005.0, a, status="stopped", uptime=0)
    stop = {"upid": "UPID:x", "type": "qmshutdown", "id": "100", "starttime": 1003}
    assert _diff(a, b, [stop]) == []


def test_stop_task_from_before_the_current_boot_does_not_explain() -> None:
    a = _snap(1000.0, uptime=100)  # booted at 900
    b = _snap(1005.0, a, status="stopped", uptime=0)
    old_stop = {"upid": "UPID:x", "type": "qmstop", "id": "100", "starttime": 800, "endtime": 801}
    assert [e.kind for e in _diff(a, b, [old_stop])] == ["vm.crashed"]


def test_guests_of_an_offline_node_are_not_crashes() -> None:
    a = _snap(1000.0)
    b = _snap(1005.0, a, status="stopped", node_status="offline")
    assert [e.kind for e in _diff(a, b)] == ["node.offline"]
    assert _diff(a, b)[0].node == "pve1"


def test_node_coming_back_is_an_info_resolution() -> None:
    a = _snap(1000.0, node_status="offline")
    b = _snap(1005.0, a)
    [ev] = _diff(a, b)
    assert (ev.kind, ev.severity, ev.metadata["resolved"]) == ("node.offline", Severity.INFO, True)


def test_storage_crossing_levels_and_back() -> None:
    a = _snap(1000.0)
    b = _snap(1005.0, a, used=90)
    c = _snap(1010.0, b, used=97)
    d = _snap(1015.0, c, used=94)  # within hysteresis of 95: no change
    e = _snap(1020.0, d, used=50)
    assert [(x.kind, x.severity) for x in _diff(a, b)] == [("storage.full", Severity.WARNING)]
    assert [(x.kind, x.severity) for x in _diff(b, c)] == [("storage.full", Severity.ERROR)]
    assert _diff(c, d) == []
    [back] = _diff(d, e)
    assert (back.severity, back.metadata["resolved"]) == (Severity.INFO, True)
    assert back.fingerprint == _diff(a, b)[0].fingerprint


def test_ha_state_change_is_reported() -> None:
    ha1 = [{"type": "service", "sid": "vm:100", "state": "started", "node": "pve1"}]
    ha2 = [{"type": "service", "sid": "vm:100", "state": "fence", "node": "pve1"}]
    a = _snap(1000.0, ha=ha1)
    b = _snap(1005.0, a, ha=ha2)
    [ev] = _diff(a, b)
    assert (ev.kind, ev.severity, ev.vmid) == ("ha.state", Severity.ERROR, 100)


def test_diff_ids_are_deterministic_for_the_same_snapshots() -> None:
    a = _snap(1000.0)
    b = _snap(1005.0, a, status="stopped", uptime=0)
    b2 = _snap(1006.0, a, status="stopped", uptime=0)
    assert _diff(a, b)[0].id == _diff(a, b2)[0].id


def test_snapshot_round_trips_through_json_dict() -> None:
    a = _snap(1000.0)
    again = Snapshot.from_dict(a.to_dict())
    assert again == a


@given(st.lists(st.floats(0, 1), min_size=1, max_size=30))
def test_storage_level_never_flaps_inside_the_hysteresis_band(fractions: list[float]) -> None:
    level = 0
    for f in fractions:
        new = storage_level(f, level, T)
        if new < level:
            assert f < (T.crit if level == 2 else T.warn) - T.hysteresis + 1e-9
        if new > level:
            assert f >= (T.warn if new == 1 else T.crit)
        level = new


_vals = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=8)
)


@given(
    st.lists(
        st.fixed_dictionaries(
            {"type": st.sampled_from(["qemu", "lxc", "node", "storage", "sdn"])},
            optional=dict.fromkeys(
                (
                    "vmid",
                    "node",
                    "status",
                    "uptime",
                    "name",
                    "storage",
                    "disk",
                    "maxdisk",
                    "shared",
                    "template",
                ),
                _vals,
            ),
        ),
        max_size=8,
    )
)
def test_malformed_resources_are_skipped_not_raised(resources: list[dict[str, Any]]) -> None:
    a = build_snapshot(resources, None, now=1000.0, previous=None, thresholds=T)
    b = build_snapshot(resources, None, now=1005.0, previous=a, thresholds=T)
    diff_snapshots(a, b, [], cluster="lab", site="lab")


def test_shared_storage_is_reported_once_not_per_node() -> None:
    def res(used: int) -> list[dict[str, Any]]:
        return [
            {
                "type": "storage",
                "storage": "nfs",
                "node": n,
                "disk": used,
                "maxdisk": 100,
                "shared": 1,
            }
            for n in ("pve1", "pve2", "pve3")
        ]

    a = build_snapshot(res(10), None, now=1000.0, previous=None, thresholds=T)
    b = build_snapshot(res(96), None, now=1005.0, previous=a, thresholds=T)
    [ev] = _diff(a, b)
    assert (ev.kind, ev.node, ev.severity) == ("storage.full", None, Severity.ERROR)


# Issue 14: a crash followed by a restart between two polls (or while the watcher was down).
# PVE's uptime of a running guest is the age of its QEMU/LXC process (qemu-server
# PVE/QemuServer.pm vmstatus: uptime = (host uptime - pstat starttime) / user_hz), so a new
# process shows as a boot time later than the previous snapshot's.


def test_guest_running_again_with_a_new_process_and_no_task_is_crashed() -> None:
    prev = _snap(10_000, uptime=5000)
    cur = _snap(10_060, prev, uptime=20)  # booted at 10_040, long after 5_000
    [ev] = diff_snapshots(prev, cur, [], cluster="c", site="lab")
    assert (ev.kind, ev.vmid, ev.severity) == ("vm.crashed", 100, Severity.CRITICAL)
    assert ev.metadata["restarted"] is True
    assert ev.metadata["evidence"] == "uptime"


def test_guest_restarted_by_a_stop_or_reboot_task_is_not_crashed() -> None:
    prev = _snap(10_000, uptime=5000)
    cur = _snap(10_060, prev, uptime=20)
    for task in ("qmstop", "qmreboot", "qmshutdown"):
        tasks = [{"type": task, "id": "100", "starttime": 10_030, "status": "OK"}]
        assert diff_snapshots(prev, cur, tasks, cluster="c", site="lab") == []


def test_start_task_for_a_guest_that_was_running_reveals_a_crash_and_restart() -> None:
    # Uptimes alone cannot tell (the guest itself started only seconds before the crash).
    prev = _snap(10_000, uptime=3)
    cur = _snap(10_005, prev, uptime=2)
    tasks = [{"type": "qmstart", "id": "100", "starttime": 10_003, "status": "OK"}]
    [ev] = diff_snapshots(prev, cur, tasks, cluster="c", site="lab")
    assert (ev.kind, ev.metadata["evidence"]) == ("vm.crashed", "start task")
    # The start task of the run the previous snapshot already saw is not a restart.
    old_start = [{"type": "qmstart", "id": "100", "starttime": 9_997, "status": "OK"}]
    assert diff_snapshots(prev, cur, old_start, cluster="c", site="lab") == []


def test_a_changed_pid_reveals_a_restart() -> None:
    prev = _snap(10_000, uptime=5000)
    prev.guests["100"]["pid"] = 4242
    cur = _snap(10_005, prev, uptime=5005)
    cur.guests["100"]["pid"] = 4343
    [ev] = diff_snapshots(prev, cur, [], cluster="c", site="lab")
    assert ev.metadata["evidence"] == "pid"


def test_steady_running_guest_is_not_crashed() -> None:
    prev = _snap(10_000, uptime=5000)
    cur = _snap(10_060, prev, uptime=5060)
    assert diff_snapshots(prev, cur, [], cluster="c", site="lab") == []
