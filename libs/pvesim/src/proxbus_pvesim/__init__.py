"""Proxmox VE + Proxmox Backup Server API simulator over real HTTPS."""

from .auth import ApiToken
from .errors import ApiError, ScenarioError, TaskFailure
from .scenario import Scenario, build_lab, load_scenario
from .simulator import PbsTokens, PveTokens, Simulator, pbs_routes, pve_routes

__all__ = [
    "ApiError",
    "ApiToken",
    "PbsTokens",
    "PveTokens",
    "Scenario",
    "ScenarioError",
    "Simulator",
    "TaskFailure",
    "build_lab",
    "load_scenario",
    "pbs_routes",
    "pve_routes",
]
