"""QEMU guest agent commands: ``agent/exec`` and ``agent/exec-status``.

Follows qemu-server ``PVE/API2/Qemu/Agent.pm`` (``exec``: ``{pid}``; ``exec-status``: the
agent's answer with ``out-data``/``err-data`` base64-decoded and booleans as 1/0) and
``PVE/QemuServer/Agent.pm`` (``assert_agent_available``: "No QEMU guest agent configured",
"VM <vmid> is not running", "QEMU guest agent is not running"; ``qemu_exec``: the first
``command`` element is the program, the rest its arguments). qemu-ga (``qga/commands.c``)
keeps a finished command's result until one ``guest-exec-status`` has reported it, then
forgets it; an unknown pid is "Invalid parameter 'pid'".

The guest runs nothing: a few commands answer deterministically (``COMMANDS``), any other
program exits 127 with "command not found" on stderr.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError
from .model import Guest
from .pve_guests import guest_of
from .router import Route
from .server import Call

# qemu-ga keeps unreported results; a client that never asks must not grow memory without
# bound: past this many per simulator the oldest are forgotten.
MAX_PENDING = 256
FIRST_PID = 1000

OS_RELEASE = (
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'
    'NAME="Debian GNU/Linux"\n'
    'VERSION_ID="12"\n'
    'VERSION="12 (bookworm)"\n'
    "VERSION_CODENAME=bookworm\n"
    "ID=debian\n"
    'HOME_URL="https://www.debian.org/"\n'
    'SUPPORT_URL="https://www.debian.org/support"\n'
    'BUG_REPORT_URL="https://bugs.debian.org/"\n'
)
KERNEL = "6.1.0-28-amd64"
KERNEL_VERSION = "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)"


@dataclass(frozen=True, slots=True)
class ExecResult:
    """What a simulated command printed and how it ended."""

    exitcode: int
    out: str = ""
    err: str = ""


@dataclass(frozen=True, slots=True)
class AgentExec:
    """One ``agent/exec`` as the simulator received it (for tests)."""

    vmid: int
    pid: int
    command: tuple[str, ...]
    input_data: str | None
    result: ExecResult


@dataclass(slots=True)
class GuestAgentExec:
    """The simulator's guest-exec state: pids handed out and results not yet reported."""

    next_pid: int = FIRST_PID
    pending: OrderedDict[tuple[int, int], AgentExec] = field(default_factory=OrderedDict)
    history: list[AgentExec] = field(default_factory=list)  # the last MAX_PENDING, oldest first

    def start(self, g: Guest, command: list[str], input_data: str | None) -> AgentExec:
        pid, self.next_pid = self.next_pid, self.next_pid + 1
        run = AgentExec(g.vmid, pid, tuple(command), input_data, simulate(g, command, input_data))
        self.pending[(g.vmid, pid)] = run
        while len(self.pending) > MAX_PENDING:
            self.pending.popitem(last=False)
        self.history.append(run)
        del self.history[:-MAX_PENDING]
        return run


def simulate(g: Guest, command: list[str], input_data: str | None) -> ExecResult:
    """The deterministic answer of the guest to ``command`` (program + arguments)."""
    prog, args = command[0], command[1:]
    name = prog.rsplit("/", 1)[-1]
    uname = {
        "-s": "Linux",
        "-n": g.name,
        "-r": KERNEL,
        "-v": KERNEL_VERSION,
        "-m": "x86_64",
        "-a": f"Linux {g.name} {KERNEL} {KERNEL_VERSION} x86_64 GNU/Linux",
    }
    if name == "hostname" and not args:
        return ExecResult(0, f"{g.name}\n")
    if name == "uname" and len(args) <= 1:
        flag = args[0] if args else "-s"
        if flag in uname:
            return ExecResult(0, uname[flag] + "\n")
        return ExecResult(1, err=f"uname: invalid option -- '{flag.lstrip('-')[:1]}'\n")
    if name == "cat" and args == ["/etc/os-release"]:
        return ExecResult(0, OS_RELEASE)
    if name == "cat" and not args:
        return ExecResult(0, input_data or "")
    if name == "echo":
        return ExecResult(0, " ".join(args) + "\n")
    if name == "true" and not args:
        return ExecResult(0)
    if name == "false" and not args:
        return ExecResult(1)
    return ExecResult(127, err=f"{prog}: command not found\n")


def _available(call: Call) -> Guest:
    """``assert_agent_available`` of PVE/QemuServer/Agent.pm."""
    g = guest_of(call, "qemu")
    if not g.agent:
        raise ApiError(500, "No QEMU guest agent configured")
    if not g.running:
        raise ApiError(500, f"VM {g.vmid} is not running")
    if g.qmpstatus == "paused":
        raise ApiError(500, "QEMU guest agent is not running")
    return g


def _state(call: Call) -> GuestAgentExec:
    return call.sim.agent_exec


async def agent_exec(call: Call) -> Any:
    """``POST .../agent/exec``: starts ``command`` (program + arguments) and answers its pid."""
    g = _available(call)
    command = [str(c) for c in call.params["command"]]
    input_data = call.params.get("input-data")
    if not command or not command[0]:
        # qemu-ga guest-exec spawns nothing for an empty path (glib's g_spawn error)
        raise ApiError(
            500,
            f"VM {g.vmid} qmp command 'guest-exec' failed - "
            "Failed to execute child process \u201c\u201d (No such file or directory)",
        )
    run = _state(call).start(g, command, None if input_data is None else str(input_data))
    return {"pid": run.pid}


async def agent_exec_status(call: Call) -> Any:
    """``GET .../agent/exec-status``: the result, reported once (then qemu-ga forgets it)."""
    g = _available(call)
    pid = int(call.params["pid"])
    run = _state(call).pending.pop((g.vmid, pid), None)
    if run is None:
        raise ApiError(
            500, f"VM {g.vmid} qmp command 'guest-exec-status' failed - Invalid parameter 'pid'"
        )
    res: dict[str, Any] = {"exited": 1, "exitcode": run.result.exitcode}
    # qemu-ga sends out-data/err-data only when the command wrote something
    if run.result.out:
        res["out-data"] = run.result.out
    if run.result.err:
        res["err-data"] = run.result.err
    return res


ROUTES: list[Route] = [
    Route("POST", "/nodes/{node}/qemu/{vmid}/agent/exec", agent_exec, ("command", "input-data")),
    Route("GET", "/nodes/{node}/qemu/{vmid}/agent/exec-status", agent_exec_status, ("pid",)),
]
