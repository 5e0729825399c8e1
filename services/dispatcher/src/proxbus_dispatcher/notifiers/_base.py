"""What every notifier shares: the interface, template rendering and HTTP status mapping."""

from __future__ import annotations

import json
from typing import Protocol

import httpx

from ..config import ReceiverBase
from ..errors import PermanentError, RetryableError
from ..notification import Notification
from ..templates import DEFAULT_BODY, DEFAULT_TITLE, render


class Notifier(Protocol):
    """Sends one notification to one target."""

    async def send(self, notification: Notification) -> None: ...


def render_title(receiver: ReceiverBase, notification: Notification, limit: int = 256) -> str:
    return render(receiver.title_template or DEFAULT_TITLE, notification.template_context(), limit)


def render_body(receiver: ReceiverBase, notification: Notification, limit: int = 4000) -> str:
    return render(receiver.body_template or DEFAULT_BODY, notification.template_context(), limit)


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait from a JSON ``retry_after`` (Discord) or a ``Retry-After`` header."""
    try:
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("retry_after"), int | float):
            return max(0.0, float(body["retry_after"]))
    except (json.JSONDecodeError, UnicodeDecodeError):
        pass
    header = response.headers.get("Retry-After")
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            return None
    return None


async def post_json(
    http: httpx.AsyncClient,
    url: str,
    *,
    target: str,
    content: bytes,
    headers: dict[str, str] | None = None,
    timeout: float,
) -> httpx.Response:
    """POST and map the outcome: 2xx returns, 429/5xx/network → Retryable, other 4xx → Permanent.

    ``target`` names the receiver in errors; the URL (which may hold a token) never appears.
    """
    try:
        response = await http.post(
            url,
            content=content,
            headers={"Content-Type": "application/json", **(headers or {})},
            timeout=timeout,
        )
    except httpx.TimeoutException:
        raise RetryableError(f"{target}: timed out after {timeout:g}s") from None
    except httpx.HTTPError as exc:
        raise RetryableError(f"{target}: {type(exc).__name__}: {exc}") from None
    if response.is_success:
        return response
    snippet = response.text[:200].replace("\n", " ")
    if response.status_code == 429:
        raise RetryableError(f"{target}: HTTP 429 rate limited", retry_after=_retry_after(response))
    if response.status_code >= 500 or response.status_code in (408, 425):
        raise RetryableError(
            f"{target}: HTTP {response.status_code} {snippet}", retry_after=_retry_after(response)
        )
    raise PermanentError(f"{target}: HTTP {response.status_code} {snippet}")
