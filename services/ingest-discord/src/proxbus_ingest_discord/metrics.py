"""Prometheus counters of the interactions endpoint."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter


@dataclass(slots=True)
class DiscordMetrics:
    """Requests by HTTP outcome, interactions by how they were answered, commands, follow-ups."""

    requests: Counter
    interactions: Counter
    commands: Counter
    followups: Counter
    buttons_refused: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> DiscordMetrics:
        return cls(
            requests=Counter(
                "proxbus_discord_requests",
                "POST /discord/interactions by outcome (ok or why it was refused)",
                ["outcome"],
                registry=registry,
            ),
            interactions=Counter(
                "proxbus_discord_interactions",
                "verified interactions by type and answer (immediate, deferred, duplicate)",
                ["type", "answer"],
                registry=registry,
            ),
            commands=Counter(
                "proxbus_discord_commands",
                "commands and clicks by name and outcome (ok, error, denied, expired)",
                ["name", "outcome"],
                registry=registry,
            ),
            followups=Counter(
                "proxbus_discord_followups",
                "late answers sent through the interaction webhook, by outcome",
                ["outcome"],
                registry=registry,
            ),
            buttons_refused=Counter(
                "proxbus_discord_buttons_refused",
                "notification buttons refused, by reason (disabled, missing, forged, expired)",
                ["reason"],
                registry=registry,
            ),
        )
