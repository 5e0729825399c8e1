"""A bad seed setting (no routes file) is reported by the variable the user set.

The seed builds one receiver per ``*_OUT_ENABLED`` toggle from environment variables; a
receiver field that fails validation was reported by the receiver's field name
("DISCORD_OUT_ENABLED is set but url is invalid: Input should be a valid string",
"NATS_OUT_ENABLED is set but subject ...": there is no NATS_OUT_ENABLED, "timezone" is
NOTIFY_TIMEZONE), which sends a newcomer looking for a variable that does not exist.
"""

from __future__ import annotations

import pytest
from proxbus_dispatcher.errors import ConfigError
from proxbus_dispatcher.seed import seed_config
from proxbus_dispatcher.settings import Settings

DISCORD = {"discord_out_enabled": "true",
           "discord_webhook_url": "https://discord.com/api/webhooks/1/abc"}  # fmt: skip
EMAIL = {"email_out_enabled": "true", "email_out_host": "127.0.0.1",
         "email_out_from": "proxbus@lab.example", "email_out_to": "ops@lab.example"}  # fmt: skip


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"discord_out_enabled": "true"}, "DISCORD_WEBHOOK_URL is not set (DISCORD_OUT_ENABLED)"),
        ({"gotify_out_enabled": "true", "gotify_url": "http://127.0.0.1:1"},
         "GOTIFY_TOKEN is not set (GOTIFY_OUT_ENABLED)"),
        ({"webhook_out_enabled": "true", "webhook_url": "ftp://127.0.0.1/"},
         "WEBHOOK_URL is invalid (WEBHOOK_OUT_ENABLED): String should match pattern"),
        ({"nats_out_subject": "a b"}, "NATS_OUT_SUBJECT is invalid: String should match"),
        ({**DISCORD, "notify_timezone": "Mars/Base"},
         "NOTIFY_TIMEZONE is invalid: Value error, unknown time zone 'Mars/Base'"),
        ({**EMAIL, "email_out_security": "ssl"},
         "EMAIL_OUT_SECURITY is invalid (EMAIL_OUT_ENABLED): Input should be 'starttls'"),
        ({**EMAIL, "email_out_to": None}, "EMAIL_OUT_TO is not set (EMAIL_OUT_ENABLED)"),
    ],
)  # fmt: skip
def test_a_bad_seed_setting_names_its_variable(env: dict[str, str | None], expected: str) -> None:
    settings = Settings(_env_file=None, **{k: v for k, v in env.items() if v is not None})
    with pytest.raises(ConfigError) as raised:
        seed_config(settings)
    assert expected in str(raised.value)


def test_good_seed_settings_build_their_receivers() -> None:
    config = seed_config(Settings(_env_file=None, **DISCORD, **EMAIL))
    assert set(config.receivers) == {"discord", "email"}
