"""Every tool of the gateway, registered once."""

from ..registry import Registry
from . import api, events, pbs, pve


def build_registry() -> Registry:
    """All tools, in the order tools/list shows them."""
    reg = Registry()
    pve.register(reg)
    pbs.register(reg)
    events.register(reg)
    api.register(reg)
    return reg


__all__ = ["build_registry"]
