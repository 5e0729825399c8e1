"""Every tool of the gateway, registered once."""

from ..registry import Registry
from . import (
    api,
    backups,
    cluster,
    events,
    guest_devices,
    guests,
    inventory,
    pbs,
    provisioning,
    snapshots,
    task_control,
    tasks,
)


def build_registry() -> Registry:
    """All tools, in the order tools/list shows them: grouped by what they are about."""
    reg = Registry()
    for module in (
        inventory,
        guests,
        guest_devices,
        provisioning,
        tasks,
        task_control,
        snapshots,
        backups,
        cluster,
        pbs,
        events,
        api,
    ):
        module.register(reg)
    return reg


__all__ = ["build_registry"]
