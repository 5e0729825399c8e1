"""Configuration: the file schema (``schema``), reading it (``loading``) and the resolved
runtime types (``resolved``)."""

from ..notifiers import ReceiverBase
from .loading import load_config, parse_config
from .resolved import DispatcherConfig, Route
from .schema import ALL_LABELS, GROUP_LABELS, InhibitRuleConfig, RouteConfig, RoutesFile

__all__ = [
    "ALL_LABELS",
    "GROUP_LABELS",
    "DispatcherConfig",
    "InhibitRuleConfig",
    "ReceiverBase",
    "Route",
    "RouteConfig",
    "RoutesFile",
    "load_config",
    "parse_config",
]
