"""Register the ``/proxbus`` slash command with Discord (run by hand; never in tests or CI).

    DISCORD_APPLICATION_ID=... DISCORD_BOT_TOKEN=... \\
        uv run python services/ingest-discord/scripts/register_commands.py [--guild ID] [--dry-run]

Without ``--guild`` the command is global (Discord may take up to an hour to show it
everywhere); with ``--guild`` it appears in that server at once, which is handy while setting
up. The request replaces the application's commands (bulk overwrite), so running it again is
safe. ``--dry-run`` prints the JSON that would be sent and contacts nobody. A global command is
limited to servers (``contexts``), not DMs with the bot; the service also refuses interactions
from outside ``DISCORD_GUILDS``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from typing import Any

import aiohttp
from proxbus_ingest_discord.commands import COMMAND_DEFINITION
from proxbus_ingest_discord.followup import DISCORD_API

SNOWFLAKE = re.compile(r"^[0-9]{1,20}$")
# Discord "Interaction Context Type" 0 GUILD and "Application Integration Type" 0 GUILD_INSTALL:
# a global command would otherwise also be offered in DMs with the bot. The service refuses
# those anyway (DISCORD_GUILDS); this keeps them out of the command picker.
GUILD_CONTEXT, GUILD_INSTALL = 0, 0


def definition(guild: str | None) -> dict[str, Any]:
    """What is sent: the command, limited to servers when registered globally."""
    if guild:
        return dict(COMMAND_DEFINITION)  # `contexts` is for global commands only
    return {**COMMAND_DEFINITION, "contexts": [GUILD_CONTEXT], "integration_types": [GUILD_INSTALL]}


async def register(api: str, application_id: str, token: str, guild: str | None) -> int:
    path = f"/applications/{application_id}"
    path += f"/guilds/{guild}/commands" if guild else "/commands"
    headers = {"Authorization": f"Bot {token}", "User-Agent": "proxbus (register_commands, 0.1)"}
    timeout = aiohttp.ClientTimeout(total=30)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.put(f"{api}{path}", json=[definition(guild)], headers=headers) as resp,
    ):
        body = await resp.text()
        if resp.status >= 300:
            print(f"Discord answered {resp.status}: {body[:500]}", file=sys.stderr)
            return 1
    names = [c.get("name") for c in json.loads(body)]
    where = f"guild {guild}" if guild else "globally"
    print(f"registered {', '.join(map(str, names))} {where}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Register /proxbus with Discord.")
    parser.add_argument("--guild", help="register in one server only (instant)")
    parser.add_argument("--dry-run", action="store_true", help="print the JSON, send nothing")
    parser.add_argument(
        "--api-url", default=os.environ.get("DISCORD_API_URL", DISCORD_API), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.dry_run:
        print(json.dumps([definition(args.guild)], indent=2))
        return 0
    application_id = os.environ.get("DISCORD_APPLICATION_ID", "")
    token = os.environ.get("DISCORD_BOT_TOKEN", "")
    if not SNOWFLAKE.match(application_id) or not token:
        print(
            "set DISCORD_APPLICATION_ID and DISCORD_BOT_TOKEN (Developer Portal)", file=sys.stderr
        )
        return 2
    if args.guild and not SNOWFLAKE.match(args.guild):
        print("--guild must be a server id (digits)", file=sys.stderr)
        return 2
    return asyncio.run(register(args.api_url.rstrip("/"), application_id, token, args.guild))


if __name__ == "__main__":
    sys.exit(main())
