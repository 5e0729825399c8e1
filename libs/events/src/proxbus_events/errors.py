"""Errors of the contract; each says why it exists."""

from __future__ import annotations


class ProxbusError(Exception):
    """Base class for errors proxbus raises on purpose."""


class ConfigError(ProxbusError):
    """Raised when a configuration (settings, a routes or tools file) is invalid.

    The message is one line for a person; ``proxbus_runtime.main`` prints it and exits 2.
    """
