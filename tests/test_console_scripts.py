"""Every service's console script: invalid settings → exit 2, one line on stderr, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
SCRIPTS = sorted(p.name.removeprefix("proxbus-") for p in (BIN).glob("proxbus-*"))
SERVICES = sorted(
    p.name for p in (Path(__file__).parents[1] / "services").iterdir() if (p / "src").is_dir()
)


def run(script: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "DISCORD_"))}
    return subprocess.run(
        [str(BIN / f"proxbus-{script}"), *args],
        env={**base, "NATS_URL": "nats://127.0.0.1:1", **env},
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).parent,  # no .env of the developer's
    )


def test_every_service_has_a_console_script() -> None:
    assert len(SERVICES) >= 6
    assert set(SERVICES) <= set(SCRIPTS)


@pytest.mark.parametrize("service", SERVICES)
def test_an_invalid_setting_exits_2_with_one_line(service: str) -> None:
    result = run(service, LOG_LEVEL="loud", HEALTH_PORT="99999", DISCORD_PUBLIC_KEY="ab" * 32)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"proxbus-{service}: invalid settings: ")
    assert "LOG_LEVEL" in lines[0]
    assert "Traceback" not in result.stderr


def test_cli_overrides_go_through_validation() -> None:
    """Regression: ``proxbus-mcp-gateway --port 99999`` was accepted."""
    result = run("mcp-gateway", "--port", "99999")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "proxbus-mcp-gateway: invalid settings: GATEWAY_PORT: "
        "Input should be less than or equal to 65535"
    ]
