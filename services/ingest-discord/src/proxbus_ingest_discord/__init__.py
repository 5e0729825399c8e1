"""proxbus-ingest-discord: a Discord interactions endpoint for slash commands and buttons."""

from .commands import COMMAND_DEFINITION, Command, parse_command
from .components import AcknowledgeAlert, CancelAction, ConfirmAction, SilenceAlert, parse_click
from .interaction import Actor, Interaction, parse_interaction
from .operators import Operators
from .signature import SignatureVerifier, load_public_key

__all__ = [
    "COMMAND_DEFINITION",
    "AcknowledgeAlert",
    "Actor",
    "CancelAction",
    "Command",
    "ConfirmAction",
    "Interaction",
    "Operators",
    "SignatureVerifier",
    "SilenceAlert",
    "load_public_key",
    "parse_click",
    "parse_command",
    "parse_interaction",
]
