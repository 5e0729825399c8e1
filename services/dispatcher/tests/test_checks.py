"""``--test-connection`` receiver checks against local stand-ins: nothing is ever sent."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from proxbus_devtools.testing import free_port, serve_app
from proxbus_dispatcher.checks import (
    NOTHING_TO_CHECK,
    RECEIVER_CHECKS,
    check_apprise,
    check_discord,
    check_email,
    check_gotify,
    check_tcp,
    connection_checks,
)
from proxbus_dispatcher.notifiers import NOTIFIERS
from proxbus_dispatcher.notifiers.apprise import AppriseReceiver
from proxbus_dispatcher.notifiers.discord import DiscordReceiver
from proxbus_dispatcher.notifiers.email import EmailReceiver
from proxbus_dispatcher.notifiers.gotify import GotifyReceiver
from proxbus_dispatcher.settings import Settings
from proxbus_pvesim.tls import generate_tls

TOKEN = "hook-token-abc123"


def target_app(seen: list[str]) -> web.Application:
    """Discord's webhook GET, Gotify's /version; records every request (none may be a send)."""

    async def webhook(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path}")
        if request.match_info["token"] != TOKEN:
            return web.json_response({"message": "Unknown Webhook", "code": 10015}, status=404)
        return web.json_response({"id": "1", "name": "proxbus", "channel_id": "2"})

    async def version(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path}")
        return web.json_response({"version": "2.6.3", "commit": "x", "buildDate": "y"})

    app = web.Application()
    app.router.add_get("/api/webhooks/{id}/{token}", webhook)
    app.router.add_get("/version", version)
    return app


async def test_discord_check_reads_the_webhook_without_posting() -> None:
    seen: list[str] = []
    async with serve_app(target_app(seen)) as port:
        ok = DiscordReceiver(
            name="d", type="discord", url=f"http://127.0.0.1:{port}/api/webhooks/1/{TOKEN}"
        )
        assert "webhook exists" in await check_discord(ok)
        bad = DiscordReceiver(
            name="d", type="discord", url=f"http://127.0.0.1:{port}/api/webhooks/1/revoked"
        )
        with pytest.raises(ConnectionError) as failed:
            await check_discord(bad)
    assert "HTTP 404" in str(failed.value)
    assert "revoked" not in str(failed.value)  # the token part of the URL is never printed
    assert seen == [f"GET /api/webhooks/1/{TOKEN}", "GET /api/webhooks/1/revoked"]


async def test_gotify_check_asks_the_version_only() -> None:
    seen: list[str] = []
    async with serve_app(target_app(seen)) as port:
        receiver = GotifyReceiver(
            name="g", type="gotify", url=f"http://127.0.0.1:{port}", token="app-tok"
        )
        assert "Gotify answers" in await check_gotify(receiver)
    assert seen == ["GET /version"]


async def test_closed_port_fails_quickly_with_host_and_port_only() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/webhook/secret-path"
    for check in (
        check_tcp(url),
        check_discord(DiscordReceiver(name="d", type="discord", url=url)),
        check_gotify(GotifyReceiver(name="g", type="gotify", url=url, token="t")),
    ):
        with pytest.raises(ConnectionError) as failed:
            await asyncio.wait_for(check, 6)
        assert f"127.0.0.1:{port}" in str(failed.value)
        assert "secret-path" not in str(failed.value)


async def test_webhook_check_connects_without_a_request() -> None:
    seen: list[str] = []
    async with serve_app(target_app(seen)) as port:
        assert "accepts connections" in await check_tcp(f"http://127.0.0.1:{port}/hook")
    assert seen == []


class Authenticator:
    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login == b"proxbus"
            and data.password == b"mail-pw"
        )
        return AuthResult(success=ok, handled=False)


class Refuse:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raise AssertionError("the check must not send mail")


async def test_email_check_does_starttls_and_login_and_sends_nothing(tmp_path: Path) -> None:
    ctx = generate_tls(tmp_path, "smtp").server_context()
    port = free_port()
    controller = Controller(
        Refuse(), hostname="127.0.0.1", port=port, tls_context=ctx, require_starttls=True,
        authenticator=Authenticator(), auth_require_tls=True,
    )  # fmt: skip
    controller.start()
    try:
        base = {"name": "m", "type": "email", "host": "127.0.0.1", "port": port, "security": "starttls",
                "validate_certs": False, "from": "p@example.org", "to": "ops@example.org"}  # fmt: skip
        good = EmailReceiver(**base, username="proxbus", password="mail-pw")
        assert await check_email(good) == f"127.0.0.1:{port}: starttls, login as proxbus ok"
        with pytest.raises(ConnectionError) as failed:
            await check_email(EmailReceiver(**base, username="proxbus", password="wrong-mail-pw"))
        assert "login as proxbus refused" in str(failed.value)
        assert "wrong-mail-pw" not in str(failed.value)
    finally:
        controller.stop()


async def test_apprise_urls_are_validated_without_sending() -> None:
    ok = AppriseReceiver(name="a", type="apprise", urls=["json://127.0.0.1:9/x"])
    assert "1 URLs understood" in await check_apprise(ok)
    bad = AppriseReceiver(
        name="a", type="apprise", urls=["json://127.0.0.1:9/x", "nosuchscheme://tok@x"]
    )
    with pytest.raises(ValueError, match=r"1 of 2 URLs not understood: \['nosuchscheme://'\]"):
        await check_apprise(bad)


def test_connection_checks_name_each_remote_receiver(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        """\
receivers:
  - {name: chat, type: discord, url: "http://127.0.0.1:9/api/webhooks/1/x"}
  - {name: bus, type: nats, subject: proxbus.out}
route: {receiver: chat}
"""
    )
    checks = connection_checks(Settings(_env_file=None, routes_file=routes))  # type: ignore[call-arg]
    assert list(checks) == ["receiver chat (discord)"]
    routes.write_text("receivers: [{name: x, type: nope}]\nroute: {receiver: x}\n")
    broken = connection_checks(Settings(_env_file=None, routes_file=routes))  # type: ignore[call-arg]
    assert list(broken) == ["receivers"]
    with pytest.raises(ValueError, match=r"routes\.yaml"):
        asyncio.run(broken["receivers"]())


def test_every_registered_receiver_type_has_a_check_or_nothing_remote() -> None:
    assert set(NOTIFIERS) <= set(RECEIVER_CHECKS) | NOTHING_TO_CHECK
    assert not set(RECEIVER_CHECKS) & NOTHING_TO_CHECK
