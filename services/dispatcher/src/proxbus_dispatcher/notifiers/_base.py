"""What every notifier shares: the interface, template rendering and HTTP status mapping."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp
from jinja2 import TemplateSyntaxError
from proxbus_events import StreamLimits
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..durations import Duration
from ..errors import PermanentError, RetryableError
from ..notification import Notification
from ..templates import DEFAULT_BODY, DEFAULT_TITLE, compile_template, render


class StrictModel(BaseModel):
    """A frozen config model that refuses unknown keys (typos fail with their line)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class ReceiverBase(StrictModel):
    """Options every receiver has: templates, limits and retry policy."""

    name: str = Field(pattern=r"^[a-z0-9_-]{1,64}$")
    title_template: str | None = None
    body_template: str | None = None
    concurrency: int = Field(default=4, ge=1, le=256)
    rate_limit: float | None = Field(default=None, gt=0, description="notifications per second")
    # None: retried until ``max_age`` (a target down for minutes or hours still gets the alert
    # once it is back); a number dead-letters after that many attempts.
    max_attempts: int | None = Field(default=None, ge=1, le=1000)
    max_age: Duration = 24 * 3600.0
    backoff_base: Duration = 1.0
    backoff_max: Duration = 300.0
    timeout: Duration = 10.0
    # Backlog bound, checked when a delivery is taken (and ahead of arrivals by the worker's
    # shed loop, whatever the sends do): beyond it → dead letter, not sent. None: unbounded
    # (the stream's limits only).
    max_backlog: int | None = Field(default=10_000, ge=1)
    # The same in bytes (estimated: deliveries waiting × their mean size, see delivery.py).
    max_backlog_bytes: int | None = Field(default=None, ge=1)
    # Circuit breaker: this many consecutive retryable failures → one probe per interval.
    breaker_failures: int = Field(default=10, ge=1)
    breaker_interval: Duration = 30.0
    # Times in the default templates (``at:``, ``ongoing since``): an IANA zone name.
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (an IANA name such as UTC or Europe/Berlin)"
            ) from None
        return value

    @field_validator("max_age")
    @classmethod
    def _below_the_stream_max_age(cls, value: float) -> float:
        """JetStream deletes a delivery older than its stream's max age without a dead letter:
        the receiver's age limit must dead-letter it first (issue 19)."""
        limit = StreamLimits().deliveries_max_age
        if value >= limit:
            raise ValueError(
                f"max_age must be below {limit / 86400:g} days, the max age of "
                "PROXBUS_DELIVERIES (an older delivery is deleted with no dead letter)"
            )
        return value

    @field_validator("title_template", "body_template")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                compile_template(value)
            except TemplateSyntaxError as exc:
                raise ValueError(
                    f"template error at template line {exc.lineno}: {exc.message}"
                ) from exc
        return value


def split_list(value: object) -> object:
    """``"a, b"`` → ``["a", "b"]`` (lists given as one comma-separated string)."""
    return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value


class Notifier(Protocol):
    """Sends one notification to one target."""

    async def send(self, notification: Notification) -> None: ...


def template_context(receiver: ReceiverBase, notification: Notification) -> dict[str, Any]:
    """The notification's template fields and the receiver's ``timezone``."""
    return {**notification.template_context(), "timezone": receiver.timezone}


def render_title(receiver: ReceiverBase, notification: Notification, limit: int = 256) -> str:
    return render(
        receiver.title_template or DEFAULT_TITLE, template_context(receiver, notification), limit
    )


def render_body(
    receiver: ReceiverBase,
    notification: Notification,
    limit: int = 4000,
    default: str = DEFAULT_BODY,
) -> str:
    """The body from ``body_template``, else from ``default`` (a notifier's own default)."""
    return render(
        receiver.body_template or default, template_context(receiver, notification), limit
    )


def _retry_after(text: str, headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from a JSON ``retry_after`` (Discord) or a ``Retry-After`` header."""
    try:
        body = json.loads(text) if text else None
        if isinstance(body, dict) and isinstance(body.get("retry_after"), int | float):
            return max(0.0, float(body["retry_after"]))
    except ValueError:
        pass
    header = headers.get("Retry-After")
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            return None
    return None


_MAX_RESPONSE = 64 * 1024


async def post_json(
    http: aiohttp.ClientSession,
    url: str,
    *,
    target: str,
    content: bytes,
    headers: dict[str, str] | None = None,
    timeout: float,
) -> int:
    """POST and map the outcome: 2xx returns the status, 429/5xx/network → Retryable, other
    4xx → Permanent.

    ``target`` names the receiver in errors; the URL (which may hold a token) never appears.
    """
    try:
        async with http.post(
            url,
            data=content,
            headers={"Content-Type": "application/json", **(headers or {})},
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as response:
            status = response.status
            raw = await response.content.read(_MAX_RESPONSE)
            resp_headers = dict(response.headers)
    except TimeoutError:
        raise RetryableError(f"{target}: timed out after {timeout:g}s") from None
    except aiohttp.ClientError as exc:
        # aiohttp's messages can contain the URL (and so a token): name the error type only.
        raise RetryableError(f"{target}: {type(exc).__name__}") from None
    if 200 <= status < 300:
        return status
    text = raw.decode("utf-8", "replace")
    snippet = text[:200].replace("\n", " ")
    if status == 429:
        raise RetryableError(
            f"{target}: HTTP 429 rate limited", retry_after=_retry_after(text, resp_headers)
        )
    if status >= 500 or status in (408, 425):
        raise RetryableError(
            f"{target}: HTTP {status} {snippet}", retry_after=_retry_after(text, resp_headers)
        )
    raise PermanentError(f"{target}: HTTP {status} {snippet}")
