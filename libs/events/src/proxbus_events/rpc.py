"""The gateway's tools over NATS request/reply (``proxbus.rpc.<tool>``): the wire contract.

Subjects: ``proxbus.rpc.<tool>`` is answered by any gateway (queue group);
``proxbus.rpc.<cluster>.<tool>`` only by a gateway that serves that cluster/site (it answers
as if ``cluster`` were in the arguments), so with several sites on one NATS a request reaches
a gateway that knows the cluster, or nobody ("no responders").
Request: JSON object of tool arguments, header ``Proxbus-Caller`` naming the caller.
Reply on success: the tool's structured result as JSON. On error: headers
``Nats-Service-Error`` (message) and ``Nats-Service-Error-Code`` (HTTP-like code), and a
body ``{"error": "<message>"}``. The client is ``proxbus_runtime.call_tool``.
"""

from __future__ import annotations

CALLER_HEADER = "Proxbus-Caller"
ERROR_HEADER = "Nats-Service-Error"
ERROR_CODE_HEADER = "Nats-Service-Error-Code"
RPC_SERVICE_NAME = "proxbus-gateway"
