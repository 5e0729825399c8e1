"""requests adapters: connection pool sizing and SHA-256 certificate pinning."""

from __future__ import annotations

from typing import Any

from requests.adapters import HTTPAdapter


class PoolAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose pool fits the worker count; optionally pins the peer cert.

    With ``fingerprint`` set the session must use ``verify=False``: urllib3 then checks the
    SHA-256 of the certificate the server presented (``assert_fingerprint``) on every new
    connection and refuses any other, which is how a self-signed PVE certificate is trusted.
    """

    def __init__(self, pool_size: int, fingerprint: str | None = None) -> None:
        self._fingerprint = fingerprint
        super().__init__(pool_connections=1, pool_maxsize=pool_size, max_retries=0)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        if self._fingerprint:
            pool_kwargs["assert_fingerprint"] = self._fingerprint
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)
