"""The command registration script, in ``--dry-run`` (it contacts nobody; never run for real in
tests): a global registration keeps /proxbus out of DMs and user installs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "scripts" / "register_commands.py"


def dry_run(*args: str) -> list[dict[str, object]]:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_a_global_registration_is_for_servers_only() -> None:
    [definition] = dry_run()
    assert definition["name"] == "proxbus"
    # Interaction context 0 = GUILD (not 1 BOT_DM, 2 PRIVATE_CHANNEL); installation 0 = GUILD.
    assert definition["contexts"] == [0]
    assert definition["integration_types"] == [0]


def test_a_guild_registration_sends_the_command_as_it_is() -> None:
    [definition] = dry_run("--guild", "400000000000000001")
    assert definition["name"] == "proxbus"
    assert "contexts" not in definition  # only for global commands (Discord's docs)
