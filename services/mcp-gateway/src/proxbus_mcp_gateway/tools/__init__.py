"""Every tool of the gateway, registered once."""

from ..registry import Registry
from . import api, cluster, events, guests, inventory, pbs, snapshots, tasks

# tools/list order of the PVE tools, as clients have always seen it; the modules
# register by role, so their tools interleave here.
PVE_ORDER = (
    "get_cluster_status",
    "get_nodes",
    "get_node_status",
    "get_vms",
    "get_lxcs",
    "execute_vm_command",
    "execute_lxc_command",
    "get_storage",
    "get_recent_tasks",
    "get_task_status",
    "get_guest_status",
    "get_guest_config",
    "list_snapshots",
    "create_snapshot",
    "rollback_snapshot",
    "delete_snapshot",
    "create_backup",
    "migrate_guest",
    "get_cluster_log",
    "get_ha_status",
    "list_clusters",
    "test_connectivity",
    "run_diagnostic",
    "whoami",
)


def _register_pve(reg: Registry) -> None:
    """The PVE tools, added to ``reg`` in ``PVE_ORDER``.

    Raises:
        ValueError: a PVE tool is missing from ``PVE_ORDER``, or a name there is no tool.
    """
    pve = Registry()
    for module in (inventory, guests, tasks, snapshots, cluster):
        module.register(pve)
    if set(pve.tools) != set(PVE_ORDER):
        unlisted = sorted(set(pve.tools) - set(PVE_ORDER))
        unknown = sorted(set(PVE_ORDER) - set(pve.tools))
        raise ValueError(f"PVE_ORDER is stale: unlisted {unlisted}, unknown {unknown}")
    for name in PVE_ORDER:
        reg.add(pve.tools[name])


def build_registry() -> Registry:
    """All tools, in the order tools/list shows them."""
    reg = Registry()
    _register_pve(reg)
    pbs.register(reg)
    events.register(reg)
    api.register(reg)
    return reg


__all__ = ["build_registry"]
