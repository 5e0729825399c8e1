"""Without a routes file: the seed's env toggles make one route to every enabled notifier."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from proxbus_events import Matcher

from .config import ALL_LABELS, DispatcherConfig, ReceiverBase, Route, RoutesFile
from .errors import ConfigError
from .settings import Settings


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def _m(name: str, op: str, value: str) -> Matcher:
    return Matcher.model_validate({"name": name, "op": op, "value": value})


def seed_receivers(s: Settings) -> list[dict[str, Any]]:
    """Receiver definitions (routes.yaml shape) for every ``*_OUT_ENABLED`` toggle."""
    common: dict[str, Any] = {
        "max_attempts": s.max_attempts,
        "backoff_base": s.backoff_base,
        "backoff_max": s.backoff_max,
        "timezone": s.notify_timezone,
    }
    out: list[dict[str, Any]] = []
    if s.discord_out_enabled:
        out.append(
            {"name": "discord", "type": "discord", "url": _secret(s.discord_webhook_url), **common}
        )
    if s.gotify_out_enabled:
        out.append(
            {
                "name": "gotify",
                "type": "gotify",
                "url": s.gotify_url,
                "token": _secret(s.gotify_token),
                **common,
            }
        )
    if s.webhook_out_enabled:
        hook: dict[str, Any] = {
            "name": "webhook",
            "type": "webhook",
            "url": _secret(s.webhook_url),
            **common,
        }
        if s.webhook_secret is not None:
            hook["secret"] = _secret(s.webhook_secret)
        out.append(hook)
    if s.email_out_enabled:
        out.append(
            {
                "name": "email",
                "type": "email",
                "host": s.email_out_host,
                "port": s.email_out_port,
                "username": s.email_out_user,
                "password": _secret(s.email_out_password),
                "security": s.email_out_security,
                "from": s.email_out_from,
                "to": s.email_out_to,
                **common,
            }
        )
    if s.apprise_urls is not None and _secret(s.apprise_urls):
        out.append(
            {"name": "apprise", "type": "apprise", "urls": _secret(s.apprise_urls), **common}
        )
    if s.nats_out_subject:
        out.append({"name": "nats", "type": "nats", "subject": s.nats_out_subject, **common})
    return out


# The variable each seed receiver field comes from (seed_receivers), for error messages: the
# user set DISCORD_WEBHOOK_URL, not a receiver's "url".
_COMMON_VARIABLES = {"max_attempts": "MAX_ATTEMPTS", "backoff_base": "BACKOFF_BASE",
                     "backoff_max": "BACKOFF_MAX", "timezone": "NOTIFY_TIMEZONE"}  # fmt: skip
_SEED_VARIABLES = {
    "discord": {"url": "DISCORD_WEBHOOK_URL"},
    "gotify": {"url": "GOTIFY_URL", "token": "GOTIFY_TOKEN"},
    "webhook": {"url": "WEBHOOK_URL", "secret": "WEBHOOK_SECRET"},
    "email": {"host": "EMAIL_OUT_HOST", "port": "EMAIL_OUT_PORT", "username": "EMAIL_OUT_USER",
              "password": "EMAIL_OUT_PASSWORD", "security": "EMAIL_OUT_SECURITY",
              "from": "EMAIL_OUT_FROM", "to": "EMAIL_OUT_TO"},
    "apprise": {"urls": "APPRISE_URLS"},
    "nats": {"subject": "NATS_OUT_SUBJECT"},
}  # fmt: skip
# Receivers switched on by a toggle (apprise and nats: by their one variable being set).
_TOGGLES = {
    name: f"{name.upper()}_OUT_ENABLED" for name in ("discord", "gotify", "webhook", "email")
}


def _seed_error(receiver: str, field: str, err: Any) -> str:
    """``DISCORD_WEBHOOK_URL is not set (DISCORD_OUT_ENABLED)``, ``NOTIFY_TIMEZONE is invalid:
    ...``: the variable the user set, not the seed receiver's field."""
    toggle = _TOGGLES.get(receiver)
    field = field.rstrip("_")
    variable = _COMMON_VARIABLES.get(field) or _SEED_VARIABLES.get(receiver, {}).get(field)
    if variable is None:
        return f"{toggle or receiver} is set but {field} is invalid: {err['msg']}"
    why = f" ({toggle})" if toggle and field not in _COMMON_VARIABLES else ""
    if err.get("input") is None:
        return f"{variable} is not set{why}"
    return f"{variable} is invalid{why}: {err['msg']}"


def seed_config(s: Settings) -> DispatcherConfig:
    """Root routes per enabled notifier (``continue``): every event ≥ ``MIN_SEVERITY``, plain
    log lines (``syslog.message``) ≥ ``SEED_SYSLOG_MIN_SEVERITY`` too (one digest per node
    after ``SEED_LINES_GROUP_WAIT``), successes as a digest per node (``SEED_OK_GROUP_WAIT``).

    Raises:
        ConfigError: a toggle is on but its URL/token is missing (names the variable).
    """
    receivers_raw = seed_receivers(s)
    try:
        model = RoutesFile.model_validate(
            {
                "receivers": receivers_raw
                or [{"name": "none", "type": "nats", "subject": "proxbus.null"}],
                "route": {"receiver": "none" if not receivers_raw else receivers_raw[0]["name"]},
            }
        )
    except Exception as exc:
        from pydantic import ValidationError

        if isinstance(exc, ValidationError):
            err = exc.errors()[0]
            loc = err["loc"]
            name = (
                receivers_raw[int(loc[1])]["name"]
                if len(loc) > 1 and isinstance(loc[1], int)
                else "?"
            )
            raise ConfigError(_seed_error(name, str(loc[-1]), err), path="environment") from None
        raise
    receivers: dict[str, ReceiverBase] = (
        {r.name: r for r in model.receivers} if receivers_raw else {}
    )
    # Plain log lines (syslog.message: lines no rule recognised, from syslog or the cluster
    # log) are a firehose at info (sessions, API workers, every "Starting Backup of VM N"):
    # they get their own, higher floor. Classified events and Proxmox's own notifications
    # (webhook.message, email.message, gotify.message) keep MIN_SEVERITY.
    lines_floor = max(s.min_severity, s.seed_syslog_min_severity, key=lambda v: v.rank)
    plain, ok = "syslog.message", "*.ok"
    floor = _m("severity", ">=", s.min_severity.value)
    at_once = Route(
        id="",
        receiver="",
        matchers=(),
        continue_=True,
        group_by=(ALL_LABELS,),
        group_wait=s.seed_group_wait,
        group_interval=max(s.seed_group_wait, 1.0),
        repeat_interval=s.seed_repeat_interval,
    )

    def per_node(wait: float) -> Route:
        """One digest per node after ``wait`` seconds; 0 sends each at once."""
        if wait <= 0:
            return at_once
        return replace(at_once, group_by=("node",), group_wait=wait, group_interval=wait)

    # Successes (backup.ok per guest, task.ok, sync.ok...): one digest per node after
    # SEED_OK_GROUP_WAIT instead of a notification (a mail) each.
    digest = per_node(s.seed_ok_group_wait)
    # Plain lines: one digest per node after SEED_LINES_GROUP_WAIT (a node leaving or
    # rejoining the cluster is ~20 corosync/pmxcfs notice lines on every node at once).
    lines = per_node(s.seed_lines_group_wait)
    children: list[Route] = []
    for name in receivers:
        for suffix, matchers, shape in (
            ("", (floor, _m("kind", "!=", plain), _m("kind", "!=", ok)), at_once),
            ("-ok", (floor, _m("kind", "=", ok)), digest),
            ("-lines", (_m("severity", ">=", lines_floor.value), _m("kind", "=", plain)), lines),
        ):
            children.append(
                replace(
                    shape, id=f"seed-{name}{suffix}", receiver=name, matchers=matchers, routes=[]
                )
            )
    root = Route(id="root", receiver="", matchers=(), routes=children)
    return DispatcherConfig(receivers=receivers, root=root)
