"""Late answers through the interaction webhook (after a deferred response).

``POST {api}/webhooks/<application id>/<token>`` creates the follow-up message of a deferred
command (it replaces the "thinking..." state); ``PATCH .../messages/@original`` edits the
message whose button was clicked. The token is valid for 15 minutes and is a secret: URLs are
never logged. No bot token is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp
from proxbus_runtime import RateLimitedLog

log = logging.getLogger(__name__)

DISCORD_API = "https://discord.com/api/v10"


class FollowupClient:
    """Sends follow-ups with a timeout; retries 429 (after ``retry_after``) and 5xx a few times."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        api_url: str = DISCORD_API,
        timeout: float = 10.0,
        attempts: int = 3,
    ) -> None:
        self._http = http
        self._api = api_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._attempts = attempts
        self._warn = RateLimitedLog(log, "Discord follow-ups not delivered")
        self.sent = 0
        self.failed = 0

    async def create(self, application_id: str, token: str, message: dict[str, Any]) -> bool:
        """Post the follow-up message of a deferred command."""
        url = f"{self._api}/webhooks/{application_id}/{token}"
        return await self._send("POST", url, message)

    async def edit_original(self, application_id: str, token: str, message: dict[str, Any]) -> bool:
        """Edit the message the interaction belongs to (a clicked button's message)."""
        url = f"{self._api}/webhooks/{application_id}/{token}/messages/@original"
        return await self._send("PATCH", url, message)

    async def _send(self, method: str, url: str, message: dict[str, Any]) -> bool:
        delay = 0.5
        for attempt in range(1, self._attempts + 1):
            try:
                async with self._http.request(
                    method, url, json=message, timeout=self._timeout
                ) as resp:
                    if resp.status < 300:
                        self.sent += 1
                        return True
                    retry_after = delay
                    if resp.status == 429:
                        # Whatever the body holds (null, a list, not JSON): the own backoff.
                        with contextlib.suppress(
                            ValueError, TypeError, aiohttp.ContentTypeError, AttributeError
                        ):
                            retry_after = float((await resp.json()).get("retry_after", delay))
                    elif resp.status < 500:
                        self.failed += 1
                        body = (await resp.text(errors="replace"))[:200]
                        self._warn.record(f"refused with HTTP {resp.status}", detail=body)
                        return False
                    why = f"HTTP {resp.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                retry_after, why = delay, type(exc).__name__
            if attempt < self._attempts:
                await asyncio.sleep(min(retry_after, 10.0))
                delay *= 2
        self.failed += 1
        self._warn.record(f"{why} after {self._attempts} attempts")
        return False
