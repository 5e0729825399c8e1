"""proxbus dispatcher: routing, silences, inhibition, grouping, notifiers, retries, dead letters."""

from .admin import cli_main
from .config import DispatcherConfig, Route, load_config, parse_config
from .dlq import DeadLetter, DlqEntry, dlq_list, dlq_replay
from .errors import ConfigError, PermanentError, RetryableError
from .notification import Notification
from .stages.routing import match_routes

__all__ = [
    "ConfigError",
    "DeadLetter",
    "DispatcherConfig",
    "DlqEntry",
    "Notification",
    "PermanentError",
    "RetryableError",
    "Route",
    "cli_main",
    "dlq_list",
    "dlq_replay",
    "load_config",
    "match_routes",
    "parse_config",
]
