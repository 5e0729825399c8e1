"""Every tool of the gateway, registered once."""

from ..registry import Registry
from . import api, cluster, events, guests, inventory, pbs, snapshots, tasks


def build_registry() -> Registry:
    """All tools, in the order tools/list shows them: grouped by what they are about."""
    reg = Registry()
    for module in (inventory, guests, tasks, snapshots, cluster, pbs, events, api):
        module.register(reg)
    return reg


__all__ = ["build_registry"]
