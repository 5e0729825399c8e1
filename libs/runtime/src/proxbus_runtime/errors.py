"""Errors raised by the runtime; each says why it exists."""

from __future__ import annotations

from proxbus_events import ProxbusError


class PublishError(ProxbusError):
    """Raised when JetStream did not acknowledge an event (the caller still owns it)."""


class RpcError(ProxbusError):
    """Raised when a gateway tool called over NATS request/reply returned an error."""

    def __init__(self, tool: str, code: int, message: str) -> None:
        super().__init__(f"{tool}: {message}")
        self.tool = tool
        self.code = code
        self.message = message


class RpcTimeout(RpcError):
    """Raised when no gateway answered a NATS RPC call within the timeout."""

    def __init__(self, tool: str, timeout: float) -> None:
        super().__init__(tool, 504, f"no answer from the gateway within {timeout:g}s")


class RpcUnavailable(RpcTimeout):
    """Raised at once when no gateway is subscribed at all (NATS "no responders")."""

    def __init__(self, tool: str) -> None:
        RpcError.__init__(self, tool, 503, "no gateway is running (no responders)")


class StopRequested(ProxbusError):
    """Raised by ``Service.__aenter__`` when the service was told to stop before NATS was ready."""


class FetchError(ProxbusError):
    """Raised when JetStream answered a pull request with an error status (e.g. the consumer
    was deleted, or no JetStream answers): the caller backs off and fetches again."""
